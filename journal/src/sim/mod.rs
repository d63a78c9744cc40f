//! A simulated file system for crash and fault tests.
//!
//! Each file keeps two copies of its bytes: what the page cache holds
//! (`data`) and what has reached the medium (`durable`). Directory entries,
//! and directories themselves, are durable only after `sync_dir` of their
//! parent. [`SimFs::crash`] throws away everything that was not made
//! durable, optionally keeping a prefix of each file's unsynced tail (a torn
//! write), all of it, or any subset of its sectors (a disk that reorders
//! writes: see [`CrashPolicy`]). Calls can be made to fail on their Nth
//! occurrence.
//!
//! Handles and locks taken before a crash belong to the previous "boot":
//! every call on those handles fails, so a journal that was not dropped
//! cannot scribble on the recovered state.

mod crash;
mod file;

pub use crash::CrashPolicy;

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::fs::{Fs, FsFile, LockGuard, LockMode};
use file::{SimFile, SimLockGuard};

/// The kinds of call that can be counted and failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SimOp {
    Write,
    Sync,
    SyncDir,
    Create,
    Rename,
    Remove,
    SetLen,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Inode {
    pub(crate) data: Vec<u8>,
    pub(crate) durable: Vec<u8>,
    /// Lowest offset changed since the last sync; `None` when clean.
    pub(crate) dirty_from: Option<usize>,
}

impl Inode {
    fn mark_dirty(&mut self, from: usize) {
        self.dirty_from = Some(self.dirty_from.map_or(from, |d| d.min(from)));
    }

    fn sync(&mut self) {
        if let Some(from) = self.dirty_from.take() {
            let from = from.min(self.durable.len()).min(self.data.len());
            self.durable.truncate(from);
            self.durable.extend_from_slice(&self.data[from..]);
        }
    }
}

#[derive(Debug, Default, Clone)]
struct SimState {
    boot: u64,
    next_inode: u64,
    inodes: HashMap<u64, Inode>,
    names: HashMap<PathBuf, u64>,
    durable_names: HashMap<PathBuf, u64>,
    dirs: HashSet<PathBuf>,
    durable_dirs: HashSet<PathBuf>,
    locks: HashMap<PathBuf, (LockMode, usize)>,
    counts: HashMap<SimOp, u64>,
    faults: Vec<(SimOp, u64)>,
    /// Calls of every kind so far.
    total_calls: u64,
    /// Take a copy of the machine just before this call (1-based, all kinds).
    snapshot_before: Option<u64>,
    snapshot: Option<Box<SimState>>,
}

impl SimState {
    /// Counts a call and says whether it was chosen to fail.
    fn call(&mut self, op: SimOp) -> io::Result<()> {
        self.total_calls += 1;
        if self.snapshot_before == Some(self.total_calls) {
            let mut copy = self.clone();
            copy.snapshot = None;
            copy.snapshot_before = None;
            copy.boot += 1;
            self.snapshot = Some(Box::new(copy));
        }
        let count = self.counts.entry(op).or_insert(0);
        *count += 1;
        let nth = *count;
        if let Some(i) = self.faults.iter().position(|&(o, n)| o == op && n == nth) {
            self.faults.swap_remove(i);
            return Err(io::Error::other(format!("injected failure of {op:?} call #{nth}")));
        }
        Ok(())
    }

    /// The files a crash keeps (durable entries in durable directories),
    /// in path order, each inode once.
    fn durable_files(&self) -> Vec<(PathBuf, u64)> {
        let mut files: Vec<(PathBuf, u64)> = self
            .durable_names
            .iter()
            .filter(|(p, _)| p.parent().is_some_and(|d| self.durable_dirs.contains(d)))
            .map(|(p, id)| (p.clone(), *id))
            .collect();
        files.sort();
        let mut seen = HashSet::new();
        files.retain(|(_, id)| seen.insert(*id));
        files
    }

