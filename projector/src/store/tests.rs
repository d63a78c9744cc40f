//! Unit tests of the projection store.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::event::EndReason;
use crate::session::Meta;

fn session(id: &str, active: bool, end_reason: Option<EndReason>) -> SessionState {
    assert_eq!(active, end_reason.is_none(), "an ended session has a reason");
    SessionState::for_tests(id, end_reason)
}

/// The `i`th of a series of ended sessions, ids in order (for the store's
/// tests that need many).
pub(super) fn ended(i: usize) -> SessionState {
    SessionState::for_tests(&format!("ended-{i:06}"), Some(EndReason::Completed))
}

fn index_keys(store: &ProjectionStore) -> (BTreeSet<String>, BTreeSet<String>) {
    (store.index(ACTIVE_PREFIX).unwrap(), store.index(AWAITING_PREFIX).unwrap())
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Index keys follow each session's state whether or not the handle
/// knows what the store holds (fresh handle: it removes blindly; after
/// `load_meta` or `clear`: it writes only what changes).
#[test]
fn index_keys_follow_the_sessions_with_or_without_knowing_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("projection");
    let meta = StoredMeta::of(&Meta { last_lsn: 1, ..Meta::default() });
    {
        let store = ProjectionStore::open(&path, 1 << 20).unwrap();
        store.clear().unwrap();
        let sessions = [
            session("a", true, None),
            session("b", true, None),
            session("c", false, Some(EndReason::Completed)),
        ];
        store.save(&meta, sessions.iter()).unwrap();
        assert_eq!(index_keys(&store), (ids(&["a", "b"]), ids(&[])));
        let sessions = [session("a", false, Some(EndReason::IdleExpiry)), session("d", true, None)];
        store.save(&meta, sessions.iter()).unwrap();
        assert_eq!(index_keys(&store), (ids(&["b", "d"]), ids(&["a"])));
        store.flush().unwrap();
    }
    let blind = ProjectionStore::open(&path, 1 << 20).unwrap();
    let mut finalized = session("a", false, Some(EndReason::IdleExpiry));
    finalized.expiry_finalized_lsn = Some(3);
    // The meta record counts the index keys it goes with (here: d active).
    let meta_d = StoredMeta::of(&Meta { last_lsn: 1, active: ids(&["d"]), ..Meta::default() });
    blind.save(&meta_d, [finalized.clone(), session("b", false, Some(EndReason::Completed))].iter()).unwrap();
    assert_eq!(index_keys(&blind), (ids(&["d"]), ids(&[])));
    blind.flush().unwrap();
    drop(blind);

    let known = ProjectionStore::open(&path, 1 << 20).unwrap();
    let loaded = known.load_meta().unwrap().unwrap();
    assert_eq!(loaded.active, ids(&["d"]));
    let sessions = [session("d", false, Some(EndReason::DailyReset)), session("e", true, None)];
    known.save(&meta, sessions.iter()).unwrap();
    assert_eq!(index_keys(&known), (ids(&["e"]), ids(&["d"])));

    // A reopened session moves back under `a/`; every session is stored
    // exactly once, with its latest record.
    let mut reopened = session("c", true, None);
    reopened.spans = 2;
    known.save(&meta, [reopened.clone()].iter()).unwrap();
    assert_eq!(known.session("c").unwrap(), Some(reopened));
    let stored: Vec<(String, bool)> =
        known.sessions().map(|s| s.map(|s| (s.start.session_id.clone(), s.active)).unwrap()).collect();
    let expected = [("c", true), ("e", true), ("a", false), ("b", false), ("d", false)];
    assert_eq!(stored, expected.map(|(id, active)| (id.to_string(), active)));
    assert_eq!(known.active_sessions().count(), 2);
}

/// Regression: sled reports a held lock as `Other`, and the store used
/// to be moved aside (losing the checkpoint) instead of waited for.
#[test]
fn a_store_held_by_another_handle_is_waited_for_not_reset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("projection");
    let first = ProjectionStore::open(&path, 1 << 20).unwrap();
    let meta = Meta { last_lsn: 42, ..Meta::default() };
    first.save(&StoredMeta::of(&meta), std::iter::empty()).unwrap();
    first.flush().unwrap();
    let holder = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(first);
    });
    let second = ProjectionStore::open_for(&path, 1 << 20, None).unwrap();
    holder.join().unwrap();
    assert_eq!(second.load_meta().unwrap().map(|m| m.last_lsn), Some(42));
    assert!(!path.with_file_name("projection.broken-1").exists());
}

