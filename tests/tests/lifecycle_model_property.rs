//! The session journal behaves like a small reference model through random
//! commands, power cuts and restarts, and its checkpoints always equal a
//! rebuild from LSN 1.
//!
//! Proptest drives a `SessionJournal` on the simulated file system (sled
//! checkpoints on a real temporary directory, saved every few events) and a
//! plain in-memory model with the same random commands: starts on shared
//! keys (superseding), touches, ends, reopens, flush markers, finalization,
//! idle expiry, graceful restarts and power cuts. After every step each
//! session's state (active, key, spans, end reason, markers, finalization)
//! must equal the model's. At every crash point, the checkpoint plus the
//! journal's tail must fold to state byte-identical to a fold from LSN 1.
//! After a final close-with-end, `verify` must find every span closed by
//! exactly one end. Failing cases proptest finds are kept as named tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use bookend_journal::Durability;
use bookend_journal::sim::{CrashPolicy, SimFs};
use bookend_projector::{
    CloseReason, EndReason, ManualClock, OnUnclean, ResetPolicy, SessionJournal, SessionJournalOptions,
    Sessions, Start, StoreLocation,
};
use bookend_projector::{rebuild_and_compare, verify};
use bookend_tests::{sim_dir, sim_fs};
use proptest::prelude::*;

const IDS: usize = 5;
const KEYS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Start(usize, usize),
    Touch(usize),
    End(usize, u8),
    Reopen(usize),
    Flush(usize, u8),
    Finalize(usize),
    Expire,
    Restart,
    PowerCut,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..IDS, 0..KEYS).prop_map(|(i, k)| Op::Start(i, k)),
        2 => (0..IDS).prop_map(Op::Touch),
        3 => (0..IDS, 0..3u8).prop_map(|(i, r)| Op::End(i, r)),
        2 => (0..IDS).prop_map(Op::Reopen),
        2 => (0..IDS, 0..2u8).prop_map(|(i, m)| Op::Flush(i, m)),
        1 => (0..IDS).prop_map(Op::Finalize),
        1 => Just(Op::Expire),
        1 => Just(Op::Restart),
        1 => Just(Op::PowerCut),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct ModelSession {
    key: String,
    active: bool,
    spans: u32,
    end_reason: Option<EndReason>,
    last_activity: u64,
    markers: BTreeSet<String>,
    finalized: bool,
}

#[derive(Default)]
struct Model {
    sessions: BTreeMap<String, ModelSession>,
}

impl Model {
    fn owner(&self, key: &str) -> Option<String> {
        self.sessions.iter().find(|(_, s)| s.active && s.key == key).map(|(id, _)| id.clone())
    }

    fn end(&mut self, id: &str, reason: EndReason) {
        let s = self.sessions.get_mut(id).unwrap();
        s.active = false;
        s.end_reason = Some(reason);
    }
}

fn reason(r: u8) -> EndReason {
    [EndReason::ManualReset, EndReason::Completed, EndReason::Other("custom_reason".into())][r as usize % 3]
        .clone()
}

struct Harness {
    sim: SimFs,
    store: tempfile::TempDir,
    clock: Arc<ManualClock>,
    journal: Option<SessionJournal>,
    model: Model,
}

impl Harness {
    fn options(&self) -> SessionJournalOptions {
        SessionJournalOptions {
            clock: self.clock.clone(),
            // Every command durable, so a power cut takes back nothing acknowledged.
            durability: Some(Durability::Durable),
            on_unclean: OnUnclean::End,
            store: StoreLocation::At(self.checkpoint_path()),
            checkpoint_every_events: 4,
            ..SessionJournalOptions::default()
        }
    }

    fn checkpoint_path(&self) -> PathBuf {
        self.store.path().join("projection")
    }

    fn open(&mut self) {
        let journal = SessionJournal::open_with_fs(sim_fs(&self.sim), sim_dir(), self.options()).unwrap();
        // An unclean previous epoch: the model ends what was active.
        for id in &journal.open_report().crash_recovered {
            self.model.end(id, EndReason::CrashRecovered);
        }
        self.journal = Some(journal);
    }

    fn j(&self) -> &SessionJournal {
        self.journal.as_ref().unwrap()
    }

