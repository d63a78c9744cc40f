//! A writer process for the kill -9 test: opens the journal in the directory
//! given as its argument, appends durable batches of `TestEvent`s forever
//! with several appends in flight, and prints `first last` for each batch
//! the journal acknowledged, flushing stdout after every line. The parent
//! kills it at random moments and checks that every printed batch survived.

use std::collections::VecDeque;
use std::io::Write;

use bookend_journal::{Durability, Journal, JournalOptions};
use bookend_tests::batch_at;

const IN_FLIGHT_MAX: usize = 8;

fn main() {
    let dir = std::env::args().nth(1).expect("usage: journal-append-child DIR");
    let options = JournalOptions { segment_size_max_bytes: 64 * 1024, ..JournalOptions::default() };
    let journal = Journal::open(&dir, options).expect("open journal");
    let mut out = std::io::stdout().lock();
    let mut in_flight = VecDeque::new();
    let mut round = 0u64;
    loop {
        round += 1;
        let count = round % 4 + 1;
        let first = journal.next_lsn();
        let ticket = journal.submit(batch_at(first, count), Durability::Durable).expect("submit");
        assert_eq!(ticket.lsns().first_lsn, first, "single submitter predicts its LSNs");
        in_flight.push_back(ticket);
        if in_flight.len() >= IN_FLIGHT_MAX {
            let ack = in_flight.pop_front().expect("non-empty").wait().expect("durable append");
            writeln!(out, "{} {}", ack.first_lsn, ack.last_lsn).expect("report ack");
            out.flush().expect("flush ack");
        }
    }
}
