//! `bookend demo --dir D` never removes a directory it did not make and
//! never touches a journal in use.
//!
//! With `bookend serve` running on D, the demo is refused and the server's
//! journal is intact. A non-empty directory the demo did not make is
//! refused, and so is one whose marker file was copied next to another
//! journal. The demo's own finished directory may be run again. Before,
//! the demo ran `rm -rf D` under a running server, which went on
//! acknowledging into deleted files.

mod common;

use common::{Server, bookend};

fn demo(dir: &std::path::Path) -> std::process::Output {
    bookend().args(["demo", "--dir"]).arg(dir).output().unwrap()
}

#[test]
fn the_demo_refuses_live_and_foreign_directories_and_reruns_its_own() {
    let live = tempfile::tempdir().unwrap();
    let server = Server::start(live.path(), &[]);
    let (status, _) = server.post_json(r#"{"cmd":"start","session_id":"keep-me","key":"k"}"#);
    assert_eq!(status, 200);
    std::fs::write(live.path().join(".bookend-demo"), "journal 00000000-0000-0000-0000-000000000000\n")
        .unwrap();
    let out = demo(live.path());
    assert!(!out.status.success(), "the demo ran on a live journal");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, body) = server.get("/v1/sessions/keep-me");
    assert_eq!((status, body["session_id"].as_str()), (200, Some("keep-me")), "the journal was touched");
    assert!(server.stop().success());

    let foreign = tempfile::tempdir().unwrap();
    std::fs::write(foreign.path().join("notes.txt"), "mine").unwrap();
    assert!(!demo(foreign.path()).status.success(), "the demo took a directory it did not make");
    assert!(foreign.path().join("notes.txt").exists());
    // A marker copied next to a journal the demo did not make is not enough.
    let marker = std::fs::read_to_string(live.path().join(".bookend-demo")).unwrap();
    assert!(!demo(live.path()).status.success(), "a copied marker ({marker:?}) let the demo in");

    let own = tempfile::tempdir().unwrap();
    let first = demo(&own.path().join("d"));
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let again = demo(&own.path().join("d"));
    assert!(
        again.status.success(),
        "the demo could not rerun on its own directory: {}",
        String::from_utf8_lossy(&again.stderr)
    );
}