/// Ended sessions live in runs that merge as checkpoints come: after every
/// checkpoint, each session reads back as last saved (a reopened one from
/// its `a/` record, one ended again from its newest run), a listing holds
/// each once, and the runs stay few. Checked against a plain map.
#[test]
fn sessions_read_back_as_last_saved_while_runs_merge() {
    let dir = tempfile::tempdir().unwrap();
    let store = ProjectionStore::open(&dir.path().join("projection"), 1 << 20).unwrap();
    store.clear().unwrap();
    let mut model: BTreeMap<String, SessionState> = BTreeMap::new();
    for round in 0..60u64 {
        let mut changed = Vec::new();
        for n in 0..40u64 {
            // New ids, and now and then an old one ended, reopened or finalized again.
            let id = if n % 7 == 3 && round > 0 {
                format!("s{:05}", (round * 13 + n) % (round * 40))
            } else {
                format!("s{:05}", round * 40 + n)
            };
            let mut s =
                model.get(&id).cloned().unwrap_or_else(|| session(&id, false, Some(EndReason::IdleExpiry)));
            s.spans += u32::from(model.contains_key(&id));
            s.active = n % 5 == 0;
            s.end_reason = if s.active { None } else { Some(EndReason::IdleExpiry) };
            s.finalize_attempts = round as u32;
            model.insert(id, s.clone());
            changed.push(s);
        }
        let active: BTreeSet<String> =
            model.values().filter(|s| s.active).map(|s| s.id().to_string()).collect();
        let meta = StoredMeta::of(&Meta { last_lsn: round + 1, active, ..Meta::default() });
        store.save(&meta, changed.iter()).unwrap();
        store.compact().unwrap();
        for id in ["s00000", "s00003", &format!("s{:05}", round * 40 + 39)] {
            assert_eq!(store.session(id).unwrap().as_ref(), model.get(id), "{id} after round {round}");
        }
        assert!(store.runs().runs.len() <= 12, "{} runs", store.runs().runs.len());
    }
    let listed: Vec<SessionState> = store.sessions().map(Result::unwrap).collect();
    let (active, ended): (Vec<&SessionState>, Vec<&SessionState>) = model.values().partition(|s| s.active);
    let expected: Vec<SessionState> = active.into_iter().chain(ended).cloned().collect();
    assert_eq!(listed, expected);
    for (id, s) in &model {
        assert_eq!(store.session(id).unwrap().as_ref(), Some(s), "{id}");
    }
    assert_eq!(store.session("s99999").unwrap(), None);
}

/// What a cut-short checkpoint or merge leaves (blocks no manifest names)
/// is removed at the next open, and merged runs' blocks are removed once
/// nothing reads them; neither changes what the store holds.
#[test]
fn blocks_no_run_owns_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("projection");
    let ended =
        [session("x", false, Some(EndReason::Completed)), session("y", false, Some(EndReason::Completed))];
    {
        let store = ProjectionStore::open(&path, 1 << 20).unwrap();
        store.clear().unwrap();
        store.save(&StoredMeta::of(&Meta { last_lsn: 1, ..Meta::default() }), ended[..1].iter()).unwrap();
        // A run written without its checkpoint: the manifest does not name it.
        assert!(store.stage_run(&[&ended[1]]).unwrap().is_some());
        store.flush().unwrap();
    }
    let store = ProjectionStore::open(&path, 1 << 20).unwrap();
    let blocks = |store: &ProjectionStore| store.keys(b"r/").count();
    assert_eq!(blocks(&store), 1);
    assert_eq!(store.session("y").unwrap(), None);
    assert_eq!(store.session("x").unwrap(), Some(ended[0].clone()));
    // Merges while a listing reads: the replaced runs wait for it to end.
    let listing = store.sessions();
    for n in 0..4 {
        let s = session(&format!("z{n}"), false, Some(EndReason::Completed));
        store.save(&StoredMeta::of(&Meta { last_lsn: 2 + n, ..Meta::default() }), [s].iter()).unwrap();
        store.compact().unwrap();
    }
    assert!(!store.runs().garbage.is_empty(), "removed under a reader");
    assert_eq!(listing.count(), 1);
    store.compact().unwrap();
    assert!(store.runs().garbage.is_empty());
    assert_eq!(store.runs().runs.len(), 2);
    assert_eq!(blocks(&store), 2);
    assert_eq!(store.sessions().count(), 5);
}

