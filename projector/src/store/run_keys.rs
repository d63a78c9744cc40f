//! Where a run's blocks live in sled: `r/<run id u64 BE><first id in the
//! block>`, so a run's blocks are one range in id order and a lookup finds
//! the block that may hold an id with one step back from it.

pub(crate) const RUN_PREFIX: &[u8] = b"r/";

/// What a run holds: how many entries, its first and last ids.
pub(crate) type Packed = (u64, String, String);

/// The key prefix of run `run`'s blocks.
pub(super) fn run_prefix(run: u64) -> Vec<u8> {
    super::run_key(RUN_PREFIX, run)
}

/// The key of run `run`'s block whose first id is `first`.
pub(super) fn block_key(run: u64, first: &str) -> Vec<u8> {
    let mut key = run_prefix(run);
    key.extend_from_slice(first.as_bytes());
    key
}
