//! The segment header, and the seal record a version 2 header carries for
//! the segment before it.
//!
//! The seal record is what lets open prove, reading one header and one
//! frame per segment, that no sealed segment is missing, renamed, cut short
//! or grown: the successor of every sealed segment says which segment came
//! before it, how long it was, where its last frame starts, which LSN that
//! frame ends with, and the CRC of all its bytes.

use super::{FORMAT_VERSION, JournalId, SEGMENT_MAGIC, read_id, read_u32, read_u64};

// Format (version 1): { magic [u8; 8] | version u8 = 1 | reserved [u8; 3] = 0 | first_lsn u64 | crc u32 }
// The CRC covers the 20 bytes before it.
pub const SEGMENT_HEADER_SIZE_V1: usize = 24;

// Format (version 2): { magic [u8; 8] | version u8 = 2 | reserved [u8; 3] = 0 | first_lsn u64
//   | journal_id [u8; 16] | prev_first_lsn u64 | prev_last_lsn u64 | prev_len u64
//   | prev_last_frame_offset u64 | prev_crc u32 | crc u32 }
// The `prev_*` fields are the seal record of the previous segment (all zero
// for the first segment of a journal). The CRC covers the 72 bytes before it.
pub const SEGMENT_HEADER_SIZE: usize = 76;

/// What sealing a segment recorded about it, kept in its successor's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealRecord {
    /// The sealed segment's first LSN (its file name).
    pub first_lsn: u64,
    /// The last LSN it holds.
    pub last_lsn: u64,
    /// Its length in bytes, header included (sealed segments hold frames only).
    pub len: u64,
    /// Where its last frame starts; equal to `len` if it holds no frame (then
    /// `last_lsn` is `first_lsn - 1`).
    pub last_frame_offset: u64,
    /// CRC of its bytes `0..len`.
    pub crc: u32,
}

/// A decoded segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub version: u8,
    pub first_lsn: u64,
    /// `None` in version 1 headers.
    pub journal_id: Option<JournalId>,
    /// The previous segment's seal record: `None` for the first segment and
    /// in version 1 headers.
    pub prev: Option<SealRecord>,
}

impl SegmentHeader {
    /// Bytes the header occupies at the start of the segment.
    pub fn size(&self) -> usize {
        segment_header_size(self.version).unwrap_or(SEGMENT_HEADER_SIZE)
    }
}

/// The header size of a segment of `version`, if this build reads it.
pub fn segment_header_size(version: u8) -> Option<usize> {
    match version {
        1 => Some(SEGMENT_HEADER_SIZE_V1),
        2 => Some(SEGMENT_HEADER_SIZE),
        _ => None,
    }
}

