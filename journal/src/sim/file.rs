//! Handles on simulated files, and simulated locks.

use std::io;
use std::path::PathBuf;

use super::{SimFs, SimOp, SimState, inode_mut};
use crate::fs::{FsFile, LockMode};

#[derive(Debug)]
pub(super) struct SimFile {
    pub fs: SimFs,
    pub inode: u64,
    pub boot: u64,
    pub writable: bool,
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

/// A held simulated lock; released on drop, unless a crash came first.
pub(super) struct SimLockGuard {
    pub fs: SimFs,
    pub path: PathBuf,
    pub mode: LockMode,
    pub boot: u64,
}

impl Drop for SimLockGuard {
    fn drop(&mut self) {
        let mut state = self.fs.lock();
        if state.boot != self.boot {
            return;
        }
        if let Some((mode, holders)) = state.locks.get_mut(&self.path) {
            debug_assert_eq!(*mode, self.mode);
            *holders -= 1;
            if *holders == 0 {
                state.locks.remove(&self.path);
            }
        }
    }
}
