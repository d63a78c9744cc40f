//! Folding the journal into state: the one read-decode-apply loop, loading
//! a checkpoint, and listing sessions across memory and the projection store.

use std::collections::BTreeMap;

use bookend_journal::Reader;

use crate::error::Result;
use crate::event::{Event, EventBody, StoredEvent};
use crate::event_codec::decode_event;
use crate::rules::{Lifecycle, Violation};
use crate::session::SessionState;
use crate::table::SessionTable;

/// While folding with a projection store, save every this many events so a
/// long replay does not hold every session it touched in memory. Small on
/// purpose: sled applies a batch of a few thousand sessions far faster per
/// session than one of 50 000 (rebuilding a 1M-session store took 15.4 s
/// saving every 100 000 events, 10.0 s every 5 000).
pub const FOLD_CHECKPOINT_EVERY_EVENTS: u64 = 5_000;

/// Every event `reader` yields, decoded, in LSN order: `each` gets the event
/// and the LSNs a person accepted as lost just before it (if any);
/// `after_frame` runs after each frame. Returns the number of events read.
pub(crate) fn for_each_event(
    mut reader: Reader,
    mut each: impl FnMut(Event, Option<(u64, u64)>) -> Result<()>,
    mut after_frame: impl FnMut() -> Result<()>,
) -> Result<u64> {
    let mut read = 0u64;
    let mut last = 0u64;
    while let Some(frame) = reader.next_frame()? {
        let mut gap = frame.follows_gap;
        for (lsn, bytes) in frame.events() {
            // The reader checks continuity; this guards our own use of it.
            assert!(lsn > last, "the reader handed out LSN {lsn} after {last}");
            last = lsn;
            each(decode_event(lsn, bytes)?, gap.take())?;
            read += 1;
        }
        after_frame()?;
    }
    Ok(read)
}

/// The ids of the sessions started at LSNs `from..=to`, read with `reader`
/// (opened at `from`); `None` if `stop` was set meanwhile.
pub(crate) fn started_ids(
    mut reader: Reader,
    (from, to): (u64, u64),
    stop: &std::sync::atomic::AtomicBool,
) -> Result<Option<Vec<String>>> {
    let mut ids = Vec::new();
    while let Some(frame) = reader.next_frame()? {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(None);
        }
        for (lsn, bytes) in frame.events() {
            if (from..=to).contains(&lsn)
                && let EventBody::SessionStart(fields) = decode_event(lsn, bytes)?.body
            {
                ids.push(std::sync::Arc::unwrap_or_clone(fields).session_id);
            }
            // Stop at `to`: a frame after it may be one the writer is
            // still writing.
            if lsn >= to {
                return Ok(Some(ids));
            }
        }
    }
    Ok(Some(ids))
}

/// Folds one event, after the LSNs a person accepted as lost just before
/// it (`gap`, if any): they exist nowhere, and the fold goes on after them.
pub(crate) fn fold_one(
    life: &mut Lifecycle,
    event: Event,
    gap: Option<(u64, u64)>,
    mut on_violation: impl FnMut(&Violation),
) -> Result<()> {
    if let Some((lost_from, lost_to)) = gap
        && lost_from == life.meta.last_lsn + 1
    {
        life.meta.last_lsn = lost_to;
    }
    for v in life.apply(event.lsn, &StoredEvent { at: event.at, body: event.body })? {
        on_violation(&v);
    }
    Ok(())
}

/// Loads the checkpoint into `life` if there is a usable one for a journal
/// whose last LSN is `journal_last`; otherwise the caller folds from LSN 1
/// into an empty store (a store that cannot be trusted is moved aside for a
/// person to inspect, never deleted). Returns whether a checkpoint was loaded.
pub fn load_checkpoint(life: &mut Lifecycle, journal_last: u64) -> Result<bool> {
    let Some(store) = life.table.store() else { return Ok(false) };
    let problem = match store.load_meta() {
        Ok(Some(meta)) if meta.last_lsn <= journal_last => {
            let mut table = SessionTable::with_store(Some(store.clone()));
            match table.load_active(&meta) {
                Ok(()) => {
                    life.table = table;
                    life.writers.assume_single(meta.epoch, meta.epoch_open);
                    life.meta = meta;
                    return Ok(true);
                }
                Err(e) => format!("its sessions cannot be read ({e})"),
            }
        }
        Ok(Some(meta)) => {
            format!("it is at LSN {} but the journal ends at LSN {journal_last}", meta.last_lsn)
        }
        Ok(None) => {
            if journal_last > 0 {
                // A new, replaced (already reported) or older-format store.
                tracing::info!(store = %store.path().display(), "the projection store holds no checkpoint; folding the journal from LSN 1");
            }
            store.clear()?;
            return Ok(false);
        }
        Err(e) => format!("it cannot be read ({e})"),
    };
    let Some(store) = life.table.take_store() else { return Ok(false) };
    life.table = SessionTable::with_store(Some(store.replace_untrusted(problem)?));
    Ok(false)
}

