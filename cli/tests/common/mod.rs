//! Running the real `bookend` binary from tests.

#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

pub fn bookend() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bookend"))
}

/// Runs `bookend append --dir DIR extra…` with `input` on stdin.
pub fn append(dir: &Path, input: &str, extra: &[&str]) -> Output {
    let mut child = bookend()
        .arg("append")
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bookend append");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// The JSON lines of a command's stdout.
pub fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

pub fn run(args: &[&str], dir: &Path) -> Output {
    bookend().args(args).arg("--dir").arg(dir).output().expect("run bookend")
}

pub fn tail(dir: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let out = bookend().arg("tail").arg("--dir").arg(dir).args(extra).output().unwrap();
    assert!(out.status.success(), "tail failed: {}", String::from_utf8_lossy(&out.stderr));
    json_lines(&out)
}
