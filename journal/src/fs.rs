//! The seam between the journal and the file system.
//!
//! Every byte the journal reads or writes goes through [`Fs`] and [`FsFile`],
//! so tests can swap the real file system ([`StdFs`]) for the simulated one
//! (`crate::sim::SimFs`), which loses unsynced bytes, tears writes and fails
//! calls on demand.

use std::any::Any;
use std::fmt::Debug;
use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// An open file. Writes are positional: the journal always knows its offsets.
pub trait FsFile: Send + Sync + Debug {
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read
    /// (0 at the end of the file).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `offset`. On error, a prefix may have been written.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes the file's data durable (fdatasync).
    fn sync_data(&self) -> io::Result<()>;
    /// The file's current length in bytes.
    fn size(&self) -> io::Result<u64>;
    /// Truncates or extends the file.
    fn set_len(&self, len: u64) -> io::Result<()>;
}

/// Held while a lock is held; dropping it releases the lock.
pub type LockGuard = Box<dyn Any + Send + Sync>;

/// How a lock is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockMode {
    /// No other holder of any mode.
    Exclusive,
    /// Other shared holders, but no exclusive one.
    Shared,
}

/// File-system operations the journal needs, and no others.
pub trait Fs: Send + Sync + Debug {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The paths of the files directly inside `dir` (not directories).
    fn list_files(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Opens an existing file for reading and writing, without truncating it.
    fn open_write(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Creates a file (truncating any existing one) for reading and writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    fn exists(&self, path: &Path) -> bool;
    /// Tries to take an advisory lock on `path`, a directory or a file
    /// (created if missing). `None` if another holder prevents it. The lock
    /// is released when the guard is dropped or the process dies.
    fn try_lock(&self, path: &Path, mode: LockMode) -> io::Result<Option<LockGuard>>;
    /// Takes an advisory lock on `path`, waiting while another holder has
    /// it (a dead holder's lock is released by the kernel). The default
    /// retries [`Fs::try_lock`] with a short, growing sleep.
    fn lock(&self, path: &Path, mode: LockMode) -> io::Result<LockGuard> {
        let mut wait = std::time::Duration::from_micros(10);
        loop {
            if let Some(guard) = self.try_lock(path, mode)? {
                return Ok(guard);
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(std::time::Duration::from_millis(1));
        }
    }
}

/// The real file system, through `std`.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFs;

#[derive(Debug)]
struct StdFile(File);

impl FsFile for StdFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        loop {
            match self.0.read_at(buf, offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
}

impl Fs for StdFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn list_files(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                files.push(entry.path());
            }
        }
        files.sort();
        Ok(files)
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        Ok(Box::new(StdFile(File::open(path)?)))
    }

    fn open_write(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Box::new(StdFile(file)))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path)?;
        Ok(Box::new(StdFile(file)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn lock(&self, path: &Path, mode: LockMode) -> io::Result<LockGuard> {
        StdFs::lock_blocking(path, mode)
    }

    fn try_lock(&self, path: &Path, mode: LockMode) -> io::Result<Option<LockGuard>> {
        let file = lockable(path)?;
        let taken = match mode {
            LockMode::Exclusive => file.try_lock(),
            LockMode::Shared => file.try_lock_shared(),
        };
        match taken {
            Ok(()) => Ok(Some(Box::new(file))),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }
}

impl StdFs {
    /// The blocking flock (`Fs::lock`): the kernel wakes the waiter.
    pub fn lock_blocking(path: &Path, mode: LockMode) -> io::Result<LockGuard> {
        let file = lockable(path)?;
        match mode {
            LockMode::Exclusive => file.lock()?,
            LockMode::Shared => file.lock_shared()?,
        }
        Ok(Box::new(file))
    }
}

/// A handle to lock `path` through. A directory is locked through a
/// read-only handle on it: it cannot be unlinked from under its holder the
/// way a lock file can.
fn lockable(path: &Path) -> io::Result<File> {
    if path.is_dir() {
        File::open(path)
    } else {
        OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)
    }
}

/// Replaces the file at `path` with `bytes` durably: write a temporary file,
/// fsync it, rename it over `path`, fsync the directory. A crash leaves the
/// old file or the new one, never a mix.
pub fn write_atomically(fs: &dyn Fs, path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomically_with(fs, path, |file| file.write_all_at(bytes, 0))
}

/// [`write_atomically`], with the content written by `write` into the
/// temporary file (a piece at a time, for a file too large to build in
/// memory first).
pub fn write_atomically_with(
    fs: &dyn Fs,
    path: &Path,
    write: impl FnOnce(&dyn FsFile) -> io::Result<()>,
) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = dir.join(format!("{name}{}", crate::format::TEMP_SUFFIX));
    {
        let file = fs.create(&temp)?;
        write(&*file)?;
        file.sync_data()?;
    }
    fs.rename(&temp, path)?;
    fs.sync_dir(dir)
}

/// The file at `path` opened for reading, `None` if it does not exist.
pub fn open_read_if_exists(fs: &dyn Fs, path: &Path) -> io::Result<Option<Box<dyn FsFile>>> {
    match fs.open_read(path) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The whole content of a small file, `None` if it does not exist; a file
/// longer than `max` bytes is an error (never a large allocation).
pub fn read_small_file(fs: &dyn Fs, path: &Path, max: usize) -> io::Result<Option<Vec<u8>>> {
    if !fs.exists(path) {
        return Ok(None);
    }
    let Some(file) = open_read_if_exists(fs, path)? else { return Ok(None) };
    let len = file.size()?;
    if len > max as u64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is {len} bytes, over the limit of {max}", path.display()),
        ));
    }
    let mut buf = vec![0u8; len as usize];
    let mut read = 0;
    while read < buf.len() {
        let n = file.read_at(&mut buf[read..], read as u64)?;
        if n == 0 {
            break;
        }
        read += n;
    }
    buf.truncate(read);
    Ok(Some(buf))
}

/// Creates `dir` (and its parents) and makes the new entry durable by
/// fsyncing its parent directory.
pub fn create_dir_durably(fs: &dyn Fs, dir: &Path) -> io::Result<()> {
    if fs.exists(dir) {
        return Ok(());
    }
    fs.create_dir_all(dir)?;
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => fs.sync_dir(parent),
        _ => Ok(()),
    }
}
