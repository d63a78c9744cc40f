//! What a power cut keeps of the bytes that were written but not synced.
//!
//! A real disk may persist the unsynced part of a file as a prefix of what
//! was written, in full, not at all, or — because it reorders writes —
//! as any subset of its sectors: a later part of one write may survive while
//! an earlier part is lost. [`CrashPolicy::KeepSectors`] models the last
//! case exactly: the changed sectors of every file, in a fixed order, are
//! each kept or lost as a mask says, so a test can enumerate (or sample)
//! every combination.

use super::Inode;

/// What a crash keeps of the bytes that were written but not synced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrashPolicy {
    /// Every unsynced byte is lost.
    DropUnsynced,
    /// Each file keeps up to this many bytes of its unsynced appended tail,
    /// tearing the last write at that byte.
    KeepUnsyncedPrefix(usize),
    /// Every written byte survives (the OS flushed everything in time), but
    /// unsynced directory entries are still lost.
    KeepAllData,
    /// The unsynced sectors of all files (files in path order, then sectors
    /// of `sector_bytes` in offset order; see [`super::SimFs::unsynced_sectors`])
    /// survive where `keep` is true and are lost where it is false (or
    /// missing). A file's length reaches the end of its last kept sector;
    /// lost sectors inside it read as what was durable there, or as zeros.
    KeepSectors { sector_bytes: usize, keep: Vec<bool> },
}

/// The sectors of `inode` whose bytes differ from what is durable, as
/// `(start, end)` offsets into its page-cache data.
pub(super) fn dirty_sectors(inode: &Inode, sector: usize) -> Vec<(usize, usize)> {
    let Some(from) = inode.dirty_from else { return Vec::new() };
    let sector = sector.max(1);
    let mut out = Vec::new();
    let mut start = from - from % sector;
    while start < inode.data.len() {
        let end = (start + sector).min(inode.data.len());
        let durable = inode.durable.get(start..end.min(inode.durable.len())).unwrap_or(&[]);
        if durable.len() != end - start || durable != &inode.data[start..end] {
            out.push((start, end));
        }
        start += sector;
    }
    out
}

/// The bytes `inode` holds after a crash under `policy`. `next_sector`
/// counts the sectors of earlier files, for `KeepSectors`.
pub(super) fn surviving_bytes(inode: &Inode, policy: &CrashPolicy, next_sector: &mut usize) -> Vec<u8> {
    match policy {
        CrashPolicy::DropUnsynced => inode.durable.clone(),
        CrashPolicy::KeepAllData => inode.data.clone(),
        CrashPolicy::KeepUnsyncedPrefix(n) => kept_prefix(inode, *n),
        CrashPolicy::KeepSectors { sector_bytes, keep } => {
            let sectors = dirty_sectors(inode, *sector_bytes);
            let mut out = inode.durable.clone();
            if inode.data.len() < out.len() {
                // A truncation that did not reach the disk: the old bytes stay.
                *next_sector += sectors.len();
                return out;
            }
            for (start, end) in sectors {
                let kept = keep.get(*next_sector).copied().unwrap_or(false);
                *next_sector += 1;
                if !kept {
                    continue;
                }
                if out.len() < end {
                    out.resize(end, 0);
                }
                out[start..end].copy_from_slice(&inode.data[start..end]);
            }
            out
        }
    }
}

fn kept_prefix(inode: &Inode, keep_extra: usize) -> Vec<u8> {
    let appended_only = inode.data.len() >= inode.durable.len()
        && inode.dirty_from.is_none_or(|from| from >= inode.durable.len());
    if !appended_only || keep_extra == 0 {
        return inode.durable.clone();
    }
    let end = inode.durable.len().saturating_add(keep_extra).min(inode.data.len());
    inode.data[..end].to_vec()
}
