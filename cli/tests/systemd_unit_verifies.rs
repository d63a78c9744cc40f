//! The systemd unit in docs/operations.md is one systemd accepts:
//! `systemd-analyze verify` finds no error in it, with its `ExecStart`
//! pointing at the binary this build made.
//!
//! Guards against the unit an operator copies from the docs failing at
//! `systemctl start` (a typo in a directive, a relative path), which is
//! where a sidecar's first hour goes wrong.

use std::path::PathBuf;
use std::process::Command;

fn unit_from_docs() -> String {
    let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/operations.md");
    let text = std::fs::read_to_string(docs).unwrap();
    let start = text.find("```ini\n").expect("docs/operations.md has an ```ini block") + 7;
    let end = start + text[start..].find("```").unwrap();
    text[start..end].to_string()
}

#[test]
fn the_documented_unit_passes_systemd_analyze_verify() {
    let unit = unit_from_docs();
    assert!(unit.contains("ExecStart=/usr/local/bin/bookend serve"), "{unit}");
    let unit = unit.replace("/usr/local/bin/bookend", env!("CARGO_BIN_EXE_bookend"));
    // User= needs an account that exists here; the rest is checked as written.
    let unit = unit.replace("User=bookend", "User=root").replace("Group=bookend", "Group=root");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bookend.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze must be installed (.ci/run installs systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains("bookend.service")).collect();
    assert!(out.status.success() && ours.is_empty(), "systemd-analyze verify: {stderr}");
}
