//! Append throughput of the journal: durable and buffered, from 1 to 256
//! concurrent tokio tasks, one event per append. Data on a real disk.
//!
//!     cargo bench -p bookend-benches --bench journal_append

use std::sync::Arc;
use std::time::Duration;

use bookend_benches::{BenchEvent, bench_dir, time_tasks};
use bookend_journal::{Batch, Durability, Journal, JournalOptions};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn run_appends(
    runtime: &tokio::runtime::Runtime,
    journal: &Arc<Journal>,
    tasks: u64,
    total: u64,
    d: Durability,
) -> Duration {
    let per_task = total.div_ceil(tasks);
    time_tasks(runtime, tasks, |t| {
        let journal = journal.clone();
        async move {
            for i in 0..per_task {
                let batch = Batch::of(&BenchEvent::new(t * per_task + i)).expect("encode");
                journal.append(batch, d).await.expect("append");
            }
        }
    })
}

fn appends(c: &mut Criterion) {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    for (name, durability, task_counts) in [
        ("durable", Durability::Durable, &[1u64, 8, 64, 256][..]),
        ("buffered", Durability::Buffered, &[1u64, 64][..]),
    ] {
        let mut group = c.benchmark_group(format!("append_{name}"));
        group.throughput(Throughput::Elements(1));
        group.sample_size(10).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
        for &tasks in task_counts {
            let dir = bench_dir(&format!("append-{name}-{tasks}"));
            let journal = Arc::new(Journal::open(&dir, JournalOptions::default()).expect("open"));
            group.bench_function(format!("tasks_{tasks}"), |b| {
                b.iter_custom(|iters| run_appends(&runtime, &journal, tasks, iters.max(tasks), durability))
            });
            let stats = journal.stats();
            eprintln!(
                "{name}/{tasks} tasks: {} appends, {} fsyncs ({:.1} appends per fsync, {:.0} µs per fsync)",
                stats.appends,
                stats.fsyncs,
                stats.appends as f64 / stats.fsyncs.max(1) as f64,
                stats.fsync_nanos_total as f64 / stats.fsyncs.max(1) as f64 / 1000.0
            );
        }
        group.finish();
    }
}

criterion_group!(benches, appends);
criterion_main!(benches);
