//! The one owner of bookend's on-disk format: file names, the segment header,
//! the batch frame, and every limit that bounds them.
//!
//! Nothing outside this module knows where a byte lives in a file. Readers,
//! the writer and recovery all go through the encode/decode functions here.
//! `docs/format.md` mirrors this file with byte diagrams; change both together.

use std::path::Path;

/// First eight bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"BOOKEND\0";

/// The format version written into every segment header. A reader refuses any
/// other version; this byte is the exit plan if the codec ever has to change.
pub const FORMAT_VERSION: u8 = 1;

/// Segment files end with this extension; the stem is the zero-padded first LSN.
pub const SEGMENT_EXTENSION: &str = "wal";

/// Digits in a segment file name: enough for every `u64`.
pub const SEGMENT_NAME_DIGITS: usize = 20;

/// A segment is first written under this suffix, synced, and then renamed into
/// place, so a segment file is never seen with half a header.
pub const SEGMENT_TEMP_SUFFIX: &str = ".wal.tmp";

/// Name of the writer's lock file inside the journal directory.
pub const LOCK_FILE_NAME: &str = "bookend.lock";

// Format: { magic [u8; 8] | version u8 | reserved [u8; 3] = 0 | first_lsn u64 LE | crc u32 LE }
// The CRC covers the 20 bytes before it.
pub const SEGMENT_HEADER_SIZE: usize = 24;

// Format: { len u32 LE | crc u32 LE | first_lsn u64 LE | count u32 LE | payload [u8; len] }
// `len` is the payload length. The CRC covers `len` and every byte after the
// CRC field (first_lsn, count and the payload).
pub const FRAME_HEADER_SIZE: usize = 20;

// Format of the payload: `count` times { event_len u32 LE | event [u8; event_len] }.
// Event bytes are opaque to the journal (they come from the codec module).
pub const EVENT_PREFIX_SIZE: usize = 4;

/// The largest frame (header and payload) any version of bookend will read.
/// Lengths above it are corruption, never an allocation.
pub const FRAME_SIZE_LIMIT_BYTES: usize = 16 * 1024 * 1024;

/// Default bound on one frame; configurable up to `FRAME_SIZE_LIMIT_BYTES`.
pub const RECORD_SIZE_MAX_BYTES_DEFAULT: usize = 4 * 1024 * 1024;

/// The most events one batch (one frame) may carry.
pub const BATCH_EVENTS_MAX: usize = 65_536;

/// Default segment rotation size.
pub const SEGMENT_SIZE_MAX_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;

/// Smallest segment rotation size accepted; small sizes exist for tests.
pub const SEGMENT_SIZE_MIN_BYTES: u64 = 4096;

const _: () = assert!(RECORD_SIZE_MAX_BYTES_DEFAULT <= FRAME_SIZE_LIMIT_BYTES);
const _: () = assert!((RECORD_SIZE_MAX_BYTES_DEFAULT as u64) < SEGMENT_SIZE_MAX_BYTES_DEFAULT);
const _: () = assert!(SEGMENT_HEADER_SIZE as u64 + (FRAME_HEADER_SIZE as u64) < SEGMENT_SIZE_MIN_BYTES);
const _: () = assert!(FRAME_SIZE_LIMIT_BYTES <= u32::MAX as usize);
const _: () = assert!(BATCH_EVENTS_MAX * EVENT_PREFIX_SIZE < FRAME_SIZE_LIMIT_BYTES);

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
    /// Anything else (lock file, torn and quarantine files, consumers, sled).
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

/// Encodes a segment header for a segment starting at `first_lsn`.
pub fn encode_segment_header(first_lsn: u64) -> [u8; SEGMENT_HEADER_SIZE] {
    let mut header = [0u8; SEGMENT_HEADER_SIZE];
    header[0..8].copy_from_slice(&SEGMENT_MAGIC);
    header[8] = FORMAT_VERSION;
    header[12..20].copy_from_slice(&first_lsn.to_le_bytes());
    let crc = crc32fast::hash(&header[0..20]);
    header[20..24].copy_from_slice(&crc.to_le_bytes());
    header
}

/// Decodes a segment header; the error is a reason fit for `Corruption`.
pub fn decode_segment_header(bytes: &[u8]) -> Result<u64, String> {
    if bytes.len() < SEGMENT_HEADER_SIZE {
        return Err(format!("segment header is {} bytes, expected {SEGMENT_HEADER_SIZE}", bytes.len()));
    }
    if bytes[0..8] != SEGMENT_MAGIC {
        return Err("segment header has a bad magic number".to_string());
    }
    let stored = read_u32(bytes, 20);
    let computed = crc32fast::hash(&bytes[0..20]);
    if stored != computed {
        return Err(format!(
            "segment header checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
        ));
    }
    if bytes[8] != FORMAT_VERSION {
        return Err(format!(
            "segment format version {} is not supported (this build reads {FORMAT_VERSION})",
            bytes[8]
        ));
    }
    if bytes[9..12] != [0, 0, 0] {
        return Err("segment header reserved bytes are not zero".to_string());
    }
    Ok(read_u64(bytes, 12))
}

/// The fixed part of a frame, as read from disk before the payload is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub payload_len: u32,
    pub crc: u32,
    pub first_lsn: u64,
    pub count: u32,
}

impl FrameHeader {
    /// Bytes the whole frame occupies on disk.
    pub fn frame_len(&self) -> usize {
        FRAME_HEADER_SIZE + self.payload_len as usize
    }

    /// The last LSN the frame holds. Only meaningful once `count >= 1`.
    pub fn last_lsn(&self) -> u64 {
        self.first_lsn + u64::from(self.count) - 1
    }
}