    fn inode_of(&self, path: &Path) -> io::Result<u64> {
        self.names.get(path).copied().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("{}: no such file", path.display()))
        })
    }

    fn new_inode(&mut self) -> u64 {
        self.next_inode += 1;
        self.inodes.insert(self.next_inode, Inode::default());
        self.next_inode
    }
}

fn inode_mut(state: &mut SimState, id: u64) -> io::Result<&mut Inode> {
    state
        .inodes
        .get_mut(&id)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "simulated inode is gone"))
}

/// The simulated file system. Clones share the same state.
#[derive(Debug, Clone, Default)]
pub struct SimFs {
    state: Arc<Mutex<SimState>>,
}

impl SimFs {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        // A panic while holding this lock is a bug in a test; keep going with
        // the state as it is rather than cascading panics.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes the `nth` call (counting from the simulator's creation, 1-based)
    /// of kind `op` fail. A failing write first writes half of its bytes.
    pub fn fail_call(&self, op: SimOp, nth: u64) {
        self.lock().faults.push((op, nth));
    }

    /// Calls of every kind made so far.
    pub fn total_calls(&self) -> u64 {
        self.lock().total_calls
    }

    /// Arranges for a copy of the machine to be taken just before the `nth`
    /// call of any kind (1-based); collect it with [`SimFs::take_snapshot`].
    /// Crashing that copy is a power cut at exactly that point.
    pub fn snapshot_before_call(&self, nth: u64) {
        self.lock().snapshot_before = Some(nth);
    }

    pub fn take_snapshot(&self) -> Option<SimFs> {
        let state = self.lock().snapshot.take()?;
        Some(SimFs { state: Arc::new(Mutex::new(*state)) })
    }

    /// How many calls of kind `op` were made so far.
    pub fn calls(&self, op: SimOp) -> u64 {
        self.lock().counts.get(&op).copied().unwrap_or(0)
    }

    /// Simulates a power cut and a reboot: unsynced bytes, directory
    /// entries and directories are lost (as `policy` says), locks are
    /// released, and every handle opened before is dead.
    pub fn crash(&self, policy: CrashPolicy) {
        let mut state = self.lock();
        state.boot += 1;
        state.locks.clear();
        state.faults.clear();
        let dirs = state.durable_dirs.clone();
        state.dirs = dirs;
        let durable: Vec<(PathBuf, u64)> = state.durable_files();
        state.names = durable.iter().cloned().collect();
        state.durable_names = state.names.clone();
        let live: HashSet<u64> = state.names.values().copied().collect();
        state.inodes.retain(|id, _| live.contains(id));
        let mut next_sector = 0;
        for (_, id) in &durable {
            if let Some(inode) = state.inodes.get_mut(id) {
                let kept = crash::surviving_bytes(inode, &policy, &mut next_sector);
                inode.durable = kept.clone();
                inode.data = kept;
                inode.dirty_from = None;
            }
        }
    }

    /// How many sectors of `sector_bytes` differ from what is durable, over
    /// every file a crash would keep, in the order
    /// [`CrashPolicy::KeepSectors`] numbers them.
    pub fn unsynced_sectors(&self, sector_bytes: usize) -> usize {
        let state = self.lock();
        state
            .durable_files()
            .iter()
            .filter_map(|(_, id)| state.inodes.get(id))
            .map(|inode| crash::dirty_sectors(inode, sector_bytes).len())
            .sum()
    }

    /// An independent copy of the whole simulated machine, so one workload
    /// can be crashed many ways. Handles opened on `self` do not reach it.
    pub fn snapshot(&self) -> SimFs {
        let mut state = self.lock().clone();
        state.boot += 1;
        SimFs { state: Arc::new(Mutex::new(state)) }
    }

    /// An independent copy of the machine as a kill -9 of every process
    /// using it leaves it: every byte written stays in the page cache,
    /// synced or not (a later [`SimFs::crash`] can still lose the unsynced
    /// ones); locks are released and handles opened before are dead.
    pub fn killed(&self) -> SimFs {
        let copy = self.snapshot();
        copy.lock().locks.clear();
        copy
    }

