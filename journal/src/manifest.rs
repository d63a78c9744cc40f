//! Reading and writing the identity and continuity records beside the
//! segments (their bytes are defined in `format::records`): the manifest,
//! replaced atomically, and the durable hint, overwritten in place after
//! every fsync.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{Error, IoContext, Result};
use crate::format::{self, DURABLE_HINT_FILE_NAME, JournalId, MANIFEST_FILE_NAME, Manifest};
use crate::fs::{Fs, FsFile, LockMode, read_small_file, write_atomically};
use crate::segment::read_full;

pub(crate) fn manifest_path(dir: &Path) -> PathBuf {
    dir.join(MANIFEST_FILE_NAME)
}

/// The manifest of the journal in `dir`, `None` if it has none (a new
/// journal, or one written by bookend before format version 2). A manifest
/// that does not check is corruption: it is the journal's identity.
pub(crate) fn load_manifest(fs: &dyn Fs, dir: &Path) -> Result<Option<Manifest>> {
    let path = manifest_path(dir);
    let Some(bytes) =
        read_small_file(fs, &path, format::records::MANIFEST_SIZE_MAX_BYTES).ctx("read", &path)?
    else {
        return Ok(None);
    };
    format::decode_manifest(&bytes).map(Some).map_err(|reason| Error::corruption(&path, 0, reason))
}

/// Replaces the manifest durably.
pub(crate) fn store_manifest(fs: &dyn Fs, dir: &Path, manifest: &Manifest) -> Result<()> {
    let path = manifest_path(dir);
    write_atomically(fs, &path, &format::encode_manifest(manifest)).ctx("replace", &path)
}

/// The durable LSN the hint in `dir` records for journal `id` (0 if there
/// is none, it is torn, or it belongs to another journal).
pub(crate) fn read_durable_hint(fs: &dyn Fs, dir: &Path, id: JournalId) -> u64 {
    let path = dir.join(DURABLE_HINT_FILE_NAME);
    match read_small_file(fs, &path, 4096) {
        Ok(Some(bytes)) => match format::decode_durable_hint(&bytes) {
            Some((hint_id, lsn)) if hint_id == id => lsn,
            _ => 0,
        },
        _ => 0,
    }
}

/// The writer's handle on the durable hint: after each fsync it overwrites
/// the hint with the new durable LSN (never an older one), before anyone
/// waiting for that fsync is told. The hint itself is not synced. A failed
/// write is treated like a failed fsync: the disk is not to be trusted.
///
/// Several writer processes share one hint, and each fsyncs on its own
/// schedule: each write is then made under an exclusive lock on the hint
/// file, and only if it raises what the file holds. Without that, a slower
/// process's fsync moved the hint back, and readers in other processes
/// stopped short of durable events until someone appended again.
pub(crate) struct DurableHint {
    path: PathBuf,
    id: JournalId,
    /// Several writer processes: the file system to lock the hint through.
    shared: Option<Arc<dyn Fs>>,
    /// The open hint, and an LSN the file is known to hold at least.
    state: Mutex<(Box<dyn FsFile>, u64)>,
}

impl std::fmt::Debug for DurableHint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableHint")
            .field("path", &self.path)
            .field("shared", &self.shared.is_some())
            .finish()
    }
}

impl DurableHint {
    /// Opens (or creates) the hint of journal `id` in `dir` and records
    /// `durable_lsn` in it: as it is for a single writer, which alone knows
    /// the journal's state; only if it raises the hint for `shared_writers`.
    pub fn open(
        fs: &Arc<dyn Fs>,
        dir: &Path,
        id: JournalId,
        durable_lsn: u64,
        shared_writers: bool,
    ) -> Result<DurableHint> {
        let path = dir.join(DURABLE_HINT_FILE_NAME);
        let existed = fs.exists(&path);
        let file = if existed { fs.open_write(&path) } else { fs.create(&path) }.ctx("open", &path)?;
        let shared = shared_writers.then(|| fs.clone());
        let hint = DurableHint { path, id, shared, state: Mutex::new((file, 0)) };
        if shared_writers {
            hint.publish(durable_lsn)?;
        } else {
            hint.write(&mut hint.lock_state(), durable_lsn)?;
        }
        // Make a new file's existence durable; its content never needs to
        // be (and a file that was here already needs no fsync, which would
        // wait behind whatever else the file system is flushing).
        if !existed {
            hint.lock_state().0.sync_data().ctx("fsync", &hint.path)?;
            fs.sync_dir(dir).ctx("fsync directory", dir)?;
        }
        Ok(hint)
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, (Box<dyn FsFile>, u64)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that every LSN up to `lsn` is durable.
    pub fn publish(&self, lsn: u64) -> Result<()> {
        let mut state = self.lock_state();
        if lsn <= state.1 {
            return Ok(());
        }
        let Some(fs) = &self.shared else { return self.write(&mut state, lsn) };
        let _turn = fs.lock(&self.path, LockMode::Exclusive).ctx("lock the durable hint", &self.path)?;
        let mut bytes = [0u8; format::DURABLE_HINT_SIZE];
        let n = read_full(&*state.0, &self.path, &mut bytes, 0)?;
        let holds = match format::decode_durable_hint(&bytes[..n]) {
            Some((hint_id, held)) if hint_id == self.id => held,
            _ => 0,
        };
        if holds >= lsn {
            state.1 = holds;
            return Ok(());
        }
        self.write(&mut state, lsn)
    }

    fn write(&self, state: &mut (Box<dyn FsFile>, u64), lsn: u64) -> Result<()> {
        state
            .0
            .write_all_at(&format::encode_durable_hint(self.id, lsn), 0)
            .ctx("write the durable hint", &self.path)?;
        state.1 = lsn;
        Ok(())
    }
}
