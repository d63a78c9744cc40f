//! One of several writer processes on one journal, for the several-writers
//! kill -9 test: opens the journal in DIR with `shared_writers`, appends
//! durable batches of `(worker, seq)` pairs with several in flight (tiny
//! segments, so the processes rotate under each other), and prints
//! `first last seq` for each batch the journal acknowledged, flushing
//! stdout after every line, until it has appended COUNT batches.

use std::collections::VecDeque;
use std::io::Write;

use bookend_journal::{Batch, Durability, Journal, JournalOptions};

const IN_FLIGHT_MAX: usize = 4;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(worker), Some(count)) = (args.next(), args.next(), args.next()) else {
        panic!("usage: shared-writer-child DIR WORKER COUNT");
    };
    let worker: u64 = worker.parse().expect("WORKER is a number");
    let count: u64 = count.parse().expect("COUNT is a number");
    let options = JournalOptions {
        segment_size_max_bytes: 16 * 1024,
        shared_writers: true,
        ..JournalOptions::default()
    };
    let journal = Journal::open(&dir, options).expect("open journal");
    let mut out = std::io::stdout().lock();
    let mut in_flight = VecDeque::new();
    for seq in 0..count {
        let mut batch = Batch::new();
        for _ in 0..seq % 3 + 1 {
            batch.push(&(worker, seq)).expect("encode");
        }
        in_flight.push_back((seq, journal.submit(batch, Durability::Durable).expect("submit")));
        if in_flight.len() >= IN_FLIGHT_MAX || seq + 1 == count {
            while let Some((seq, ticket)) = in_flight.pop_front() {
                let ack = ticket.wait().expect("durable append");
                writeln!(out, "{} {} {seq}", ack.first_lsn, ack.last_lsn).expect("report ack");
                out.flush().expect("flush ack");
            }
        }
    }
    journal.close().expect("close");
}
