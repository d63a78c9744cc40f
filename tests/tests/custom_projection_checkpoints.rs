//! A gateway can fold its own view of the journal with the same checkpoint
//! machinery, and resume it after a restart without refolding history.
//!
//! A projection counting sessions started per platform is caught up with
//! the journal, checkpointed (state and LSN in one write), and reopened: it
//! resumes at the saved LSN, folds only newer events, and ends up equal to a
//! projection folded from LSN 1.

use std::collections::BTreeMap;

use bookend_journal::codec;
use bookend_projector::ProjectionStore;
use bookend_projector::{Event, EventBody};
use bookend_projector::{Projection, ProjectionRunner};
use bookend_tests::sessions::{T0, open, start};

#[derive(Default, Debug, PartialEq)]
struct StartsPerPlatform(BTreeMap<String, u64>);

impl Projection for StartsPerPlatform {
    fn name(&self) -> &str {
        "starts_per_platform"
    }

    fn apply(&mut self, event: &Event) {
        if let EventBody::SessionStart(s) = &event.body {
            *self.0.entry(s.platform.clone().unwrap_or_default()).or_insert(0) += 1;
        }
    }

    fn encode_state(&self) -> bookend_projector::Result<Vec<u8>> {
        Ok(codec::encode(&self.0)?)
    }

    fn decode_state(&mut self, bytes: &[u8]) -> bookend_projector::Result<()> {
        self.0 = codec::decode(bytes)?;
        Ok(())
    }
}

#[test]
fn a_custom_projection_resumes_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let clock = bookend_projector::ManualClock::new(T0);
    let journal = open(dir.path(), &clock);
    for i in 0..10 {
        journal.start(start(&format!("a{i}"), &format!("k{i}"))).unwrap().wait().unwrap();
    }
    let store = ProjectionStore::open(store_dir.path(), 1 << 20).unwrap();
    let mut runner = ProjectionRunner::open(StartsPerPlatform::default(), store.clone()).unwrap();
    assert_eq!(runner.catch_up(journal.journal()).unwrap(), 11, "journal:open and 10 starts");
    runner.checkpoint().unwrap();
    let saved_at = runner.lsn();
    drop(runner);

    for i in 0..5 {
        journal.start(start(&format!("b{i}"), &format!("j{i}"))).unwrap().wait().unwrap();
    }
    let mut resumed = ProjectionRunner::open(StartsPerPlatform::default(), store).unwrap();
    assert_eq!(resumed.lsn(), saved_at);
    assert_eq!(resumed.catch_up(journal.journal()).unwrap(), 5, "only the newer events are folded");

    let fresh_store = ProjectionStore::open(&store_dir.path().join("fresh"), 1 << 20).unwrap();
    let mut fresh = ProjectionRunner::open(StartsPerPlatform::default(), fresh_store).unwrap();
    fresh.catch_up(journal.journal()).unwrap();
    assert_eq!(resumed.state(), fresh.state());
    assert_eq!(resumed.state().0.get("telegram"), Some(&15));
}
