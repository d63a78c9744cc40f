//! The writer threads: each takes the writer's state to collect and write
//! a group, lets go of it, and syncs the group through its own handle.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::error::IoContext;
use crate::fs::FsFile;

use super::shared::{Shared, lock};
use super::{Next, SyncTarget, Writer};

/// Starts the writer threads; returns a handle that finishes when all of
/// them have stopped (after the channel's senders are gone).
pub(crate) fn spawn(writer: Writer) -> std::io::Result<JoinHandle<()>> {
    let threads = writer.options.fsyncs_in_flight_max;
    let shared = writer.shared.clone();
    let writer = Arc::new(Mutex::new(writer));
    let mut others = Vec::with_capacity(threads.saturating_sub(1));
    for i in 1..threads {
        let (shared, writer) = (shared.clone(), writer.clone());
        // On failure the caller drops the channel's sender, which stops the
        // threads already started.
        let handle = std::thread::Builder::new()
            .name(format!("bookend-writer-{i}"))
            .spawn(move || run(&shared, &writer))?;
        others.push(handle);
    }
    std::thread::Builder::new().name("bookend-writer-0".into()).spawn(move || {
        run(&shared, &writer);
        for handle in others {
            if handle.join().is_err() {
                tracing::error!(dir = %shared.dir.display(), "a journal writer thread panicked");
            }
        }
    })
}

/// One writer thread: take the state, collect and write a group, let go,
/// sync it through this thread's own handle.
fn run(shared: &Shared, writer: &Mutex<Writer>) {
    let mut own: Option<(u64, Box<dyn FsFile>)> = None;
    loop {
        let (SyncTarget { lsn, generation, path }, stop) = match lock(writer).next_group() {
            Next::Continue => continue,
            Next::Sync(target) => (target, false),
            Next::Stop(target) => (target, true),
        };
        if shared.poisoned().is_none() && claim(shared, lsn) {
            if own.as_ref().is_some_and(|(g, _)| *g != generation) {
                own = None;
            }
            let result = match &own {
                Some((_, file)) => shared.sync_file(&**file, &path),
                None => shared.fs.open_write(&path).ctx("open for fsync", &path).and_then(|file| {
                    let result = shared.sync_file(&*file, &path);
                    own = Some((generation, file));
                    result
                }),
            };
            match result.and_then(|()| shared.durable_up_to(lsn)) {
                Ok(()) => {}
                Err(e) => {
                    if stop {
                        tracing::error!(error = %e, "final fsync on close failed");
                    }
                    shared.fail(e);
                }
            }
        }
        if stop {
            return;
        }
    }
}

/// Claims the fsync that makes `lsn` durable; false if one that covers it
/// has already started.
pub(super) fn claim(shared: &Shared, lsn: u64) -> bool {
    let mut sync = lock(&shared.sync);
    if lsn <= sync.claimed {
        return false;
    }
    sync.claimed = lsn;
    true
}