    fn step(&mut self, op: &Op) {
        self.clock.advance(2_000);
        let now = self.clock.now();
        match op {
            Op::Start(i, k) => {
                let (id, key) = (format!("s{i}"), format!("k{k}"));
                let start = Start::new(id.clone()).key(key.clone());
                let result = self.j().start(start).and_then(|p| p.wait());
                match self.model.sessions.get(&id) {
                    Some(existing) if existing.key != key => assert!(result.is_err()),
                    Some(_) => assert!(result.unwrap().duplicate),
                    None => {
                        result.unwrap();
                        if let Some(prev) = self.model.owner(&key) {
                            self.model.end(&prev, EndReason::Superseded);
                        }
                        let s = ModelSession {
                            key,
                            active: true,
                            spans: 1,
                            end_reason: None,
                            last_activity: now,
                            markers: BTreeSet::new(),
                            finalized: false,
                        };
                        self.model.sessions.insert(id, s);
                    }
                }
            }
            Op::Touch(i) => {
                let id = format!("s{i}");
                let result = self.j().touch(&id).and_then(|p| p.wait());
                match self.model.sessions.get_mut(&id) {
                    Some(s) if s.active => {
                        result.unwrap();
                        s.last_activity = now;
                    }
                    _ => assert!(result.is_err()),
                }
            }
            Op::End(i, r) => {
                let id = format!("s{i}");
                let result = self.j().end(&id, reason(*r)).and_then(|p| p.wait());
                match self.model.sessions.get(&id).map(|s| (s.active, s.end_reason.clone())) {
                    None => assert!(result.is_err()),
                    Some((true, _)) => {
                        result.unwrap();
                        self.model.end(&id, reason(*r));
                    }
                    Some((false, first)) => assert_eq!(result.unwrap().reason, first, "first writer wins"),
                }
            }
            Op::Reopen(i) => {
                let id = format!("s{i}");
                let result = self.j().reopen(&id, "resume").and_then(|p| p.wait());
                let allowed = self
                    .model
                    .sessions
                    .get(&id)
                    .is_some_and(|s| !s.active && self.model.owner(&s.key).is_none());
                if allowed {
                    result.unwrap();
                    let s = self.model.sessions.get_mut(&id).unwrap();
                    s.active = true;
                    s.spans += 1;
                    s.end_reason = None;
                    s.last_activity = now;
                } else {
                    assert!(result.is_err());
                }
            }
            Op::Flush(i, m) => {
                let (id, marker) = (format!("s{i}"), format!("m{m}"));
                let result = self.j().mark_flushed(&id, &marker).and_then(|p| p.wait());
                match self.model.sessions.get_mut(&id) {
                    Some(s) => assert_eq!(result.unwrap().duplicate, !s.markers.insert(marker)),
                    None => assert!(result.is_err()),
                }
            }
            Op::Finalize(i) => {
                let id = format!("s{i}");
                let result = self.j().finalized(&id).and_then(|p| p.wait());
                match self.model.sessions.get_mut(&id) {
                    Some(s) => {
                        assert_eq!(result.unwrap().duplicate, s.finalized);
                        s.finalized = true;
                    }
                    None => assert!(result.is_err()),
                }
            }
            Op::Expire => {
                self.j().expire(now, ResetPolicy::idle(0)).unwrap().wait().unwrap();
                let due: Vec<String> =
                    self.model.sessions.iter().filter(|(_, s)| s.active).map(|(id, _)| id.clone()).collect();
                for id in due {
                    self.model.end(&id, EndReason::IdleExpiry);
                }
            }
            Op::Restart => {
                self.journal.take().unwrap().close(CloseReason::Restart, Sessions::Keep).unwrap();
                self.open();
            }
            Op::PowerCut => {
                drop(self.journal.take());
                let crashed = self.sim.snapshot();
                crashed.crash(CrashPolicy::DropUnsynced);
                self.sim = crashed;
                let replay =
                    rebuild_and_compare(sim_fs(&self.sim), &sim_dir(), &self.checkpoint_path(), 1 << 20)
                        .unwrap();
                assert!(
                    replay.identical,
                    "checkpoint + tail differs from a rebuild: {:?}",
                    replay.differences
                );
                self.open();
            }
        }
        self.check();
    }

    fn check(&self) {
        for (id, m) in &self.model.sessions {
            let s = self.j().get(id).unwrap().unwrap_or_else(|| panic!("{id} missing"));
            assert_eq!(s.active, m.active, "{id} active");
            assert_eq!(s.start.key.as_deref(), Some(m.key.as_str()), "{id} key");
            assert_eq!(s.spans, m.spans, "{id} spans");
            assert_eq!(s.end_reason, m.end_reason, "{id} end reason");
            assert_eq!(s.flush_markers.keys().cloned().collect::<BTreeSet<_>>(), m.markers, "{id} markers");
            assert_eq!(s.expiry_finalized_lsn.is_some(), m.finalized, "{id} finalized");
            if m.active {
                assert_eq!(s.last_activity_at, m.last_activity, "{id} activity");
            }
        }
        for k in 0..KEYS {
            let key = format!("k{k}");
            let owner = self.j().active_by_key(&key).unwrap().map(|s| s.start.session_id.clone());
            assert_eq!(owner, self.model.owner(&key), "owner of {key}");
        }
    }
}

fn run(ops: &[Op]) {
    let mut h = Harness {
        sim: SimFs::new(),
        store: tempfile::tempdir().unwrap(),
        clock: ManualClock::new(bookend_tests::sessions::T0),
        journal: None,
        model: Model::default(),
    };
    h.open();
    for op in ops {
        h.step(op);
    }
    h.journal.take().unwrap().close(CloseReason::Shutdown, Sessions::End).unwrap();
    let audit = verify(sim_fs(&h.sim), &sim_dir(), |_| {}).unwrap();
    assert_eq!(audit.violations_total, 0, "{:?}", audit.violations);
    assert_eq!(audit.open_sessions, 0);
    assert_eq!(audit.spans, audit.ends, "every span has exactly one end");
    assert!(!audit.epoch_open);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(bookend_tests::scale(48, 1000) as u32))]

    #[test]
    fn journal_matches_the_model_through_crashes(ops in proptest::collection::vec(op(), 1..40)) {
        run(&ops);
    }
}

#[test]
fn supersede_then_power_cut_then_reopen_of_the_superseded_session() {
    run(&[Op::Start(0, 0), Op::Start(1, 0), Op::PowerCut, Op::Reopen(0), Op::Reopen(1), Op::Start(2, 0)]);
}
