//! Shared pieces of bookend's benches: where bench data lives (a real disk,
//! never tmpfs) and a representative session-sized event.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Bench data goes under `target/bench-data` (override with
/// `BOOKEND_BENCH_DIR`); it must be on a real disk, since tmpfs makes fsync
/// free and every durable figure meaningless.
pub fn bench_dir(name: &str) -> PathBuf {
    let root = std::env::var_os("BOOKEND_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data"));
    let dir = root.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create bench directory");
    dir
}

/// About the size of a `session:start` event (~90 bytes encoded).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchEvent {
    pub session_id: String,
    pub key: String,
    pub platform: String,
    pub user_id: String,
    pub at: u64,
}

impl BenchEvent {
    pub fn new(n: u64) -> BenchEvent {
        BenchEvent {
            session_id: format!("0190f5c2-7a1b-7c3d-9e8f-{n:012x}"),
            key: format!("telegram:{}", n % 10_000),
            platform: "telegram".into(),
            user_id: format!("u{}", n % 10_000),
            at: 1_763_700_000_000 + n,
        }
    }
}