    /// Bytes written to `path` but not yet synced.
    pub fn unsynced_len(&self, path: &Path) -> usize {
        let state = self.lock();
        let Ok(id) = state.inode_of(path) else { return 0 };
        state.inodes.get(&id).map_or(0, |i| i.data.len().saturating_sub(i.durable.len()))
    }

    /// The bytes of a file as the page cache holds them (test inspection).
    pub fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        let state = self.lock();
        let id = state.inode_of(path)?;
        Ok(state.inodes.get(&id).map(|i| i.data.clone()).unwrap_or_default())
    }

    /// Replaces a file's bytes, durably (test setup: bit flips, truncation).
    pub fn write_file(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.lock();
        let id = match state.names.get(path) {
            Some(&id) => id,
            None => {
                let id = state.new_inode();
                state.names.insert(path.to_path_buf(), id);
                id
            }
        };
        state.durable_names.insert(path.to_path_buf(), id);
        for ancestor in path.ancestors().skip(1) {
            state.dirs.insert(ancestor.to_path_buf());
            state.durable_dirs.insert(ancestor.to_path_buf());
        }
        if let Some(inode) = state.inodes.get_mut(&id) {
            inode.data = bytes.to_vec();
            inode.durable = bytes.to_vec();
            inode.dirty_from = None;
        }
        Ok(())
    }
}

impl SimFs {
    fn open_file(&self, path: &Path, writable: bool) -> io::Result<Box<dyn FsFile>> {
        let state = self.lock();
        let inode = state.inode_of(path)?;
        Ok(Box::new(SimFile { fs: self.clone(), inode, boot: state.boot, writable }))
    }
}

