//! A simulated file system for crash and fault tests.
//!
//! Each file keeps two copies of its bytes: what the page cache holds
//! (`data`) and what has reached the medium (`durable`). Directory entries
//! are durable only after `sync_dir`. [`SimFs::crash`] throws away everything
//! that was not made durable, optionally keeping a prefix of each file's
//! unsynced tail (a torn write), exactly as a power cut could. Calls can be
//! made to fail on their Nth occurrence.
//!
//! Handles opened before a crash belong to the previous "boot": every call on
//! them fails, so a journal that was not dropped cannot scribble on the
//! recovered state.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::fs::{Fs, FsFile, LockOutcome};

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

/// What a crash keeps of the bytes that were written but not synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPolicy {
    /// Every unsynced byte is lost.
    DropUnsynced,
    /// Each file keeps up to this many bytes of its unsynced appended tail,
    /// tearing the last write at that byte.
    KeepUnsyncedPrefix(usize),
    /// Every written byte survives (the OS flushed everything in time), but
    /// unsynced directory entries are still lost.
    KeepAllData,
}

#[derive(Debug, Default, Clone)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// Lowest offset changed since the last sync; `None` when clean.
    dirty_from: Option<usize>,
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
    locks: HashSet<PathBuf>,
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

    /// Simulates a power cut and a reboot: unsynced bytes and directory
    /// entries are lost (as `policy` says), locks are released, and every
    /// handle opened before is dead.
    pub fn crash(&self, policy: CrashPolicy) {
        let mut state = self.lock();
        state.boot += 1;
        state.locks.clear();
        state.faults.clear();
        state.names = state.durable_names.clone();
        let live: HashSet<u64> = state.names.values().copied().collect();
        state.inodes.retain(|id, _| live.contains(id));
        for inode in state.inodes.values_mut() {
            let kept = surviving_bytes(inode, policy);
            inode.durable = kept.clone();
            inode.data = kept;
            inode.dirty_from = None;
        }
    }

    /// An independent copy of the whole simulated machine, so one workload
    /// can be crashed many ways. Handles opened on `self` do not reach it.
    pub fn snapshot(&self) -> SimFs {
        let mut state = self.lock().clone();
        state.boot += 1;
        SimFs { state: Arc::new(Mutex::new(state)) }
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
        if let Some(inode) = state.inodes.get_mut(&id) {
            inode.data = bytes.to_vec();
            inode.durable = bytes.to_vec();
            inode.dirty_from = None;
        }
        Ok(())
    }
}

fn surviving_bytes(inode: &Inode, policy: CrashPolicy) -> Vec<u8> {
    let appended_only = inode.data.len() >= inode.durable.len()
        && inode.dirty_from.is_none_or(|from| from >= inode.durable.len());
    let keep_extra = match policy {
        CrashPolicy::DropUnsynced => 0,
        CrashPolicy::KeepUnsyncedPrefix(n) => n,
        CrashPolicy::KeepAllData => usize::MAX,
    };
    if !appended_only || keep_extra == 0 {
        return inode.durable.clone();
    }
    let end = inode.durable.len().saturating_add(keep_extra).min(inode.data.len());
    inode.data[..end].to_vec()
}

#[derive(Debug)]
struct SimFile {
    fs: SimFs,
    inode: u64,
    boot: u64,
    writable: bool,
}

impl SimFile {
    fn with_inode<R>(&self, f: impl FnOnce(&mut SimState, u64) -> io::Result<R>) -> io::Result<R> {
        let mut state = self.fs.lock();
        if state.boot != self.boot {
            return Err(io::Error::other("file handle from before a simulated crash"));
        }
        f(&mut state, self.inode)
    }
}

fn inode_mut(state: &mut SimState, id: u64) -> io::Result<&mut Inode> {
    state
        .inodes
        .get_mut(&id)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "simulated inode is gone"))
}

impl FsFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.with_inode(|state, id| {
            let inode = inode_mut(state, id)?;
            let start = usize::try_from(offset).unwrap_or(usize::MAX).min(inode.data.len());
            let n = buf.len().min(inode.data.len() - start);
            buf[..n].copy_from_slice(&inode.data[start..start + n]);
            Ok(n)
        })
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "file opened read-only"));
        }
        self.with_inode(|state, id| {
            let result = state.call(SimOp::Write);
            let written = if result.is_ok() { buf.len() } else { buf.len() / 2 };
            let inode = inode_mut(state, id)?;
            let start = usize::try_from(offset).map_err(io::Error::other)?;
            if inode.data.len() < start {
                inode.data.resize(start, 0);
            }
            let end = start + written;
            if inode.data.len() < end {
                inode.data.resize(end, 0);
            }
            inode.data[start..end].copy_from_slice(&buf[..written]);
            inode.mark_dirty(start);
            result
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        self.with_inode(|state, id| {
            state.call(SimOp::Sync)?;
            inode_mut(state, id)?.sync();
            Ok(())
        })
    }

    fn size(&self) -> io::Result<u64> {
        self.with_inode(|state, id| Ok(inode_mut(state, id)?.data.len() as u64))
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.with_inode(|state, id| {
            state.call(SimOp::SetLen)?;
            let inode = inode_mut(state, id)?;
            let len = usize::try_from(len).map_err(io::Error::other)?;
            let from = len.min(inode.data.len());
            inode.data.resize(len, 0);
            inode.mark_dirty(from);
            Ok(())
        })
    }
}

struct SimLockGuard {
    fs: SimFs,
    path: PathBuf,
    boot: u64,
}

impl Drop for SimLockGuard {
    fn drop(&mut self) {
        let mut state = self.fs.lock();
        if state.boot == self.boot {
            state.locks.remove(&self.path);
        }
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
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        let state = self.lock();
        state.names.contains_key(path) || state.dirs.contains(path)
    }

    fn try_lock(&self, path: &Path, pid: u32) -> io::Result<LockOutcome> {
        let mut state = self.lock();
        if state.locks.contains(path) {
            let holder = state
                .names
                .get(path)
                .and_then(|id| state.inodes.get(id))
                .and_then(|i| std::str::from_utf8(&i.data).ok())
                .and_then(|s| s.trim().parse().ok());
            return Ok(LockOutcome::HeldBy(holder));
        }
        state.locks.insert(path.to_path_buf());
        let boot = state.boot;
        drop(state);
        self.write_file(path, format!("{pid}\n").as_bytes())?;
        let guard: Box<dyn Any + Send + Sync> =
            Box::new(SimLockGuard { fs: self.clone(), path: path.to_path_buf(), boot });
        Ok(LockOutcome::Acquired(guard))
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
}
