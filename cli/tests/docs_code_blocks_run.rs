//! docs/http.md's code blocks work, literally: each is
//! extracted and run in order against a real `bookend serve` (its address
//! in `BOOKEND_URL`, as the documents say to set it).
//!
//! Blocks tagged `sh` run in bash (`-euo pipefail`), `python` in python3,
//! `js` in node with the `eventsource` package installed from npm; blocks
//! tagged `console`, `json`, `html` or untagged are shown, not run (they
//! install, serve forever, or need a browser). Every runnable block must
//! exit 0 within 30 s. (The README's Python block imports the `bookend`
//! package, so python/tests/test_readme_example_runs.py runs it, in the
//! virtual environment it is installed in.)

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Server;

const BLOCK_TIME_MAX: Duration = Duration::from_secs(30);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// (tag, code) of every fenced block, in order.
fn blocks(markdown: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in markdown.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(tag)) => current = Some((tag.trim().to_string(), String::new())),
            (Some(_), Some(_)) => out.extend(current.take()),
            (Some((_, code)), None) => {
                code.push_str(line);
                code.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

/// Runs `command` to completion within the time limit; its output on failure.
fn run_block(mut command: Command, what: &str) {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect(what);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > BLOCK_TIME_MAX {
            let _ = child.kill();
            panic!("{what} ran past {BLOCK_TIME_MAX:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(status.success(), "{what} failed ({status}):\n{out}\n{err}");
}

/// Installs the `eventsource` package once, for the `js` blocks.
fn node_modules(dir: &Path) -> PathBuf {
    let out = Command::new("npm")
        .args(["install", "--no-save", "--no-audit", "--no-fund", "--prefix"])
        .arg(dir)
        .arg("eventsource@3")
        .output()
        .expect("npm must be installed (.ci/run installs it)");
    assert!(out.status.success(), "npm install eventsource: {}", String::from_utf8_lossy(&out.stderr));
    dir.join("node_modules")
}

/// The command that runs a block, or `None` for a block that is only shown.
fn command_for(tag: &str, code: &str, npm: &Path) -> Option<Command> {
    let mut c = match tag {
        "sh" => {
            let mut c = Command::new("bash");
            c.args(["-euo", "pipefail", "-c", code]);
            c
        }
        "python" => {
            let mut c = Command::new("python3");
            c.args(["-c", code]);
            c
        }
        "js" => {
            let mut c = Command::new("node");
            c.env("NODE_PATH", node_modules(npm)).args(["-e", code]);
            c
        }
        _ => return None,
    };
    c.current_dir(repo());
    Some(c)
}

/// Runs the document's runnable blocks in order against one fresh server;
/// returns how many ran.
fn run_document(name: &str) -> usize {
    let text = std::fs::read_to_string(repo().join(name)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("journal"), &[]);
    let url = format!("http://{}", server.addr);
    let npm = tempfile::tempdir().unwrap();
    let mut ran = 0;
    for (i, (tag, code)) in blocks(&text).into_iter().enumerate() {
        let Some(mut command) = command_for(&tag, &code, npm.path()) else { continue };
        command.env("BOOKEND_URL", &url);
        run_block(command, &format!("{name} block {i} ({tag})"));
        ran += 1;
    }
    ran
}

#[test]
fn the_http_guide_blocks_run_in_order() {
    assert_eq!(run_document("docs/http.md"), 8);
}
