//! The identity and continuity records kept beside the segments.
//!
//! * The **manifest** (`bookend.manifest`) holds the journal's id, a durable
//!   floor (an LSN known to have been durable: updated when a segment is
//!   sealed and when the journal is closed), the first LSN of the newest
//!   segment, the seal records of version 1 segments (computed once, when
//!   a journal written by an older bookend is first opened), and the gaps
//!   a person accepted with `--accept-data-loss`. It is replaced atomically
//!   (write temp, fsync, rename, fsync directory).
//! * The **durable hint** (`bookend.durable`) holds the last LSN the writer
//!   fsynced. It is overwritten in place after every fsync and never synced
//!   itself: after a power cut it may be older than the truth, never newer,
//!   so it is only ever used as evidence of durability (recovery) and as the
//!   bound up to which followers in other processes deliver.

use super::{JournalId, SealRecord, read_id, read_u32, read_u64};

/// Name of the manifest inside the journal directory.
pub const MANIFEST_FILE_NAME: &str = "bookend.manifest";
/// Name of the durable hint inside the journal directory.
pub const DURABLE_HINT_FILE_NAME: &str = "bookend.durable";

const MANIFEST_MAGIC: [u8; 8] = *b"BOOKMNFS";
const MANIFEST_VERSION: u8 = 1;
/// The most accepted gaps a manifest records.
pub const MANIFEST_GAPS_MAX: usize = 1024;
/// The largest manifest read (bounds the allocation for a corrupt one).
pub const MANIFEST_SIZE_MAX_BYTES: usize = 16 * 1024 * 1024;

const SEAL_RECORD_SIZE: usize = 36;
const GAP_SIZE: usize = 40;

/// LSNs a person accepted as lost (`--accept-data-loss`): the reader goes
/// from the segment `after_segment` (its first LSN; 0 when the loss is at
/// the very start) straight to the segment `next_segment`, and the LSNs
/// `lost_from..=lost_to` exist nowhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptedGap {
    pub after_segment: u64,
    pub next_segment: u64,
    pub lost_from: u64,
    pub lost_to: u64,
    pub accepted_at_ms: u64,
}

// Format: { magic [u8; 8] = "BOOKMNFS" | version u8 = 1 | reserved [u8; 3] = 0
//   | journal_id [u8; 16] | created_at_ms u64 | durable_floor_lsn u64 | last_segment_first_lsn u64
//   | legacy_count u32 | legacy_count × { first_lsn u64 | last_lsn u64 | len u64 | last_frame_offset u64 | crc u32 }
//   | gap_count u32 | gap_count × { after_segment u64 | next_segment u64 | lost_from u64 | lost_to u64 | accepted_at_ms u64 }
//   | crc u32 }
// The CRC covers every byte before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub journal_id: JournalId,
    pub created_at_ms: u64,
    /// Every LSN up to this one was durable at some point.
    pub durable_floor_lsn: u64,
    /// The first LSN of the newest segment created.
    pub last_segment_first_lsn: u64,
    /// Seal records of version 1 segments, by first LSN.
    pub legacy_seals: Vec<SealRecord>,
    pub gaps: Vec<AcceptedGap>,
}

impl Manifest {
    /// The seal record of the version 1 segment starting at `first_lsn`.
    pub fn legacy_seal(&self, first_lsn: u64) -> Option<SealRecord> {
        self.legacy_seals.iter().copied().find(|s| s.first_lsn == first_lsn)
    }

    /// The accepted gap between the segment starting at `after` (0: none)
    /// and the one starting at `next`.
    pub fn gap_between(&self, after: u64, next: u64) -> Option<AcceptedGap> {
        self.gaps.iter().copied().find(|g| g.after_segment == after && g.next_segment == next)
    }
}