/// Parses the 20 header bytes of a frame and checks what can be checked
/// without the payload: the bounds on length and count.
pub fn decode_frame_header(bytes: &[u8]) -> Result<FrameHeader, String> {
    if bytes.len() < FRAME_HEADER_SIZE {
        return Err("frame header is incomplete".to_string());
    }
    let header = FrameHeader {
        payload_len: read_u32(bytes, 0),
        crc: read_u32(bytes, 4),
        first_lsn: read_u64(bytes, 8),
        count: read_u32(bytes, 16),
    };
    if header.frame_len() > FRAME_SIZE_LIMIT_BYTES {
        return Err(format!(
            "frame length {} exceeds the limit of {FRAME_SIZE_LIMIT_BYTES} bytes",
            header.frame_len()
        ));
    }
    if header.count == 0 || header.count as usize > BATCH_EVENTS_MAX {
        return Err(format!("frame event count {} is out of range", header.count));
    }
    if (header.payload_len as usize) < header.count as usize * EVENT_PREFIX_SIZE {
        return Err(format!(
            "frame payload of {} bytes cannot hold {} events",
            header.payload_len, header.count
        ));
    }
    if header.first_lsn == 0 || header.first_lsn.checked_add(u64::from(header.count)).is_none() {
        return Err(format!("frame first LSN {} is out of range", header.first_lsn));
    }
    Ok(header)
}

/// The CRC a frame must carry: over `len`, then `first_lsn | count | payload`.
pub fn frame_crc(payload_len: u32, first_lsn: u64, count: u32, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&payload_len.to_le_bytes());
    hasher.update(&first_lsn.to_le_bytes());
    hasher.update(&count.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// Same CRC as [`frame_crc`], with the payload's own CRC computed beforehand
/// (outside the submission lock) and combined in.
pub fn frame_crc_with_payload_hasher(
    payload_len: u32,
    first_lsn: u64,
    count: u32,
    payload_hasher: &crc32fast::Hasher,
) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&payload_len.to_le_bytes());
    hasher.update(&first_lsn.to_le_bytes());
    hasher.update(&count.to_le_bytes());
    hasher.combine(payload_hasher);
    hasher.finalize()
}

/// Writes a frame header into the first `FRAME_HEADER_SIZE` bytes of `out`.
pub fn encode_frame_header(out: &mut [u8], header: &FrameHeader) {
    assert!(out.len() >= FRAME_HEADER_SIZE, "frame header buffer too small");
    out[0..4].copy_from_slice(&header.payload_len.to_le_bytes());
    out[4..8].copy_from_slice(&header.crc.to_le_bytes());
    out[8..16].copy_from_slice(&header.first_lsn.to_le_bytes());
    out[16..20].copy_from_slice(&header.count.to_le_bytes());
}

/// Checks a whole frame (header already decoded, `payload` its bytes): the CRC
/// and that the event prefixes exactly tile the payload.
pub fn check_frame_payload(header: &FrameHeader, payload: &[u8]) -> Result<(), String> {
    if payload.len() != header.payload_len as usize {
        return Err("frame payload is incomplete".to_string());
    }
    let computed = frame_crc(header.payload_len, header.first_lsn, header.count, payload);
    if computed != header.crc {
        return Err(format!(
            "frame checksum mismatch (stored {:#010x}, computed {computed:#010x})",
            header.crc
        ));
    }
    let mut events = EventSlices::new(payload, header.count);
    for _ in 0..header.count {
        match events.next() {
            Some(Ok(_)) => {}
            Some(Err(reason)) => return Err(reason),
            None => return Err("frame holds fewer events than its count".to_string()),
        }
    }
    if events.rest_len() != 0 {
        return Err("frame payload has bytes after its last event".to_string());
    }
    Ok(())
}

/// Iterates the events of a checked payload as byte slices.
pub struct EventSlices<'a> {
    payload: &'a [u8],
    remaining: u32,
}

impl<'a> EventSlices<'a> {
    pub fn new(payload: &'a [u8], count: u32) -> Self {
        Self { payload, remaining: count }
    }

    fn rest_len(&self) -> usize {
        self.payload.len()
    }
}

impl<'a> Iterator for EventSlices<'a> {
    type Item = Result<&'a [u8], String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        if self.payload.len() < EVENT_PREFIX_SIZE {
            self.remaining = 0;
            return Some(Err("event length prefix runs past the frame".to_string()));
        }
        let len = read_u32(self.payload, 0) as usize;
        let rest = &self.payload[EVENT_PREFIX_SIZE..];
        if len > rest.len() {
            self.remaining = 0;
            return Some(Err(format!("event of {len} bytes runs past the frame")));
        }
        let (event, tail) = rest.split_at(len);
        self.payload = tail;
        Some(Ok(event))
    }
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(raw)
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(raw)
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
    fn segment_header_round_trips_and_detects_flips() {
        let header = encode_segment_header(7);
        assert_eq!(decode_segment_header(&header), Ok(7));
        for byte in 0..SEGMENT_HEADER_SIZE {
            let mut damaged = header;
            damaged[byte] ^= 0x10;
            assert!(decode_segment_header(&damaged).is_err(), "flip at {byte} undetected");
        }
    }

    #[test]
    fn frame_header_rejects_huge_lengths_without_allocating() {
        let mut raw = [0u8; FRAME_HEADER_SIZE];
        raw[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        raw[16..20].copy_from_slice(&1u32.to_le_bytes());
        raw[8..16].copy_from_slice(&1u64.to_le_bytes());
        assert!(decode_frame_header(&raw).unwrap_err().contains("exceeds the limit"));
    }
}
