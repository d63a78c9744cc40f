//! Reading and writing the identity and continuity records beside the
//! segments (their bytes are defined in `format::records`): the manifest,
//! replaced atomically, and the durable hint, overwritten in place after
//! every fsync.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, IoContext, Result};
use crate::format::{self, DURABLE_HINT_FILE_NAME, JournalId, MANIFEST_FILE_NAME, Manifest};
use crate::fs::{Fs, FsFile, read_small_file, write_atomically};

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
#[derive(Debug)]
pub(crate) struct DurableHint {
    path: PathBuf,
    id: JournalId,
    state: Mutex<(Box<dyn FsFile>, u64)>,
}

impl DurableHint {
    pub fn open(fs: &dyn Fs, dir: &Path, id: JournalId, durable_lsn: u64) -> Result<DurableHint> {
        let path = dir.join(DURABLE_HINT_FILE_NAME);
        let existed = fs.exists(&path);
        let file = if existed { fs.open_write(&path) } else { fs.create(&path) }.ctx("open", &path)?;
        file.write_all_at(&format::encode_durable_hint(id, durable_lsn), 0).ctx("write", &path)?;
        // Make a new file's existence durable; its content never needs to
        // be (and a file that was here already needs no fsync, which would
        // wait behind whatever else the file system is flushing).
        if !existed {
            file.sync_data().ctx("fsync", &path)?;
            fs.sync_dir(dir).ctx("fsync directory", dir)?;
        }
        Ok(DurableHint { path, id, state: Mutex::new((file, durable_lsn)) })
    }

    /// Records that every LSN up to `lsn` is durable.
    pub fn publish(&self, lsn: u64) -> Result<()> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if lsn <= state.1 {
            return Ok(());
        }
        state
            .0
            .write_all_at(&format::encode_durable_hint(self.id, lsn), 0)
            .ctx("write the durable hint", &self.path)?;
        state.1 = lsn;
        Ok(())
    }
}
