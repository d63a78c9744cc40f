//! Every refusal says what happened, in JSON, with a kind a program can
//! act on; flags that cannot work are refused at startup with their range;
//! the server binds before it touches the journal and will not make one in
//! a directory full of other files.
//!
//! Each was wrong before: `?type=session:bogus` said `invalid_consumer`
//! (name ""), 405 answers had an empty body, `?active=maybe` and `?foo=bar`
//! were ignored, `--max-concurrent 0` made every request hang, `Bearer`
//! was case-sensitive, the unauthenticated health answer of a remote
//! server showed paths, a port in use still cost the journal an open/close
//! pair, `--dir ./journal` from the repository root wrote a journal into a
//! crate's source directory, `--listen localhost:7390` and a config file
//! using the flags' own names (`allow-remote`) were refused.

mod common;

use common::{Server, bookend, run};
use serde_json::Value;

fn kind(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .map(|v| v["error"]["kind"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

#[test]
fn refusals_name_their_kind() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (status, body) = server.request("GET", "/v1/events?type=session:bogus", &[], None);
    assert_eq!((status, kind(&body).as_str()), (400, "unknown_event_type"), "{body}");
    let (status, body) = server.request("DELETE", "/v1/commands", &[], None);
    assert_eq!((status, kind(&body).as_str()), (405, "method_not_allowed"), "{body}");
    let (status, body) = server.request("GET", "/v1/events?from=1&consumer=x", &[], None);
    assert_eq!((status, kind(&body).as_str()), (400, "invalid_query"), "{body}");
    let (status, body) = server.request("GET", "/v1/events?named=perhaps", &[], None);
    assert_eq!((status, kind(&body).as_str()), (400, "invalid_query"), "{body}");
    let (status, body) = server.request("GET", "/v1/consumers?x=1", &[], None);
    assert_eq!((status, kind(&body).as_str()), (400, "invalid_query"), "{body}");
    let (status, body) = server.request("GET", "/v1/events?consumer=../etc", &[], None);
    assert_eq!((status, kind(&body).as_str()), (400, "invalid_consumer"), "{body}");
    let (status, body) = server.request(
        "POST",
        "/v1/consumers/c1/ack",
        &[("Content-Type", "application/json")],
        Some(r#"{"lsn":99}"#),
    );
    assert_eq!((status, kind(&body).as_str()), (400, "invalid_ack"), "{body}");
    let (status, body) = server.request("POST", "/v1/consumers/c1/ack", &[], Some(r#"{"lsn":1}"#));
    assert_eq!((status, kind(&body).as_str()), (415, "content_type"), "{body}");
    let (status, body) = server.request("GET", "/nowhere", &[], None);
    assert_eq!((status, kind(&body).as_str()), (404, "not_found"), "{body}");
}

#[test]
fn flags_that_cannot_work_are_refused_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, value, says) in [
        ("--max-concurrent", "0", "1..=65536"),
        ("--daily-at-hour", "25", "0..=23"),
        ("--body-limit-bytes", "0", "1024..="),
        ("--utc-offset-minutes", "99999999", "-720..=840"),
        ("--max-streams", "0", "1..="),
    ] {
        let out = bookend()
            .args(["serve", "--listen", "127.0.0.1:0", flag, value, "--dir"])
            .arg(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flag} {value} was accepted");
        assert!(stderr.contains(flag) && stderr.contains(says), "{flag} {value}: {stderr}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing was written");
}

#[test]
fn the_token_scheme_is_case_insensitive_and_health_hides_details() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "0123456789abcdef0123\n").unwrap();
    let journal = dir.path().join("journal");
    let server = Server::start(&journal, &["--token-file", token_file.to_str().unwrap()]);
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let auth = format!("{scheme} 0123456789abcdef0123");
        let (status, _) = server.request("GET", "/v1/sessions", &[("Authorization", &auth)], None);
        assert_eq!(status, 200, "{scheme}");
    }
    let (status, health) = server.get("/v1/health");
    assert_eq!(status, 200);
    assert_eq!(health, serde_json::json!({"ok": true, "journal_open": true}), "no details without the token");
    let (_, full) =
        server.request("GET", "/v1/health", &[("Authorization", "Bearer 0123456789abcdef0123")], None);
    assert!(full.contains("journal_id"), "{full}");
}

#[test]
fn serve_binds_first_and_refuses_a_foreign_directory() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let out = bookend()
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--dir"])
        .arg(&journal)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("binding"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!journal.exists(), "a port in use must not create or open the journal");

    let source = dir.path().join("src");
    std::fs::create_dir(&source).unwrap();
    std::fs::write(source.join("lib.rs"), "// not a journal").unwrap();
    let out = bookend().args(["serve", "--listen", "127.0.0.1:0", "--dir"]).arg(&source).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no journal"));
    assert_eq!(std::fs::read_dir(&source).unwrap().count(), 1, "nothing was added");
    assert!(!run(&["verify"], &source).status.success());
}

#[test]
fn localhost_and_config_files_with_the_flags_own_names() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("serve.json");
    let journal = dir.path().join("j");
    std::fs::write(
        &config,
        serde_json::json!({"dir": journal, "listen": "localhost:0", "body-limit-bytes": 2048, "on_shutdown": "end"}).to_string(),
    )
    .unwrap();
    let mut command = bookend();
    command.args(["serve", "--config"]).arg(&config);
    let mut child = command.stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line)
        .unwrap();
    assert!(line.contains("http://127.0.0.1:"), "localhost resolved to loopback: {line}");
    let _ = child.kill();
    let _ = child.wait();
    std::fs::write(&config, r#"{"dir": "x", "accept_data_loss": true}"#).unwrap();
    let out = bookend().args(["serve", "--config"]).arg(&config).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("accept_data_loss is a flag only"));
}
