//! After a clean close (or a checkpoint) every byte of the projection
//! store is on the medium, so a power cut right then costs no rebuild from
//! LSN 1.
//!
//! sled 0.34 leaves its `conf` file unsynced even after a clean close, and
//! renames snapshot files without syncing their directory: under LazyFS, 97
//! power cuts right after a clean close cost a full rebuild. bookend now
//! syncs what sled leaves unsynced. This test watches the real system calls
//! of `bookend append` (under `strace`, which `.ci/run` installs) and checks
//! that every file under `projection/` that was written was fsynced after
//! its last write, and that every directory that gained or renamed an
//! entry was fsynced after it, before the process exited; then that the
//! next open loads the checkpoint instead of rebuilding.

mod common;

use std::collections::HashMap;
use std::process::Command;

use common::{append, bookend};

#[derive(Default)]
struct Trace {
    /// Per path: the index of the last write and of the last fsync.
    last_write: HashMap<String, usize>,
    last_sync: HashMap<String, usize>,
}

fn quoted(line: &str) -> Option<String> {
    let start = line.find('"')? + 1;
    let end = start + line[start..].find('"')?;
    Some(line[start..end].to_string())
}

fn fd_of(line: &str, call: &str) -> Option<i64> {
    let rest = &line[line.find(&format!("{call}("))? + call.len() + 1..];
    rest.split([',', ')']).next()?.trim().parse().ok()
}

fn parse(text: &str) -> Trace {
    let mut trace = Trace::default();
    let mut fds: HashMap<i64, String> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let result = line
            .rsplit(" = ")
            .next()
            .and_then(|r| r.split_whitespace().next())
            .and_then(|r| r.parse::<i64>().ok());
        if line.contains("openat(") {
            if let (Some(path), Some(fd)) = (quoted(line), result.filter(|r| *r >= 0)) {
                fds.insert(fd, path);
            }
        } else if line.contains("renameat") || line.contains("rename(") {
            // The directory of the new name gained an entry.
            let new = line.split('"').nth(3).unwrap_or_default();
            let dir = std::path::Path::new(new).parent().map(|p| p.display().to_string()).unwrap_or_default();
            trace.last_write.insert(dir, i);
        } else if line.contains("mkdir") {
            if let Some(path) = quoted(line) {
                let parent =
                    std::path::Path::new(&path).parent().map(|p| p.display().to_string()).unwrap_or_default();
                trace.last_write.insert(parent, i);
            }
        } else {
            for call in ["pwrite64", "write", "pwritev", "writev"] {
                if let Some(path) = fd_of(line, call).and_then(|fd| fds.get(&fd)) {
                    trace.last_write.insert(path.clone(), i);
                }
            }
            for call in ["fsync", "fdatasync"] {
                if let Some(path) = fd_of(line, call).and_then(|fd| fds.get(&fd)) {
                    trace.last_sync.insert(path.clone(), i);
                }
            }
        }
    }
    trace
}

#[test]
fn everything_sled_wrote_is_synced_when_a_clean_close_returns() {
    let strace = Command::new("strace").arg("-V").output();
    assert!(strace.is_ok_and(|o| o.status.success()), "this test needs strace (.ci/run installs it)");
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    assert!(
        append(&journal, "{\"cmd\":\"start\",\"session_id\":\"warm\",\"key\":\"w\"}\n", &[]).status.success()
    );
    let trace_file = dir.path().join("trace");
    let lines: String = (0..300)
        .map(|i| format!("{{\"cmd\":\"start\",\"session_id\":\"s{i}\",\"key\":\"k{i}\"}}\n"))
        .collect();
    let input = dir.path().join("input");
    std::fs::write(&input, lines).unwrap();
    let status = Command::new("strace")
        .args(["-f", "-qq", "-o"])
        .arg(&trace_file)
        .args(["-e", "trace=openat,write,pwrite64,writev,pwritev,fsync,fdatasync,rename,renameat,renameat2,mkdir,mkdirat"])
        .arg(env!("CARGO_BIN_EXE_bookend"))
        .args(["append", "--dir"])
        .arg(&journal)
        .stdin(std::fs::File::open(&input).unwrap())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let trace = parse(&std::fs::read_to_string(&trace_file).unwrap());
    let store = journal.join("projection").display().to_string();
    let mut checked = 0;
    for (path, written) in &trace.last_write {
        if !path.starts_with(&store) {
            continue;
        }
        let synced = trace.last_sync.get(path).copied();
        assert!(
            synced.is_some_and(|s| s > *written),
            "{path} was written after its last fsync ({synced:?} <= {written})"
        );
        checked += 1;
    }
    assert!(
        checked >= 3,
        "only {checked} store files were seen written: the trace is not what the test expects"
    );
    // The checkpoint is at the journal's last LSN (the close) and matches it.
    let replay = bookend().args(["replay", "--dir"]).arg(&journal).output().unwrap();
    let text = String::from_utf8_lossy(&replay.stdout).into_owned();
    assert!(replay.status.success(), "{text}");
    let number_after = |marker: &str| {
        text.split(marker)
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next()?.parse::<u64>().ok())
    };
    assert_eq!(number_after("checkpoint at LSN "), number_after(" to "), "{text}");
}
