//! A directory that holds no journal never reports green, and a corrupt
//! journal's report says what was checked.
//!
//! `verify`, `sessions`, `stats`, `tail` and `replay` on an empty directory
//! and on one holding other files exit non-zero with "no journal in DIR".
//! `verify` of a journal with a missing segment reports its segments and
//! the frames it checked before the damage. Before, `verify` of a mistyped
//! directory printed "OK: every frame checks out" and exited 0 (operators
//! alert on its exit code), `sessions` printed "0 sessions", and a corrupt
//! journal was reported as "0 segments, 0 frames".

mod common;

use common::run;

#[test]
fn read_only_commands_refuse_a_directory_without_a_journal() {
    let empty = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("README"), "not a journal").unwrap();
    for dir in [empty.path(), other.path()] {
        for args in
            [&["verify"][..], &["verify", "--json"], &["sessions"], &["stats"], &["tail"], &["replay"]]
        {
            let out = run(args, dir);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{args:?} on {} succeeded", dir.display());
            assert!(stderr.contains("no journal in"), "{args:?}: {stderr}");
            assert!(!String::from_utf8_lossy(&out.stdout).contains("OK"), "{args:?} printed OK");
        }
    }
}

#[test]
fn verify_of_a_corrupt_journal_reports_what_it_checked() {
    let dir = tempfile::tempdir().unwrap();
    // Small segments, so the journal has several to lose one of.
    let mut options = bookend_projector::SessionJournalOptions::default();
    options.journal.segment_size_max_bytes = 64 * 1024;
    let journal = bookend_projector::SessionJournal::open(dir.path(), options).unwrap();
    let big = "x".repeat(8 * 1024);
    for i in 0..40 {
        journal
            .start(bookend_projector::Start::new(format!("s{i}")).attr("a", big.as_str()))
            .unwrap()
            .wait()
            .unwrap();
    }
    drop(journal);
    let mut segments: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 3, "{segments:?}");
    std::fs::remove_file(&segments[1]).unwrap();
    let out = run(&["verify", "--json"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["segments"], segments.len() - 1);
    assert!(report["frames"].as_u64().unwrap() > 0, "{report}");
    assert!(report["corruption"]["reason"].as_str().unwrap().contains("missing"), "{report}");
}
