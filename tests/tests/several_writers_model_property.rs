//! Three writer processes on one journal behave like one small reference
//! model through random commands from any of them, deaths, clean restarts
//! and power cuts.
//!
//! Proptest drives three `SessionJournal`s opened with `shared_writers` on
//! the simulated file system and a plain in-memory model that also knows
//! which writer owns each active session: starts on shared keys (a start in
//! one writer supersedes another's session), touches, ends and reopens
//! from any writer (a reopen moves the session to the reopening writer),
//! idle expiry, a writer's death (its handle dropped, as the kernel drops
//! its locks on kill -9; a survivor ends exactly its sessions
//! `crash_recovered`), a writer's clean restart (its sessions kept, owned
//! by no one), and a power cut that takes all three down (the first to
//! reopen ends every dead writer's sessions). After every step, each
//! session's state as every writer sees it must equal the model's, as must
//! the owner of every key. Every command is durable, so a power cut takes
//! back nothing acknowledged. After the last writer's close-with-end,
//! `verify` finds every span closed by exactly one end.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bookend_journal::sim::{CrashPolicy, SimFs};
use bookend_journal::{Durability, JournalOptions};
use bookend_projector::{
    CloseReason, EndReason, ManualClock, ResetPolicy, SessionJournal, SessionJournalOptions, Sessions, Start,
    verify,
};
use bookend_tests::{sim_dir, sim_fs};
use proptest::prelude::*;

const WRITERS: usize = 3;
const IDS: usize = 6;
const KEYS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Start(usize, usize, usize),
    Touch(usize, usize),
    End(usize, usize),
    Reopen(usize, usize),
    Expire(usize),
    Die(usize),
    Restart(usize),
    PowerCut,
}

fn op() -> impl Strategy<Value = Op> {
    let w = 0..WRITERS;
    prop_oneof![
        5 => (w.clone(), 0..IDS, 0..KEYS).prop_map(|(w, i, k)| Op::Start(w, i, k)),
        2 => (w.clone(), 0..IDS).prop_map(|(w, i)| Op::Touch(w, i)),
        3 => (w.clone(), 0..IDS).prop_map(|(w, i)| Op::End(w, i)),
        2 => (w.clone(), 0..IDS).prop_map(|(w, i)| Op::Reopen(w, i)),
        1 => w.clone().prop_map(Op::Expire),
        2 => w.clone().prop_map(Op::Die),
        1 => w.prop_map(Op::Restart),
        1 => Just(Op::PowerCut),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct ModelSession {
    key: String,
    active: bool,
    spans: u32,
    end_reason: Option<EndReason>,
    /// The writer that started or last reopened it, while that writer lives.
    owner: Option<usize>,
}

#[derive(Default)]
struct Model {
    sessions: BTreeMap<String, ModelSession>,
}

impl Model {
    fn active_on(&self, key: &str) -> Option<String> {
        self.sessions.iter().find(|(_, s)| s.active && s.key == key).map(|(id, _)| id.clone())
    }

    fn end(&mut self, id: &str, reason: EndReason) {
        let s = self.sessions.get_mut(id).unwrap();
        s.active = false;
        s.end_reason = Some(reason);
        s.owner = None;
    }

    /// Ends the active sessions `owned` selects, `crash_recovered`.
    fn end_owned(&mut self, owned: impl Fn(Option<usize>) -> bool) {
        let ids: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.active && owned(s.owner))
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            self.end(&id, EndReason::CrashRecovered);
        }
    }
}

struct Harness {
    sim: SimFs,
    clock: Arc<ManualClock>,
    writers: Vec<Option<SessionJournal>>,
    model: Model,
}

impl Harness {
    fn options(&self) -> SessionJournalOptions {
        SessionJournalOptions {
            journal: JournalOptions { shared_writers: true, ..JournalOptions::default() },
            clock: self.clock.clone(),
            durability: Some(Durability::Durable),
            // Deaths are handled when the test says so.
            writer_check_interval: Duration::from_secs(3600),
            ..SessionJournalOptions::default()
        }
    }

    fn open(&mut self, w: usize) -> Vec<String> {
        let journal = SessionJournal::open_with_fs(sim_fs(&self.sim), sim_dir(), self.options()).unwrap();
        let ended = journal.open_report().crash_recovered.clone();
        self.writers[w] = Some(journal);
        ended
    }

    fn j(&self, w: usize) -> &SessionJournal {
        self.writers[w].as_ref().unwrap()
    }

    fn step(&mut self, op: &Op) {
        self.clock.advance(2_000);
        match op {
            Op::Start(w, i, k) => self.start(*w, format!("s{i}"), format!("k{k}")),
            Op::Touch(w, i) => {
                let id = format!("s{i}");
                let result = self.j(*w).touch(&id).and_then(|p| p.wait());
                let active = self.model.sessions.get(&id).is_some_and(|s| s.active);
                assert_eq!(result.is_ok(), active, "touch {id}: {result:?}");
            }
            Op::End(w, i) => self.end(*w, format!("s{i}")),
            Op::Reopen(w, i) => self.reopen(*w, format!("s{i}")),
            Op::Expire(w) => {
                let now = self.clock.now();
                self.j(*w).expire(now, ResetPolicy::idle(0)).unwrap().wait().unwrap();
                let due: Vec<String> =
                    self.model.sessions.iter().filter(|(_, s)| s.active).map(|(id, _)| id.clone()).collect();
                due.iter().for_each(|id| self.model.end(id, EndReason::IdleExpiry));
            }
            Op::Die(w) => self.die(*w),
            Op::Restart(w) => {
                self.writers[*w].take().unwrap().close(CloseReason::Restart, Sessions::Keep).unwrap();
                for s in self.model.sessions.values_mut().filter(|s| s.owner == Some(*w)) {
                    s.owner = None; // kept, owned by no live writer
                }
                assert!(self.open(*w).is_empty(), "a clean restart ends nothing");
            }
            Op::PowerCut => self.power_cut(),
        }
        self.check();
    }

