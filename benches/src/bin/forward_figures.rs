//! The fleet forwarder's figures against a plain `async-nats` JetStream
//! publisher, in one run on one nats-server (started here on loopback,
//! its store under target/bench-data):
//!
//!     cargo build --release -p bookend-cli
//!     cargo run --release -p bookend-benches --bin forward_figures   # BOOKEND_BENCH_EVENTS=200000
//!
//! * forwarding one journal of N events, and four at once (four forwarders);
//! * the same number of messages of the same size published by a plain
//!   async-nats publisher with message ids and 1024 acks in flight;
//! * end-to-end lag: a durable `bookend append` ack to the event arriving
//!   from `bookend fleet serve`'s SSE stream, p50 and p99.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use bookend_benches::{bench_dir, bookend_bin, write_history};

fn events() -> u64 {
    std::env::var("BOOKEND_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn start_nats(store: &Path, port: u16) -> Child {
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server (apt-get install nats-server)");
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

async fn messages_in(js: &jetstream::Context, name: &str) -> u64 {
    match js.get_stream(name).await {
        Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
        Err(_) => 0,
    }
}

/// Forwards `dirs` with one `bookend forward` each; returns the seconds
/// until the stream holds `total` messages.
fn forward_all(
    runtime: &tokio::runtime::Runtime,
    url: &str,
    stream_name: &str,
    dirs: &[PathBuf],
    total: u64,
) -> f64 {
    let js = runtime.block_on(async { jetstream::new(async_nats::connect(url).await.expect("connect")) });
    let started = Instant::now();
    let mut children: Vec<Child> = dirs
        .iter()
        .map(|d| {
            Command::new(bookend_bin())
                .args([
                    "forward",
                    "--stream",
                    stream_name,
                    "--subject-prefix",
                    stream_name,
                    "--nats",
                    url,
                    "--dir",
                ])
                .arg(d)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("bookend forward")
        })
        .collect();
    while runtime.block_on(messages_in(&js, stream_name)) < total {
        std::thread::sleep(Duration::from_millis(5));
    }
    let secs = started.elapsed().as_secs_f64();
    for child in &mut children {
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        let _ = child.wait();
    }
    secs
}

/// A plain publisher: `n` messages of `payload`, with message ids and the
/// same headers, at most 1024 acks in flight; seconds until all acked.
async fn plain_publisher(url: &str, n: u64, payload: &[u8]) -> f64 {
    let js = jetstream::new(async_nats::connect(url).await.expect("connect"));
    let config = stream::Config {
        name: "plain".into(),
        subjects: vec!["plain.>".into()],
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    };
    js.get_or_create_stream(config).await.expect("stream");
    let started = Instant::now();
    let mut acks = std::collections::VecDeque::new();
    for lsn in 1..=n {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("plain:{lsn}").as_str());
        headers.insert("Bookend-Lsn", lsn.to_string().as_str());
        let payload = bytes::Bytes::copy_from_slice(payload);
        acks.push_back(
            js.publish_with_headers("plain.j.session.start", headers, payload).await.expect("publish"),
        );
        if acks.len() >= 1024 {
            acks.pop_front().expect("ack").await.expect("ack");
        }
    }
    for ack in acks {
        ack.await.expect("ack");
    }
    started.elapsed().as_secs_f64()
}

/// How many events `write_history(dir, n)` writes: the open, then whole
/// start/end pairs.
fn written(n: u64) -> u64 {
    1 + 2 * (n.saturating_sub(1) / 2)
}

fn main() {
    let n = written(events());
    let root = bench_dir("forward-figures");
    let port = free_port();
    let mut nats = start_nats(&root.join("nats"), port);
    let url = format!("nats://127.0.0.1:{port}");
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let one = root.join("one");
    write_history(&one, n);
    let four: Vec<PathBuf> = (0..4).map(|i| root.join(format!("four-{i}"))).collect();
    four.iter().for_each(|d| write_history(d, n / 4));
    let total_four = 4 * written(n / 4);
    let secs_one = forward_all(&runtime, &url, "one", std::slice::from_ref(&one), n);
    let secs_four = forward_all(&runtime, &url, "four", &four, total_four);
    let payload = sample_payload(&one);
    let secs_plain = runtime.block_on(plain_publisher(&url, n, &payload));
    println!("events per journal: {n}; payload of the plain publisher: {} bytes", payload.len());
    println!("| what | events/s |");
    println!("|---|---|");
    println!("| bookend forward, 1 journal | {:.0} |", n as f64 / secs_one);
    println!("| bookend forward, 4 journals at once (total) | {:.0} |", total_four as f64 / secs_four);
    println!("| plain async-nats publisher, 1024 acks in flight | {:.0} |", n as f64 / secs_plain);
    let (p50, p99) = lag(&url, &root.join("live"), 200);
    println!(
        "end-to-end lag, durable append ack -> SSE event from bookend fleet serve: p50 {p50:.2?}, p99 {p99:.2?}"
    );
    let _ = nats.kill();
    let _ = nats.wait();
}

/// One of the journal's events as the forwarder publishes it.
fn sample_payload(dir: &Path) -> Vec<u8> {
    let out =
        Command::new(bookend_bin()).args(["tail", "--from", "2", "--dir"]).arg(dir).output().expect("tail");
    let line = String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or("{}").to_string();
    line.into_bytes()
}

/// Latency samples: a durable start acknowledged by `bookend append`, then
/// seen on the fleet's SSE stream.
fn lag(url: &str, dir: &Path, samples: usize) -> (Duration, Duration) {
    let mut append = Command::new(bookend_bin())
        .args(["append", "--dir"])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("append");
    let mut stdin = append.stdin.take().expect("stdin");
    let mut acks = BufReader::new(append.stdout.take().expect("stdout")).lines();
    writeln!(stdin, r#"{{"cmd":"start","session_id":"warm","key":"w"}}"#).expect("write");
    acks.next();
    let mut forward = Command::new(bookend_bin())
        .args(["forward", "--stream", "live", "--subject-prefix", "live", "--nats", url, "--dir"])
        .arg(dir)
        .stderr(Stdio::null())
        .spawn()
        .expect("forward");
    let mut fleet = Command::new(bookend_bin())
        .args([
            "fleet",
            "serve",
            "--stream",
            "live",
            "--subject-prefix",
            "live",
            "--listen",
            "127.0.0.1:0",
            "--nats",
            url,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("fleet");
    let mut first = String::new();
    BufReader::new(fleet.stdout.take().expect("stdout")).read_line(&mut first).expect("line");
    let addr = first.trim().rsplit("http://").next().unwrap_or_default().to_string();
    std::thread::sleep(Duration::from_millis(500));
    let mut sse = sse_lines(&addr);
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples {
        writeln!(stdin, r#"{{"cmd":"start","session_id":"lag{i}","key":"k{i}"}}"#).expect("write");
        stdin.flush().expect("flush");
        acks.next();
        let acked = Instant::now();
        let needle = format!("\"session_id\":\"lag{i}\"");
        for line in sse.by_ref() {
            if line.expect("sse").contains(&needle) {
                break;
            }
        }
        times.push(acked.elapsed());
    }
    drop(stdin);
    let _ = append.wait();
    for child in [&mut forward, &mut fleet] {
        let _ = child.kill();
        let _ = child.wait();
    }
    times.sort();
    (times[times.len() / 2], times[times.len() * 99 / 100])
}

fn sse_lines(addr: &str) -> std::io::Lines<BufReader<TcpStream>> {
    let mut stream = TcpStream::connect(addr).expect("connect fleet");
    write!(stream, "GET /v1/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n")
        .expect("request");
    BufReader::new(stream).lines()
}