/// The session journal's open (`open_for`) leaves the fsync of what sled
/// changed at open to later, off the open's path; the first write does it
/// before writing anything, and a plain `open` does it at once.
#[test]
fn what_sled_changed_at_open_is_synced_before_the_first_write() {
    let due = |store: &ProjectionStore| *store.unsynced.lock().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("projection");
    let store = ProjectionStore::open(&path, 1 << 20).unwrap();
    assert!(!due(&store), "open syncs at once");
    drop(store);

    let store = ProjectionStore::open_for(&path, 1 << 20, None).unwrap();
    assert!(due(&store), "open_for leaves the sync to later");
    store.save(&StoredMeta::of(&Meta { last_lsn: 1, ..Meta::default() }), std::iter::empty()).unwrap();
    assert!(!due(&store), "the first save synced first");
    drop(store);

    let store = ProjectionStore::open_for(&path, 1 << 20, None).unwrap();
    store.merge_step().unwrap();
    assert!(!due(&store), "a merge step syncs first too");
}

/// A saved known-ids filter is loaded on a thread of its own after open:
/// the ids saved while it loads are added to it once it is in place (else
/// a start of one of them again would be taken for a new id), and a reset
/// meanwhile (the store cleared) wins over the stale load.
#[test]
fn ids_saved_while_the_filter_loads_are_kept() {
    use super::known_ids::KnownIds;
    let loaded_filter = |ids: &[&str]| {
        let mut filter = KnownIds::filter(1000, 7);
        for id in ids {
            filter.insert(*id);
        }
        vec![(filter, ids.len())]
    };
    let known = KnownIds::default();
    *known.pending() = Some(Vec::new());
    known.insert(["saved-while-loading"].into_iter());
    assert!(!known.surely_absent("old"), "nothing is surely absent before the load");
    known.install(loaded_filter(&["old"]), 7, Some(42));
    assert!(!known.surely_absent("old") && !known.surely_absent("saved-while-loading"));
    assert!(known.surely_absent("never-saved"), "the loaded filter answers (seed 7: no false positive here)");
    assert_eq!(*known.saved_crc(), None, "the file no longer holds every id");
    known.insert(["later"].into_iter());
    assert!(!known.surely_absent("later"));

    let cleared = KnownIds::default();
    *cleared.pending() = Some(Vec::new());
    cleared.reset(0, true);
    cleared.insert(["after-clear"].into_iter());
    cleared.install(loaded_filter(&["old"]), 7, Some(42));
    assert!(!cleared.surely_absent("after-clear"), "a load after a reset must not replace the filter");

    let untouched = KnownIds::default();
    *untouched.pending() = Some(Vec::new());
    untouched.install(loaded_filter(&["old"]), 7, Some(42));
    assert_eq!(*untouched.saved_crc(), Some(42), "nothing inserted: the file still holds the filter");
}

/// Runs of ids that grow with time merge by copying whole blocks; what the
/// store answers is the same as if every entry had been repacked: each
/// session's newest state (one ended again in a later run wins over its
/// first end), every session listed once, in id order, and a run's filter
/// still knows every id it holds.
#[test]
fn merges_that_copy_blocks_keep_every_session_and_its_newest_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = ProjectionStore::open(&dir.path().join("projection"), 1 << 20).unwrap();
    store.clear().unwrap();
    let mut expected = BTreeMap::new();
    for run in 0..16usize {
        let mut sessions: Vec<SessionState> = (run * 100..run * 100 + 100).map(ended).collect();
        // Each run also ends again a session of the run before it.
        if run > 0 {
            let mut again = ended(run * 100 - 50);
            again.finalize_attempts = run as u32;
            sessions.push(again);
        }
        for s in &sessions {
            expected.insert(s.id().to_string(), s.clone());
        }
        store
            .save(&StoredMeta::of(&Meta { last_lsn: run as u64 + 1, ..Meta::default() }), sessions.iter())
            .unwrap();
        store.compact().unwrap();
    }
    assert!(store.runs().runs.iter().any(|r| r.level >= 2), "merged: {:?}", store.runs().runs.len());
    for (id, state) in &expected {
        assert_eq!(store.session(id).unwrap().as_ref(), Some(state), "{id}");
    }
    let listed: Vec<String> = store.sessions().map(|s| s.unwrap().id().to_string()).collect();
    assert_eq!(listed, expected.keys().cloned().collect::<Vec<_>>());
    assert_eq!(store.session("ended-000050x").unwrap(), None);
}