    fn start(&mut self, w: usize, id: String, key: String) {
        let result = self.j(w).start(Start::new(id.clone()).key(key.clone())).and_then(|p| p.wait());
        match self.model.sessions.get(&id) {
            Some(existing) if existing.key != key => assert!(result.is_err()),
            Some(_) => assert!(result.unwrap().duplicate),
            None => {
                result.unwrap();
                if let Some(prev) = self.model.active_on(&key) {
                    self.model.end(&prev, EndReason::Superseded);
                }
                let s = ModelSession { key, active: true, spans: 1, end_reason: None, owner: Some(w) };
                self.model.sessions.insert(id, s);
            }
        }
    }

    fn end(&mut self, w: usize, id: String) {
        let result = self.j(w).end(&id, EndReason::ManualReset).and_then(|p| p.wait());
        match self.model.sessions.get(&id).map(|s| (s.active, s.end_reason.clone())) {
            None => assert!(result.is_err()),
            Some((true, _)) => {
                result.unwrap();
                self.model.end(&id, EndReason::ManualReset);
            }
            Some((false, first)) => assert_eq!(result.unwrap().reason, first, "first end wins"),
        }
    }

    fn reopen(&mut self, w: usize, id: String) {
        let result = self.j(w).reopen(&id, "resume").and_then(|p| p.wait());
        let allowed =
            self.model.sessions.get(&id).is_some_and(|s| !s.active && self.model.active_on(&s.key).is_none());
        assert_eq!(result.is_ok(), allowed, "reopen {id}: {result:?}");
        if allowed {
            let s = self.model.sessions.get_mut(&id).unwrap();
            (s.active, s.spans, s.end_reason, s.owner) = (true, s.spans + 1, None, Some(w));
        }
    }

    fn die(&mut self, w: usize) {
        drop(self.writers[w].take());
        let survivor = (w + 1) % WRITERS;
        assert_eq!(self.j(survivor).end_dead_writers().unwrap(), 1, "one death noticed");
        self.model.end_owned(|owner| owner == Some(w));
        assert!(self.open(w).is_empty(), "the survivor left nothing for the next open");
    }

    fn power_cut(&mut self) {
        self.writers.iter_mut().for_each(|w| drop(w.take()));
        let crashed = self.sim.snapshot();
        crashed.crash(CrashPolicy::DropUnsynced);
        self.sim = crashed;
        let mut ended = Vec::new();
        for w in 0..WRITERS {
            ended.extend(self.open(w));
        }
        // Every writer died: the first to reopen ends what each owned;
        // kept sessions (owned by no one) stay for the gateway to resume.
        let mut expected: Vec<String> = self
            .model
            .sessions
            .iter()
            .filter(|(_, s)| s.active && s.owner.is_some())
            .map(|(id, _)| id.clone())
            .collect();
        ended.sort();
        expected.sort();
        assert_eq!(ended, expected, "the reopen ends exactly the dead writers' sessions");
        self.model.end_owned(|owner| owner.is_some());
    }

    /// Every open writer sees what the model says.
    fn check(&self) {
        for (w, j) in self.writers.iter().enumerate().filter_map(|(w, j)| Some((w, j.as_ref()?))) {
            for (id, m) in &self.model.sessions {
                let s = j.get(id).unwrap().unwrap_or_else(|| panic!("writer {w}: {id} missing"));
                assert_eq!(s.active, m.active, "writer {w}: {id} active");
                assert_eq!(s.spans, m.spans, "writer {w}: {id} spans");
                assert_eq!(s.end_reason, m.end_reason, "writer {w}: {id} end reason");
            }
            for k in 0..KEYS {
                let key = format!("k{k}");
                let owner = j.active_by_key(&key).unwrap().map(|s| s.start.session_id.clone());
                assert_eq!(owner, self.model.active_on(&key), "writer {w}: session active on {key}");
            }
        }
    }
}

fn run(ops: &[Op]) {
    let mut h = Harness {
        sim: SimFs::new(),
        clock: ManualClock::new(bookend_tests::sessions::T0),
        writers: vec![None, None, None],
        model: Model::default(),
    };
    for w in 0..WRITERS {
        h.open(w);
    }
    for op in ops {
        h.step(op);
    }
    // Each clean close ends its own sessions; the last also what was kept.
    for w in 0..WRITERS {
        h.writers[w].take().unwrap().close(CloseReason::Shutdown, Sessions::End).unwrap();
        let last = w + 1 == WRITERS;
        let ids: Vec<String> = h
            .model
            .sessions
            .iter()
            .filter(|(_, s)| s.active && (s.owner == Some(w) || last))
            .map(|(id, _)| id.clone())
            .collect();
        ids.iter().for_each(|id| h.model.end(id, EndReason::Shutdown));
        h.check();
    }
    let audit = verify(sim_fs(&h.sim), &sim_dir(), |_| {}).unwrap();
    assert_eq!(audit.violations_total, 0, "{:?}", audit.violations);
    assert_eq!(audit.open_sessions, 0, "the last writer's close ends what the others kept");
    assert_eq!(audit.spans, audit.ends, "every span has exactly one end");
    assert!(!audit.epoch_open);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(bookend_tests::scale(48, 1000) as u32))]

    #[test]
    fn three_writers_match_the_model_through_deaths_and_power_cuts(ops in proptest::collection::vec(op(), 1..40)) {
        run(&ops);
    }
}
