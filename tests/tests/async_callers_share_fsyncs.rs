//! Gateways on tokio call the session journal from many tasks at once:
//! validation is serialized, durability waits are not, so the tasks share
//! fsyncs, and a current-thread runtime is never blocked by a wait.
//!
//! 64 tasks each start and end 20 sessions with `.await`. Every answer must
//! be durable and consistent (each end answers for its own session), the
//! journal must verify clean, and fsyncs must be far fewer than commands.

use std::sync::Arc;

use bookend_journal::fs::StdFs;
use bookend_projector::verify;
use bookend_projector::{CloseReason, EndReason, SessionJournal, SessionJournalOptions, Sessions, Start};

const TASKS: usize = 64;
const SESSIONS_EACH: usize = 20;

#[test]
fn concurrent_tasks_share_fsyncs_and_every_span_ends_once() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let journal = SessionJournal::open(dir.path(), SessionJournalOptions::default()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let journal = journal.clone();
                tokio::spawn(async move {
                    for i in 0..SESSIONS_EACH {
                        let id = format!("t{t}-{i}");
                        let start = Start::new(id.clone()).key(format!("user:{t}"));
                        let started = journal.start(start).unwrap().await.unwrap();
                        assert_eq!(started.session_id.as_deref(), Some(id.as_str()));
                        let ended = journal.end(&id, EndReason::Completed).unwrap().await.unwrap();
                        assert_eq!(ended.events.len(), 1);
                        assert_eq!(ended.events[0].body.session_id(), Some(id.as_str()));
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    let stats = journal.journal().stats();
    let commands = (TASKS * SESSIONS_EACH * 2) as u64;
    assert!(stats.fsyncs * 4 < commands, "{} fsyncs for {commands} commands", stats.fsyncs);
    journal.close(CloseReason::Shutdown, Sessions::End).unwrap();
    let audit = verify(Arc::new(StdFs), dir.path(), |_| {}).unwrap();
    assert_eq!((audit.violations_total, audit.open_sessions), (0, 0));
    assert_eq!(audit.spans, (TASKS * SESSIONS_EACH) as u64);
    assert_eq!(audit.spans, audit.ends);
    eprintln!("{commands} commands, {} fsyncs", stats.fsyncs);
}