impl Fs for SimFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        for ancestor in dir.ancestors() {
            state.dirs.insert(ancestor.to_path_buf());
            // The root exists before any boot; everything below it becomes
            // durable when its parent is synced.
            if ancestor.parent().is_none() {
                state.durable_dirs.insert(ancestor.to_path_buf());
            }
        }
        Ok(())
    }

    fn list_files(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let state = self.lock();
        if !state.dirs.contains(dir) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no such directory", dir.display()),
            ));
        }
        let mut files: Vec<PathBuf> =
            state.names.keys().filter(|p| p.parent() == Some(dir)).cloned().collect();
        files.sort();
        Ok(files)
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        self.open_file(path, false)
    }

    fn open_write(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        self.open_file(path, true)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let mut state = self.lock();
        state.call(SimOp::Create)?;
        let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
        if !state.dirs.contains(&parent) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no such directory", parent.display()),
            ));
        }
        // Truncating an existing file replaces its inode's bytes; a new name
        // gets a new inode that is not durable until the directory is synced.
        let inode = match state.names.get(path) {
            Some(&id) => {
                let node = inode_mut(&mut state, id)?;
                node.data.clear();
                node.mark_dirty(0);
                id
            }
            None => {
                let id = state.new_inode();
                state.names.insert(path.to_path_buf(), id);
                id
            }
        };
        Ok(Box::new(SimFile { fs: self.clone(), inode, boot: state.boot, writable: true }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.call(SimOp::Rename)?;
        let id = state.inode_of(from)?;
        state.names.remove(from);
        state.names.insert(to.to_path_buf(), id);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.call(SimOp::Remove)?;
        state.inode_of(path)?;
        state.names.remove(path);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.call(SimOp::SyncDir)?;
        state.durable_names.retain(|p, _| p.parent() != Some(dir));
        let entries: Vec<(PathBuf, u64)> = state
            .names
            .iter()
            .filter(|(p, _)| p.parent() == Some(dir))
            .map(|(p, id)| (p.clone(), *id))
            .collect();
        state.durable_names.extend(entries);
        let children: Vec<PathBuf> = state.dirs.iter().filter(|d| d.parent() == Some(dir)).cloned().collect();
        state.durable_dirs.retain(|d| d.parent() != Some(dir));
        state.durable_dirs.extend(children);
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        let state = self.lock();
        state.names.contains_key(path) || state.dirs.contains(path)
    }

    fn try_lock(&self, path: &Path, mode: LockMode) -> io::Result<Option<LockGuard>> {
        let mut state = self.lock();
        if !state.dirs.contains(path) && !state.names.contains_key(path) {
            drop(state);
            self.create(path)?;
            state = self.lock();
        }
        match state.locks.get_mut(path) {
            Some((LockMode::Shared, holders)) if mode == LockMode::Shared => *holders += 1,
            Some(_) => return Ok(None),
            None => {
                state.locks.insert(path.to_path_buf(), (mode, 1));
            }
        }
        let guard = SimLockGuard { fs: self.clone(), path: path.to_path_buf(), mode, boot: state.boot };
        Ok(Some(Box::new(guard)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_keeps_only_synced_bytes_and_entries() {
        let fs = SimFs::new();
        let dir = Path::new("/j");
        fs.create_dir_all(dir).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        let a = fs.create(&dir.join("a")).unwrap();
        a.write_all_at(b"hello", 0).unwrap();
        a.sync_data().unwrap();
        fs.sync_dir(dir).unwrap();
        a.write_all_at(b" world", 5).unwrap();
        let b = fs.create(&dir.join("b")).unwrap();
        b.write_all_at(b"gone", 0).unwrap();
        b.sync_data().unwrap();

        fs.crash(CrashPolicy::KeepUnsyncedPrefix(3));
        assert_eq!(fs.read_file(&dir.join("a")).unwrap(), b"hello wo");
        assert!(!fs.exists(&dir.join("b")), "unsynced directory entry survived");
        assert!(a.size().is_err(), "handle from before the crash still works");
    }

    #[test]
    fn injected_failure_hits_the_nth_call_only() {
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/j")).unwrap();
        let f = fs.create(Path::new("/j/f")).unwrap();
        fs.fail_call(SimOp::Sync, 2);
        assert!(f.sync_data().is_ok());
        assert!(f.sync_data().is_err());
        assert!(f.sync_data().is_ok());
        assert_eq!(fs.calls(SimOp::Sync), 3);
    }

    #[test]
    fn a_reordering_disk_can_keep_a_later_sector_and_lose_an_earlier_one() {
        let fs = SimFs::new();
        let dir = Path::new("/j");
        fs.create_dir_all(dir).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        let f = fs.create(&dir.join("f")).unwrap();
        fs.sync_dir(dir).unwrap();
        f.write_all_at(&[1u8; 8], 0).unwrap();
        f.sync_data().unwrap();
        f.write_all_at(&[2u8; 12], 8).unwrap();
        assert_eq!(fs.unsynced_sectors(4), 3);
        let crashed = fs.snapshot();
        crashed.crash(CrashPolicy::KeepSectors { sector_bytes: 4, keep: vec![false, false, true] });
        let bytes = crashed.read_file(&dir.join("f")).unwrap();
        assert_eq!(bytes.len(), 20);
        assert_eq!((&bytes[..8], &bytes[8..16], &bytes[16..]), (&[1u8; 8][..], &[0u8; 8][..], &[2u8; 4][..]));
        let crashed = fs.snapshot();
        crashed.crash(CrashPolicy::KeepSectors { sector_bytes: 4, keep: vec![true] });
        assert_eq!(crashed.read_file(&dir.join("f")).unwrap(), [[1u8; 8].as_slice(), &[2u8; 4]].concat());
    }

    #[test]
    fn a_directory_is_lost_unless_its_parent_was_synced() {
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/j/sub")).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        fs.create(Path::new("/j/sub/f")).unwrap();
        fs.sync_dir(Path::new("/j/sub")).unwrap();
        let lost = fs.snapshot();
        lost.crash(CrashPolicy::KeepAllData);
        assert!(lost.exists(Path::new("/j")) && !lost.exists(Path::new("/j/sub/f")));
        fs.sync_dir(Path::new("/j")).unwrap();
        fs.crash(CrashPolicy::KeepAllData);
        assert!(fs.exists(Path::new("/j/sub/f")));
    }
}
