//! A gateway process for the hard-exit test: opens the session journal in
//! the directory given as its argument (recovering whatever the previous,
//! killed, process left), then chats forever: starts sessions on a few keys
//! (superseding), touches some, resets some, printing `started <id>` once a
//! start is durable. The parent kills it with SIGKILL at random moments.

use std::io::Write;

use bookend_projector::{EndReason, SessionJournal, SessionJournalOptions, Start};

fn main() {
    let dir = std::env::args().nth(1).expect("usage: session-gateway-child DIR");
    let journal = SessionJournal::open(&dir, SessionJournalOptions::default()).expect("open session journal");
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
