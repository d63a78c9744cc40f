//! A gateway process for the hard-exit test: opens the session journal in
//! the directory given as its argument (recovering whatever the previous,
//! killed, process left), then chats forever: starts sessions on a few keys
//! (superseding), touches some, resets some, printing `started <id>` once a
//! start is durable. The parent kills it with SIGKILL at random moments.
//! `BOOKEND_CHILD_CHECKPOINT_EVERY` sets how many events wait for a
//! checkpoint (small: many runs, and merges of them, in the store).

use std::io::Write;

use bookend_projector::{EndReason, SessionJournal, SessionJournalOptions, Start};

fn main() {
    let dir = std::env::args().nth(1).expect("usage: session-gateway-child DIR");
    let mut options = SessionJournalOptions::default();
    if let Some(every) = std::env::var("BOOKEND_CHILD_CHECKPOINT_EVERY").ok().and_then(|v| v.parse().ok()) {
        options.checkpoint_every_events = every;
    }
    let journal = SessionJournal::open(&dir, options).expect("open session journal");
    let mut out = std::io::stdout().lock();
    let pid = std::process::id();
    for n in 0u64.. {
        let id = format!("p{pid}-{n}");
        let start = Start::new(id.clone()).key(format!("chat:{}", n % 5));
        journal.start(start).expect("start").wait().expect("durable start");
        writeln!(out, "started {id}").expect("report");
        out.flush().expect("flush");
        if n % 3 == 0 {
            journal.touch(&id).expect("touch").wait().expect("touch");
        }
        if n % 4 == 0 {
            journal.end(&id, EndReason::ManualReset).expect("end").wait().expect("durable end");
        }
    }
}
