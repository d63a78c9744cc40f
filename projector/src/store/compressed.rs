//! How a block of ended sessions (`block.rs`) is kept in sled: compressed
//! with zstd behind a tag byte, or as it is when that does not pay.
//!
//! ```text
//! stored := 0x00 … (the block itself)  |  0x01 | raw_len u32 LE | zstd frame
//! ```
//!
//! A block as it is always starts with 0x00: its first entry shares no
//! bytes with an earlier id, and `shared` is a little-endian u16. Store
//! format 5 wrote every block that way, so its blocks read as they are.
//!
//! zstd makes the 2 KiB blocks of `history 1000000` about four times
//! smaller (docs/performance-log/2026-12-05-evening.md). sled keeps up to
//! twice the live bytes on disk (it cleans a segment once half of it is
//! dead), so what the runs hold is what bounds the store's size.

use std::borrow::Cow;
use std::cell::RefCell;

use bookend_journal::codec::EVENT_SIZE_MAX_BYTES;

use crate::error::{Error, Result};

use super::block::BLOCK_BYTES_TARGET;

const RAW: u8 = 0;
const ZSTD: u8 = 1;
/// zstd's first fast level: on 2 KiB blocks of `history 1000000` it
/// compresses 3.9x at 427 MB/s and decompresses at 1.09 GB/s, where level 1
/// does 4.2x at 229 MB/s and 506 MB/s (`zstd -b -B2048`). The checkpoint
/// thread shares two cores with the command path, so speed wins.
const LEVEL: i32 = -1;
/// The largest block a writer makes: a full block plus one more entry of
/// the largest id and state.
const RAW_BYTES_MAX: usize = BLOCK_BYTES_TARGET + 8 + u16::MAX as usize + EVENT_SIZE_MAX_BYTES;

fn damaged(reason: &str) -> Error {
    Error::Store {
        path: std::path::PathBuf::from("projection"),
        reason: format!("a compressed block: {reason}"),
    }
}

thread_local! {
    /// One compression context a thread (the checkpoint thread, mostly): a
    /// context costs more to make than a block to compress.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    /// One decompression context a thread: lookups of old sessions read a
    /// block each.
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
    /// The block a thread's last lookup decompressed, beside the bytes it
    /// was stored as. A repeated start and then a repeated end of one ended
    /// session (a client retrying what it sent) read the same block twice.
    static RECENT: RefCell<(Vec<u8>, Vec<u8>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

fn zstd_error(e: std::io::Error) -> Error {
    damaged(&format!("zstd: {e}"))
}

/// What is stored for `block`: compressed if that makes it smaller.
pub(crate) fn seal(block: Vec<u8>) -> Result<Vec<u8>> {
    if block.first() != Some(&RAW) {
        return Err(damaged("a block to store does not start with a first entry"));
    }
    let raw_len = u32::try_from(block.len()).map_err(|_| damaged("a block too long"))?;
    let packed = COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let context = match &mut *slot {
            Some(context) => context,
            None => slot.insert(zstd::bulk::Compressor::new(LEVEL).map_err(zstd_error)?),
        };
        context.compress(&block).map_err(zstd_error)
    })?;
    if packed.len() + 5 >= block.len() {
        return Ok(block);
    }
    let mut stored = Vec::with_capacity(packed.len() + 5);
    stored.push(ZSTD);
    stored.extend_from_slice(&raw_len.to_le_bytes());
    stored.extend_from_slice(&packed);
    Ok(stored)
}

/// The length of the block that `stored` holds compressed, as its header
/// says; `None` for a block stored as it is (or a header that says nothing
/// readable).
pub(crate) fn compressed_block_len(stored: &[u8]) -> Option<usize> {
    match stored.first() {
        Some(&ZSTD) => stored.get(1..5).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize),
        _ => None,
    }
}

/// The block that `stored` holds. Anything that does not decompress to
/// exactly the length it names is a damaged store.
pub(crate) fn unseal(stored: &[u8]) -> Result<Cow<'_, [u8]>> {
    match stored.first() {
        None => Err(damaged("empty")),
        Some(&RAW) => Ok(Cow::Borrowed(stored)),
        Some(&ZSTD) => decompress(&stored[1..]).map(Cow::Owned),
        Some(tag) => Err(damaged(&format!("unknown tag {tag}"))),
    }
}

