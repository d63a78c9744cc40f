//! The one owner of bookend's on-disk format: file names, the segment
//! header, the batch frame, the identity and continuity records, and every
//! limit that bounds them.
//!
//! Nothing outside this module knows where a byte lives in a file. Readers,
//! the writer and recovery all go through the encode/decode functions here.
//! `docs/format.md` mirrors this module with byte diagrams; change both
//! together.
//!
//! * [`header`]: the segment header (version 1 and 2) and the seal record a
//!   version 2 header carries for the segment before it.
//! * [`frame`]: the batch frame (version 1 and 2) and its payload.
//! * [`records`]: the manifest (identity, durable floor, accepted gaps) and
//!   the durable-LSN hint.

pub mod frame;
pub mod header;
pub mod records;

use std::fmt;
use std::path::Path;

pub use frame::{
    EVENT_PREFIX_SIZE, EventSlices, FRAME_HEADER_SIZE, FRAME_HEADER_SIZE_V1, FrameHeader,
    check_frame_payload, decode_frame_header, encode_frame_header, frame_crc, frame_crc_with_payload_hasher,
};
pub use header::{
    SEGMENT_HEADER_SIZE, SEGMENT_HEADER_SIZE_V1, SealRecord, SegmentHeader, decode_segment_header,
    decode_segment_header_unchecked, encode_segment_header, encode_segment_header_v1, segment_header_size,
};
pub use records::{
    AcceptedGap, DURABLE_HINT_FILE_NAME, DURABLE_HINT_SIZE, MANIFEST_FILE_NAME, MANIFEST_GAPS_MAX, Manifest,
    decode_durable_hint, decode_manifest, encode_durable_hint, encode_manifest,
};

/// First eight bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"BOOKEND\0";

/// The format version written into every new segment header. Version 1
/// segments are still read (their frames have no durable watermark and
/// their headers no identity or seal record); see `docs/format.md`.
pub const FORMAT_VERSION: u8 = 2;

/// The oldest segment version this build reads.
pub const FORMAT_VERSION_OLDEST: u8 = 1;

/// Segment files end with this extension; the stem is the zero-padded first LSN.
pub const SEGMENT_EXTENSION: &str = "wal";

/// Digits in a segment file name: enough for every `u64`.
pub const SEGMENT_NAME_DIGITS: usize = 20;

/// A segment is first written under this suffix, synced, and then renamed into
/// place, so a segment file is never seen with half a header.
pub const SEGMENT_TEMP_SUFFIX: &str = ".wal.tmp";

/// A file the writer writes its pid into, for error messages. The lock
/// itself is taken on the journal directory, which cannot be unlinked from
/// under a running writer; deleting this file changes nothing.
pub const LOCK_FILE_NAME: &str = "bookend.lock";

/// Held (flock, exclusive) for one turn of appends when several processes
/// write the journal (`JournalOptions::shared_writers`).
pub const APPEND_LOCK_FILE_NAME: &str = "bookend.append";

/// Small files replaced atomically are first written under their name plus
/// this suffix.
pub const TEMP_SUFFIX: &str = ".tmp";

/// The largest frame (header and payload) any version of bookend will read.
/// Lengths above it are corruption, never an allocation.
pub const FRAME_SIZE_LIMIT_BYTES: usize = 16 * 1024 * 1024;

/// Default bound on one frame; configurable up to `FRAME_SIZE_LIMIT_BYTES`.
pub const RECORD_SIZE_MAX_BYTES_DEFAULT: usize = 4 * 1024 * 1024;

/// The most events one batch (one frame) may carry.
pub const BATCH_EVENTS_MAX: usize = 65_536;

/// Default segment rotation size. Every open reads and checks the last
/// segment whole (where its frames end, its CRC for the seal record): at
/// 64 MiB that was 40% of a session journal's open at 10M events.
pub const SEGMENT_SIZE_MAX_BYTES_DEFAULT: u64 = 16 * 1024 * 1024;

/// Smallest segment rotation size accepted; small sizes exist for tests.
pub const SEGMENT_SIZE_MIN_BYTES: u64 = 4096;