/// Folds every event `reader` yields into `life`, reporting violations to
/// `on_violation`, saving a checkpoint every `FOLD_CHECKPOINT_EVERY_EVENTS`.
/// Returns the number of events folded.
pub fn fold_journal(
    life: &mut Lifecycle,
    reader: Reader,
    on_violation: impl FnMut(&Violation),
) -> Result<u64> {
    fold_journal_with(life, reader, Some(FOLD_CHECKPOINT_EVERY_EVENTS), on_violation, |_| {})
}

/// [`fold_journal`], saving every `save_every` events (never with `None`),
/// and telling `progress` the last LSN folded after every frame.
pub fn fold_journal_with(
    life: &mut Lifecycle,
    reader: Reader,
    save_every: Option<u64>,
    mut on_violation: impl FnMut(&Violation),
    mut progress: impl FnMut(u64),
) -> Result<u64> {
    let since_save = std::cell::Cell::new(0u64);
    let life = std::cell::RefCell::new(life);
    for_each_event(
        reader,
        |event, gap| {
            fold_one(&mut life.borrow_mut(), event, gap, &mut on_violation)?;
            since_save.set(since_save.get() + 1);
            Ok(())
        },
        || {
            let mut life = life.borrow_mut();
            if save_every.is_some_and(|n| since_save.get() >= n) {
                // Everything a journal reader yields is durable, so saving it
                // cannot put the store ahead of the journal. Without a store,
                // this packs the ended sessions instead.
                life.save_checkpoint()?;
                since_save.set(0);
            }
            progress(life.meta.last_lsn);
            Ok(())
        },
    )
}

/// The sessions `keep` accepts, in id order: the projection store (or the
/// packed ended sessions) overlaid with memory. Only the matches are held
/// decoded, so a filtered listing of a long history stays small.
pub fn sessions_where(life: &Lifecycle, keep: impl Fn(&SessionState) -> bool) -> Result<Vec<SessionState>> {
    let stored = life.table.store().into_iter().flat_map(|store| store.sessions()).chain(life.table.packed());
    overlay(stored, life.table.hot(), |id| life.table.in_memory(id).is_some(), keep)
}

/// Every session, in id order.
pub fn all_sessions(life: &Lifecycle) -> Result<Vec<SessionState>> {
    sessions_where(life, |_| true)
}

/// `stored` sessions that are not `in_memory`, and the `memory` ones, that
/// `keep` accepts, in id order.
pub(crate) fn overlay<'a>(
    stored: impl Iterator<Item = Result<SessionState>>,
    memory: impl Iterator<Item = &'a SessionState>,
    in_memory: impl Fn(&str) -> bool,
    keep: impl Fn(&SessionState) -> bool,
) -> Result<Vec<SessionState>> {
    let mut out: BTreeMap<String, SessionState> = BTreeMap::new();
    for s in stored {
        let s = s?;
        if !in_memory(s.id()) && keep(&s) {
            out.insert(s.id().to_string(), s);
        }
    }
    for s in memory.filter(|s| keep(s)) {
        out.insert(s.id().to_string(), s.clone());
    }
    Ok(out.into_values().collect())
}

/// Folds the whole journal in `dir` in memory (no projection store): what
/// read-only tools use, safe while a writer appends.
/// `progress` gets the last LSN folded after each frame.
pub fn fold_dir(
    fs: std::sync::Arc<dyn bookend_journal::fs::Fs>,
    dir: &std::path::Path,
    progress: impl FnMut(u64),
) -> Result<Lifecycle> {
    let mut life = Lifecycle::with_table(SessionTable::untracked());
    let reader = Reader::open_with_fs(fs, dir, 1);
    fold_journal_with(&mut life, reader, Some(FOLD_CHECKPOINT_EVERY_EVENTS), |_| {}, progress)?;
    Ok(life)
}
