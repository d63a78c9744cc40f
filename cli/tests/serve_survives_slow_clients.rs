//! Clients that send their requests slowly cannot starve the others, and
//! are cut off once their time is up.
//!
//! 300 sockets send the headers of `POST /v1/commands` with
//! `Content-Length: 1000` and one byte of body, and hold. Meanwhile 100
//! ordinary commands must each be answered in under 2 s, and the held
//! sockets must be answered 408 (with a JSON body) once the body timeout
//! passes. Before, 260 such sockets held every `--max-concurrent` place and
//! blocked every later POST for as long as they stayed open, while
//! `/v1/health` kept answering 200.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::Server;

const SLOW_SOCKETS: usize = 300;
const COMMANDS: usize = 100;

fn half_sent_post(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST /v1/commands HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
    );
    s.write_all(head.as_bytes()).unwrap();
    s
}

#[test]
fn slow_bodies_hold_neither_places_nor_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-concurrent", "8", "--body-timeout-ms", "4000"]);
    let held: Vec<TcpStream> = (0..SLOW_SOCKETS).map(|_| half_sent_post(&server.addr)).collect();
    std::thread::sleep(Duration::from_millis(200));

    let mut slowest = Duration::ZERO;
    for i in 0..COMMANDS {
        let started = Instant::now();
        let (status, ack) = server.post_json(&format!(r#"{{"cmd":"start","session_id":"quick-{i}"}}"#));
        let took = started.elapsed();
        assert_eq!((status, ack["ok"].as_bool()), (200, Some(true)), "{ack}");
        assert!(
            took < Duration::from_secs(2),
            "command {i} took {took:?} behind {SLOW_SOCKETS} slow clients"
        );
        slowest = slowest.max(took);
    }
    eprintln!("slowest of {COMMANDS} commands behind {SLOW_SOCKETS} slow clients: {slowest:?}");

    // The held sockets are answered 408 once the body timeout passes.
    let mut timed_out = 0;
    for mut s in held.into_iter().take(20) {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        if answer.starts_with("HTTP/1.1 408") {
            assert!(answer.contains("\"kind\":\"request_timeout\""), "{answer}");
            timed_out += 1;
        }
    }
    assert_eq!(timed_out, 20, "every slow body is cut off with 408");
    let (status, health) = server.get("/v1/health");
    assert_eq!((status, health["ok"].as_bool()), (200, Some(true)));
}
