//! Unit tests of the projection store.

use std::collections::BTreeSet;

use super::*;
use crate::event::EndReason;

fn session(id: &str, active: bool, end_reason: Option<EndReason>) -> SessionState {
    assert_eq!(active, end_reason.is_none(), "an ended session has a reason");
    SessionState::for_tests(id, end_reason)
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
        known.sessions().map(|s| s.map(|s| (s.start.session_id, s.active)).unwrap()).collect();
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