pub fn encode_manifest(m: &Manifest) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + m.legacy_seals.len() * SEAL_RECORD_SIZE + m.gaps.len() * GAP_SIZE);
    out.extend_from_slice(&MANIFEST_MAGIC);
    out.extend_from_slice(&[MANIFEST_VERSION, 0, 0, 0]);
    out.extend_from_slice(m.journal_id.as_bytes());
    for v in [m.created_at_ms, m.durable_floor_lsn, m.last_segment_first_lsn] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&(m.legacy_seals.len() as u32).to_le_bytes());
    for s in &m.legacy_seals {
        for v in [s.first_lsn, s.last_lsn, s.len, s.last_frame_offset] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&s.crc.to_le_bytes());
    }
    out.extend_from_slice(&(m.gaps.len() as u32).to_le_bytes());
    for g in &m.gaps {
        for v in [g.after_segment, g.next_segment, g.lost_from, g.lost_to, g.accepted_at_ms] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a manifest; the error is a reason fit for `Corruption`.
pub fn decode_manifest(bytes: &[u8]) -> Result<Manifest, String> {
    if bytes.len() < 56 + 8 || bytes.len() > MANIFEST_SIZE_MAX_BYTES {
        return Err(format!("manifest is {} bytes, not a plausible size", bytes.len()));
    }
    if bytes[0..8] != MANIFEST_MAGIC {
        return Err("manifest has a bad magic number".to_string());
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body) != read_u32(crc, 0) {
        return Err("manifest checksum mismatch".to_string());
    }
    if body[8] != MANIFEST_VERSION || body[9..12] != [0, 0, 0] {
        return Err(format!("manifest version {} is not supported", body[8]));
    }
    let mut at = 52;
    let legacy_count = read_u32(body, at) as usize;
    at += 4;
    let legacy_seals = read_records(body, &mut at, legacy_count, SEAL_RECORD_SIZE, |b| SealRecord {
        first_lsn: read_u64(b, 0),
        last_lsn: read_u64(b, 8),
        len: read_u64(b, 16),
        last_frame_offset: read_u64(b, 24),
        crc: read_u32(b, 32),
    })?;
    let gap_count = body.get(at..at + 4).map(|b| read_u32(b, 0) as usize).ok_or("manifest is cut short")?;
    at += 4;
    if gap_count > MANIFEST_GAPS_MAX {
        return Err(format!("manifest lists {gap_count} gaps, over the limit of {MANIFEST_GAPS_MAX}"));
    }
    let gaps = read_records(body, &mut at, gap_count, GAP_SIZE, |b| AcceptedGap {
        after_segment: read_u64(b, 0),
        next_segment: read_u64(b, 8),
        lost_from: read_u64(b, 16),
        lost_to: read_u64(b, 24),
        accepted_at_ms: read_u64(b, 32),
    })?;
    if at != body.len() {
        return Err("manifest has bytes after its last record".to_string());
    }
    Ok(Manifest {
        journal_id: read_id(body, 12),
        created_at_ms: read_u64(body, 28),
        durable_floor_lsn: read_u64(body, 36),
        last_segment_first_lsn: read_u64(body, 44),
        legacy_seals,
        gaps,
    })
}

fn read_records<T>(
    body: &[u8],
    at: &mut usize,
    count: usize,
    size: usize,
    read: impl Fn(&[u8]) -> T,
) -> Result<Vec<T>, String> {
    let end = count.checked_mul(size).and_then(|n| n.checked_add(*at)).filter(|end| *end <= body.len());
    let Some(end) = end else { return Err("manifest is cut short".to_string()) };
    let records = body[*at..end].chunks_exact(size).map(read).collect();
    *at = end;
    Ok(records)
}

// Format: { magic [u8; 4] = "BKDL" | journal_id [u8; 16] | durable_lsn u64 | crc u32 }
// The CRC covers the 28 bytes before it.
pub const DURABLE_HINT_SIZE: usize = 32;
const DURABLE_HINT_MAGIC: [u8; 4] = *b"BKDL";

pub fn encode_durable_hint(journal_id: JournalId, durable_lsn: u64) -> [u8; DURABLE_HINT_SIZE] {
    let mut out = [0u8; DURABLE_HINT_SIZE];
    out[0..4].copy_from_slice(&DURABLE_HINT_MAGIC);
    out[4..20].copy_from_slice(journal_id.as_bytes());
    out[20..28].copy_from_slice(&durable_lsn.to_le_bytes());
    let crc = crc32fast::hash(&out[0..28]);
    out[28..32].copy_from_slice(&crc.to_le_bytes());
    out
}

/// The journal id and durable LSN of a hint, or `None` if the bytes are not
/// a whole, checked hint (it is never trusted beyond its checksum).
pub fn decode_durable_hint(bytes: &[u8]) -> Option<(JournalId, u64)> {
    if bytes.len() < DURABLE_HINT_SIZE || bytes[0..4] != DURABLE_HINT_MAGIC {
        return None;
    }
    (crc32fast::hash(&bytes[0..28]) == read_u32(bytes, 28)).then(|| (read_id(bytes, 4), read_u64(bytes, 20)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_round_trip_and_detect_damage() {
        let m = Manifest {
            journal_id: JournalId::mint(),
            created_at_ms: 1_700_000_000_000,
            durable_floor_lsn: 41,
            last_segment_first_lsn: 42,
            legacy_seals: vec![SealRecord {
                first_lsn: 1,
                last_lsn: 9,
                len: 900,
                last_frame_offset: 850,
                crc: 7,
            }],
            gaps: vec![AcceptedGap {
                after_segment: 1,
                next_segment: 42,
                lost_from: 10,
                lost_to: 41,
                accepted_at_ms: 5,
            }],
        };
        let bytes = encode_manifest(&m);
        assert_eq!(decode_manifest(&bytes).unwrap(), m);
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x04;
            assert!(decode_manifest(&damaged).is_err(), "flip at {i} undetected");
        }
        assert!(decode_manifest(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn durable_hints_round_trip_and_torn_ones_are_ignored() {
        let id = JournalId::mint();
        let hint = encode_durable_hint(id, 77);
        assert_eq!(decode_durable_hint(&hint), Some((id, 77)));
        let mut torn = hint;
        torn[22] = 0xFF;
        assert_eq!(decode_durable_hint(&torn), None);
        assert_eq!(decode_durable_hint(&hint[..10]), None);
    }
}
