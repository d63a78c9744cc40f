//! Folding the journal into state: loading a checkpoint, replaying events,
//! and listing sessions across memory and the checkpoint store.

use std::collections::BTreeMap;

use bookend_journal::Reader;

use crate::error::Result;
use crate::event::StoredEvent;
use crate::event_codec::decode_event;
use crate::lifecycle::{Lifecycle, Violation};
use crate::state::{SessionState, SessionTable};

/// While folding with a checkpoint store, save every this many events so a
/// long replay does not hold every session it touched in memory. Small on
/// purpose: sled applies a batch of a few thousand sessions far faster per
/// session than one of 50 000 (rebuilding a 1M-session store took 15.4 s
/// saving every 100 000 events, 10.0 s every 5 000).
pub const FOLD_CHECKPOINT_EVERY_EVENTS: u64 = 5_000;

/// Loads the checkpoint into `life` if there is a usable one for a journal
/// whose last LSN is `journal_last`; otherwise the caller folds from LSN 1
/// into an empty store (a store that cannot be trusted is moved aside for a
/// person to inspect, never deleted). Returns whether a checkpoint was loaded.
pub fn load_checkpoint(life: &mut Lifecycle, journal_last: u64) -> Result<bool> {
    let Some(store) = life.store.as_ref() else { return Ok(false) };
    let problem = match store.load_meta() {
        Ok(Some(meta)) if meta.last_lsn <= journal_last => {
            let mut table = SessionTable::default();
            match table.load_active(&meta, store) {
                Ok(()) => {
                    life.table = table;
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
    let Some(store) = life.store.take() else { return Ok(false) };
    life.store = Some(store.replace_untrusted(problem)?);
    Ok(false)
}

/// Folds every event `reader` yields into `life`, reporting violations to
/// `on_violation`. Returns the number of events folded.
pub fn fold_journal(
    life: &mut Lifecycle,
    reader: Reader,
    on_violation: impl FnMut(&Violation),
) -> Result<u64> {
    fold_journal_with_progress(life, reader, on_violation, |_| {})
}

/// [`fold_journal`], telling `progress` the last LSN folded after every frame.
pub fn fold_journal_with_progress(
    life: &mut Lifecycle,
    mut reader: Reader,
    mut on_violation: impl FnMut(&Violation),
    mut progress: impl FnMut(u64),
) -> Result<u64> {
    let mut folded = 0u64;
    while let Some(frame) = reader.next_frame()? {
        if let Some((lost_from, lost_to)) = frame.follows_gap
            && lost_from == life.meta.last_lsn + 1
        {
            // LSNs a person accepted as lost (`--accept-data-loss`): they
            // exist nowhere, and the fold goes on after them.
            life.meta.last_lsn = lost_to;
        }
        for (lsn, bytes) in frame.events() {
            let event = decode_event(lsn, bytes)?;
            let stored = StoredEvent { at: event.at, body: event.body };
            for v in life.apply(lsn, &stored)? {
                on_violation(&v);
            }
            folded += 1;
        }
        if folded % FOLD_CHECKPOINT_EVERY_EVENTS < u64::from(frame.count)
            && folded >= FOLD_CHECKPOINT_EVERY_EVENTS
        {
            // Everything a journal reader yields is durable, so saving it
            // cannot put the store ahead of the journal. Without a store,
            // this packs the ended sessions instead.
            life.save_checkpoint()?;
        }
        progress(life.meta.last_lsn);
    }
    Ok(folded)
}

/// Every session, in id order: the checkpoint store (or the packed ended
/// sessions) overlaid with memory.
pub fn all_sessions(life: &Lifecycle) -> Result<Vec<SessionState>> {
    sessions_where(life, |_| true)
}

/// The sessions `keep` accepts, in id order: the checkpoint store (or the
/// packed ended sessions) overlaid with memory. Only the matches are held
/// decoded, so a filtered listing of a long history stays small.
pub fn sessions_where(life: &Lifecycle, keep: impl Fn(&SessionState) -> bool) -> Result<Vec<SessionState>> {
    let stored = life.store.iter().flat_map(|store| store.sessions()).chain(life.table.packed());
    overlay(stored, life.table.hot(), |id| life.table.in_memory(id).is_some(), keep)
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
        if !in_memory(&s.session_id) && keep(&s) {
            out.insert(s.session_id.clone(), s);
        }
    }
    for s in memory.filter(|s| keep(s)) {
        out.insert(s.session_id.clone(), s.clone());
    }
    Ok(out.into_values().collect())
}

/// Folds the whole journal in `dir` in memory (no checkpoint store): what
/// read-only tools use, safe while a writer appends.
pub fn fold_dir(fs: std::sync::Arc<dyn bookend_journal::fs::Fs>, dir: &std::path::Path) -> Result<Lifecycle> {
    let mut life = Lifecycle { table: SessionTable::untracked(), ..Lifecycle::default() };
    fold_journal(&mut life, Reader::open_with_fs(fs, dir, 1), |_| {})?;
    Ok(life)
}