/// `unseal` for a lookup: a block stored as the last one this thread
/// looked up is not decompressed again. Decompression is a function of the
/// stored bytes alone, so the memo is right whatever changed in between.
pub(crate) fn unseal_recent(stored: &[u8]) -> Result<Cow<'_, [u8]>> {
    if stored.first() != Some(&ZSTD) {
        return unseal(stored);
    }
    let memo = RECENT.with(|cell| {
        let recent = cell.borrow();
        (recent.0.as_slice() == stored).then(|| recent.1.clone())
    });
    if let Some(raw) = memo {
        return Ok(Cow::Owned(raw));
    }
    let raw = decompress(&stored[1..])?;
    RECENT.with(|cell| {
        let mut recent = cell.borrow_mut();
        recent.0.clear();
        recent.0.extend_from_slice(stored);
        recent.1.clear();
        recent.1.extend_from_slice(&raw);
    });
    Ok(Cow::Owned(raw))
}

fn decompress(tagged: &[u8]) -> Result<Vec<u8>> {
    let (len, frame) = tagged.split_at_checked(4).ok_or_else(|| damaged("cut short in its length"))?;
    let raw_len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
    if raw_len > RAW_BYTES_MAX {
        return Err(damaged(&format!("names {raw_len} bytes, more than a block can hold")));
    }
    let mut raw = Vec::with_capacity(raw_len);
    let written = DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let context = match &mut *slot {
            Some(context) => context,
            None => slot.insert(zstd::bulk::Decompressor::new().map_err(zstd_error)?),
        };
        context.decompress_to_buffer(frame, &mut raw).map_err(zstd_error)
    })?;
    if written != raw_len {
        return Err(damaged(&format!("holds {written} bytes where it names {raw_len}")));
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(n: usize) -> Vec<u8> {
        let mut b = vec![0u8, 0];
        b.extend((0..n).map(|i| b"session telegram:1234 completed"[i % 31]));
        b
    }

    /// A block comes back as it went in, compressed when that pays and as
    /// it is otherwise; a format-5 block reads as it is.
    #[test]
    fn blocks_round_trip() {
        let big = block(2048);
        let stored = seal(big.clone()).unwrap();
        assert_eq!(stored[0], ZSTD);
        assert!(stored.len() < big.len() / 4, "{} bytes", stored.len());
        assert_eq!(unseal(&stored).unwrap().as_ref(), big.as_slice());
        let tiny = vec![0u8, 0, 1, 0, b'a', 3, 0, 0, 0, 1, 2, 3];
        assert_eq!(seal(tiny.clone()).unwrap(), tiny);
        assert!(matches!(unseal(&tiny).unwrap(), Cow::Borrowed(b) if b == tiny.as_slice()));
    }

    /// A lookup's memo answers only for the very bytes it decompressed: a
    /// block differing in one byte is decompressed (and checked) afresh.
    #[test]
    fn the_lookup_memo_answers_only_for_the_same_bytes() {
        let (a, b) = (block(2048), block(2047));
        let (stored_a, stored_b) = (seal(a.clone()).unwrap(), seal(b.clone()).unwrap());
        assert_eq!(unseal_recent(&stored_a).unwrap().as_ref(), a.as_slice());
        assert_eq!(unseal_recent(&stored_a).unwrap().as_ref(), a.as_slice());
        assert_eq!(unseal_recent(&stored_b).unwrap().as_ref(), b.as_slice());
        let mut damaged = stored_b.clone();
        damaged[1] ^= 1;
        assert!(unseal_recent(&damaged).is_err());
        assert_eq!(unseal_recent(&stored_a).unwrap().as_ref(), a.as_slice());
        let tiny = vec![0u8, 0, 1, 0, b'a', 3, 0, 0, 0, 1, 2, 3];
        assert!(matches!(unseal_recent(&tiny).unwrap(), Cow::Borrowed(t) if t == tiny.as_slice()));
    }

    /// Damage is an error naming it, never a panic or a huge allocation.
    #[test]
    fn damaged_blocks_are_errors() {
        let stored = seal(block(4096)).unwrap();
        for cut in 0..stored.len() {
            assert!(unseal(&stored[..cut]).is_err(), "cut at {cut}");
        }
        let mut wrong_len = stored.clone();
        wrong_len[1] ^= 1;
        assert!(unseal(&wrong_len).is_err());
        let mut huge = stored.clone();
        huge[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(unseal(&huge).unwrap_err().to_string().contains("more than a block can hold"));
        assert!(unseal(&[7, 1, 2]).unwrap_err().to_string().contains("unknown tag 7"));
        assert!(seal(vec![1, 0, 0]).is_err());
    }
}
