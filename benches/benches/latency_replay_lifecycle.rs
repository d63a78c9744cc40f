//! Single durable append latency against a raw fdatasync loop measured in
//! the same run; replay and verify throughput; lifecycle commands
//! (start + end pairs) end to end through `SessionJournal`.
//!
//!     cargo bench -p bookend-benches --bench latency_replay_lifecycle

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bookend_benches::{BenchEvent, bench_dir, time_tasks, write_history};
use bookend_journal::fs::StdFs;
use bookend_journal::{Batch, Durability, Journal, JournalOptions, Reader};
use bookend_projector::{CloseReason, EndReason, SessionJournal, SessionJournalOptions, Sessions, Start};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const LATENCY_SAMPLES: usize = 3000;

/// Session ids must never repeat across criterion's iterations: a repeated
/// start or end is an idempotent no-op and would measure nothing.
static NEXT_SESSION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
const REPLAY_EVENTS: u64 = 1_000_000;

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration, Duration) {
    samples.sort();
    let at = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    (at(0.5), at(0.99), at(0.999))
}

/// Interleaves single durable appends with two raw loops so all three see
/// the same disk at the same moments: `write + fdatasync` appending to a
/// file (a naive log), and `pwrite + fdatasync` over zeros written ahead (what
/// the journal does with its preallocated segment).
fn durable_latency_vs_fdatasync() {
    let dir = bench_dir("latency");
    let journal = Journal::open(dir.join("journal"), JournalOptions::default()).expect("open");
    let mut raw = std::fs::File::create(dir.join("raw")).expect("raw file");
    let event = BenchEvent::new(1);
    let bytes = bookend_journal::codec::encode(&event).expect("encode");
    let over_zeros = std::fs::File::create(dir.join("raw-preallocated")).expect("raw file");
    over_zeros.write_all_at(&vec![0u8; bytes.len() * LATENCY_SAMPLES], 0).expect("preallocate");
    over_zeros.sync_all().expect("fsync");
    let (mut append_samples, mut raw_samples, mut zeros_samples) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..LATENCY_SAMPLES {
        let started = Instant::now();
        raw.write_all(&bytes).expect("write");
        raw.sync_data().expect("fdatasync");
        raw_samples.push(started.elapsed());
        let started = Instant::now();
        over_zeros.write_all_at(&bytes, (i * bytes.len()) as u64).expect("write");
        over_zeros.sync_data().expect("fdatasync");
        zeros_samples.push(started.elapsed());
        let started = Instant::now();
        journal.append_blocking(Batch::of(&event).expect("batch"), Durability::Durable).expect("append");
        append_samples.push(started.elapsed());
    }
    let (a50, a99, a999) = percentiles(append_samples);
    let (r50, r99, r999) = percentiles(raw_samples);
    let (z50, z99, z999) = percentiles(zeros_samples);
    println!(
        "single durable append ({LATENCY_SAMPLES} samples): p50 {a50:.1?}  p99 {a99:.1?}  p999 {a999:.1?}"
    );
    println!("raw write+fdatasync, growing file:     p50 {r50:.1?}  p99 {r99:.1?}  p999 {r999:.1?}");
    println!("raw pwrite+fdatasync over zeros:       p50 {z50:.1?}  p99 {z99:.1?}  p999 {z999:.1?}");
    println!(
        "p50 ratio append / fdatasync: {:.2} (growing file), {:.2} (over zeros)",
        a50.as_secs_f64() / r50.as_secs_f64(),
        a50.as_secs_f64() / z50.as_secs_f64()
    );
}

fn replay_and_verify(c: &mut Criterion) {
    let dir = bench_dir("replay");
    write_history(&dir, REPLAY_EVENTS);
    let mut group = c.benchmark_group("replay");
    group.throughput(Throughput::Elements(REPLAY_EVENTS));
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(5));
    group.bench_function("read_frames_checked", |b| {
        b.iter(|| {
            let mut reader = Reader::open(&dir, 1).expect("reader");
            let mut events = 0u64;
            while let Some(frame) = reader.next_frame().expect("frame") {
                events += u64::from(frame.count);
            }
            assert!(events + 1 >= REPLAY_EVENTS, "read {events} events");
        })
    });
    group.bench_function("decode_all_events", |b| {
        b.iter(|| {
            let mut reader = Reader::open(&dir, 1).expect("reader");
            while let Some(frame) = reader.next_frame().expect("frame") {
                for (lsn, bytes) in frame.events() {
                    std::hint::black_box(bookend_projector::decode_event(lsn, bytes).expect("decode"));
                }
            }
        })
    });
    group.bench_function("verify_frames_and_lifecycle", |b| {
        b.iter(|| bookend_projector::verify(Arc::new(StdFs), &dir, |_| {}).expect("verify"))
    });
    group.finish();
}

fn lifecycle_pairs(c: &mut Criterion) {
    let dir = bench_dir("lifecycle");
    let journal = SessionJournal::open(&dir, SessionJournalOptions::default()).expect("open");
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mut group = c.benchmark_group("lifecycle");
    group.throughput(Throughput::Elements(2));
    group.sample_size(10).measurement_time(Duration::from_secs(4));
    for tasks in [1u64, 64] {
        group.bench_function(format!("start_end_pairs_durable_{tasks}_tasks"), |b| {
            b.iter_custom(|iters| {
                let per_task = iters.div_ceil(tasks);
                time_tasks(&runtime, tasks, |t| {
                    let journal = journal.clone();
                    async move {
                        for _ in 0..per_task {
                            let n = NEXT_SESSION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let id = BenchEvent::new(n).session_id;
                            let start = Start::new(id.clone()).key(format!("k{t}"));
                            journal.start(start).expect("start").await.expect("start acknowledged");
                            journal
                                .end(&id, EndReason::Completed)
                                .expect("end")
                                .await
                                .expect("end acknowledged");
                        }
                    }
                })
            })
        });
    }
    group.finish();
    journal.close(CloseReason::Shutdown, Sessions::End).expect("close");
}

fn all(c: &mut Criterion) {
    durable_latency_vs_fdatasync();
    replay_and_verify(c);
    lifecycle_pairs(c);
}

criterion_group!(benches, all);
criterion_main!(benches);