/// Encodes a version 2 header for a segment starting at `first_lsn`.
pub fn encode_segment_header(
    first_lsn: u64,
    journal_id: JournalId,
    prev: Option<SealRecord>,
) -> [u8; SEGMENT_HEADER_SIZE] {
    let mut h = [0u8; SEGMENT_HEADER_SIZE];
    h[0..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8] = FORMAT_VERSION;
    h[12..20].copy_from_slice(&first_lsn.to_le_bytes());
    h[20..36].copy_from_slice(journal_id.as_bytes());
    if let Some(p) = prev {
        h[36..44].copy_from_slice(&p.first_lsn.to_le_bytes());
        h[44..52].copy_from_slice(&p.last_lsn.to_le_bytes());
        h[52..60].copy_from_slice(&p.len.to_le_bytes());
        h[60..68].copy_from_slice(&p.last_frame_offset.to_le_bytes());
        h[68..72].copy_from_slice(&p.crc.to_le_bytes());
    }
    let crc = crc32fast::hash(&h[0..72]);
    h[72..76].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Encodes a version 1 header (only `repair` writes one: to restore the
/// header of a version 1 segment).
pub fn encode_segment_header_v1(first_lsn: u64) -> [u8; SEGMENT_HEADER_SIZE_V1] {
    let mut h = [0u8; SEGMENT_HEADER_SIZE_V1];
    h[0..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8] = 1;
    h[12..20].copy_from_slice(&first_lsn.to_le_bytes());
    let crc = crc32fast::hash(&h[0..20]);
    h[20..24].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Decodes a segment header of either version and checks everything that
/// can be checked from its bytes alone; the error is a reason fit for
/// `Corruption`.
pub fn decode_segment_header(bytes: &[u8]) -> Result<SegmentHeader, String> {
    if bytes.len() < 9 {
        return Err(format!("segment header is {} bytes, too short to read", bytes.len()));
    }
    if bytes[0..8] != SEGMENT_MAGIC {
        return Err("segment header has a bad magic number".to_string());
    }
    let Some(size) = segment_header_size(bytes[8]) else {
        return Err(format!(
            "segment format version {} is not supported (this build reads 1 and {FORMAT_VERSION})",
            bytes[8]
        ));
    };
    if bytes.len() < size {
        return Err(format!("segment header is {} bytes, expected {size}", bytes.len()));
    }
    let stored = read_u32(bytes, size - 4);
    let computed = crc32fast::hash(&bytes[0..size - 4]);
    if stored != computed {
        return Err(format!(
            "segment header checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
        ));
    }
    if bytes[9..12] != [0, 0, 0] {
        return Err("segment header reserved bytes are not zero".to_string());
    }
    let header = decode_segment_header_unchecked(bytes).ok_or("segment header is incomplete")?;
    check_seal_record(&header)?;
    Ok(header)
}

/// The fields of a header as they stand, without checking its CRC or
/// reserved bytes (for `repair`, to say which bytes changed). `None` if the
/// bytes are too short or the version is unknown.
pub fn decode_segment_header_unchecked(bytes: &[u8]) -> Option<SegmentHeader> {
    let version = *bytes.get(8)?;
    let size = segment_header_size(version)?;
    if bytes.len() < size {
        return None;
    }
    let first_lsn = read_u64(bytes, 12);
    if version == 1 {
        return Some(SegmentHeader { version, first_lsn, journal_id: None, prev: None });
    }
    let prev = SealRecord {
        first_lsn: read_u64(bytes, 36),
        last_lsn: read_u64(bytes, 44),
        len: read_u64(bytes, 52),
        last_frame_offset: read_u64(bytes, 60),
        crc: read_u32(bytes, 68),
    };
    let prev = (prev.first_lsn != 0 || prev.len != 0).then_some(prev);
    Some(SegmentHeader { version, first_lsn, journal_id: Some(read_id(bytes, 20)), prev })
}

fn check_seal_record(header: &SegmentHeader) -> Result<(), String> {
    let Some(p) = header.prev else { return Ok(()) };
    let plausible = p.first_lsn >= 1
        && p.last_lsn + 1 >= p.first_lsn
        && p.last_lsn < header.first_lsn
        && p.last_frame_offset <= p.len
        && p.len >= SEGMENT_HEADER_SIZE_V1 as u64;
    if plausible {
        Ok(())
    } else {
        Err(format!("segment header's seal record of the previous segment is inconsistent ({p:?})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal() -> SealRecord {
        SealRecord { first_lsn: 1, last_lsn: 6, len: 4000, last_frame_offset: 3900, crc: 0xDEAD_BEEF }
    }

    #[test]
    fn headers_round_trip_and_detect_every_flip() {
        let id = JournalId::mint();
        let header = encode_segment_header(7, id, Some(seal()));
        let decoded = decode_segment_header(&header).unwrap();
        assert_eq!(
            decoded,
            SegmentHeader { version: 2, first_lsn: 7, journal_id: Some(id), prev: Some(seal()) }
        );
        for byte in 0..SEGMENT_HEADER_SIZE {
            let mut damaged = header;
            damaged[byte] ^= 0x10;
            assert!(decode_segment_header(&damaged).is_err(), "flip at {byte} undetected");
        }
        let first = decode_segment_header(&encode_segment_header(1, id, None)).unwrap();
        assert_eq!(first.prev, None);
    }

    #[test]
    fn version_1_headers_still_decode() {
        let h = encode_segment_header_v1(5);
        let decoded = decode_segment_header(&h).unwrap();
        assert_eq!((decoded.version, decoded.first_lsn, decoded.size()), (1, 5, SEGMENT_HEADER_SIZE_V1));
    }
}