const _: () = assert!(RECORD_SIZE_MAX_BYTES_DEFAULT <= FRAME_SIZE_LIMIT_BYTES);
const _: () = assert!((RECORD_SIZE_MAX_BYTES_DEFAULT as u64) < SEGMENT_SIZE_MAX_BYTES_DEFAULT);
const _: () = assert!(SEGMENT_HEADER_SIZE as u64 + (FRAME_HEADER_SIZE as u64) < SEGMENT_SIZE_MIN_BYTES);
const _: () = assert!(FRAME_SIZE_LIMIT_BYTES <= u32::MAX as usize);
const _: () = assert!(BATCH_EVENTS_MAX * EVENT_PREFIX_SIZE < FRAME_SIZE_LIMIT_BYTES);

/// A journal's identity: a UUIDv7 minted when the journal is created,
/// carried by its manifest, every version 2 segment header, the projection
/// store and every consumer cursor, so that state belonging to another
/// journal is never trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JournalId(pub [u8; 16]);

impl JournalId {
    /// A new id (UUIDv7: time-ordered, random).
    pub fn mint() -> JournalId {
        JournalId(*uuid::Uuid::now_v7().as_bytes())
    }

    /// Parses the hyphenated form `Display` prints.
    pub fn parse(text: &str) -> Option<JournalId> {
        uuid::Uuid::try_parse(text).ok().map(|u| JournalId(*u.as_bytes()))
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for JournalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&uuid::Uuid::from_bytes(self.0).hyphenated(), f)
    }
}

/// The file name of the segment whose first LSN is `first_lsn`.
pub fn segment_file_name(first_lsn: u64) -> String {
    format!("{first_lsn:0width$}.{SEGMENT_EXTENSION}", width = SEGMENT_NAME_DIGITS)
}

/// What a directory entry is, judged by its name alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryName {
    /// A well-formed segment name, with its first LSN.
    Segment(u64),
    /// A name ending in `.wal` that is not a well-formed segment name.
    MisnamedSegment,
    /// A segment being created when the writer stopped; it holds no data.
    SegmentTemp,
    /// Anything else (lock file, manifest, torn and quarantine files).
    Other,
}

/// Classifies a file name found in the journal directory.
pub fn classify_entry(path: &Path) -> EntryName {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return EntryName::Other;
    };
    if name.ends_with(SEGMENT_TEMP_SUFFIX) {
        return EntryName::SegmentTemp;
    }
    let Some(stem) = name.strip_suffix(".wal") else {
        return EntryName::Other;
    };
    if stem.len() != SEGMENT_NAME_DIGITS || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return EntryName::MisnamedSegment;
    }
    match stem.parse::<u64>() {
        Ok(lsn) if lsn >= 1 => EntryName::Segment(lsn),
        _ => EntryName::MisnamedSegment,
    }
}

pub(crate) fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(raw)
}

pub(crate) fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(raw)
}

pub(crate) fn read_id(bytes: &[u8], at: usize) -> JournalId {
    let mut raw = [0u8; 16];
    raw.copy_from_slice(&bytes[at..at + 16]);
    JournalId(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip() {
        let name = segment_file_name(42);
        assert_eq!(name, "00000000000000000042.wal");
        assert_eq!(classify_entry(Path::new(&name)), EntryName::Segment(42));
        assert_eq!(classify_entry(Path::new("42.wal")), EntryName::MisnamedSegment);
        assert_eq!(classify_entry(Path::new("00000000000000000000.wal")), EntryName::MisnamedSegment);
        assert_eq!(classify_entry(Path::new("x.wal.tmp")), EntryName::SegmentTemp);
        assert_eq!(classify_entry(Path::new("bookend.lock")), EntryName::Other);
    }

    #[test]
    fn journal_ids_print_and_parse() {
        let id = JournalId::mint();
        assert_eq!(JournalId::parse(&id.to_string()), Some(id));
        assert_eq!(JournalId::parse("not an id"), None);
        assert_ne!(JournalId::mint(), id);
    }
}
