//! The batch frame: one atomic batch of events with dense LSNs.
//!
//! Version 2 frames carry the writer's durable watermark: the highest LSN
//! that was already fsynced when the frame was written. Recovery uses it as
//! evidence: damage whose LSNs all lie above every watermark a later frame
//! carries was never acknowledged as durable (a write the disk reordered or
//! tore in a power cut), while damage below a watermark that a later valid
//! frame vouches for is real corruption.

use super::{BATCH_EVENTS_MAX, FRAME_SIZE_LIMIT_BYTES, read_u32, read_u64};

// Format (version 2): { len u32 | crc u32 | first_lsn u64 | count u32 | durable_lsn u64 | payload [u8; len] }
// `len` is the payload length. The CRC covers `len` and every byte after the
// CRC field (first_lsn, count, durable_lsn and the payload).
pub const FRAME_HEADER_SIZE: usize = 28;

// Format (version 1): { len u32 | crc u32 | first_lsn u64 | count u32 | payload [u8; len] }
pub const FRAME_HEADER_SIZE_V1: usize = 20;

// Format of the payload: `count` times { event_len u32 | event [u8; event_len] }.
// Event bytes are opaque to the journal (they come from the codec module).
pub const EVENT_PREFIX_SIZE: usize = 4;

/// The fixed part of a frame, as read from disk before the payload is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub payload_len: u32,
    pub crc: u32,
    pub first_lsn: u64,
    pub count: u32,
    /// Every LSN up to this one was durable when the frame was written
    /// (0 in version 1 frames, which do not record it).
    pub durable_lsn: u64,
    /// The segment version the frame was written in (1 or 2).
    pub version: u8,
}

impl FrameHeader {
    /// A version 2 header.
    pub fn new(payload_len: u32, crc: u32, first_lsn: u64, count: u32, durable_lsn: u64) -> FrameHeader {
        FrameHeader { payload_len, crc, first_lsn, count, durable_lsn, version: 2 }
    }

    /// Bytes of the fixed part.
    pub fn header_len(&self) -> usize {
        if self.version == 1 { FRAME_HEADER_SIZE_V1 } else { FRAME_HEADER_SIZE }
    }

    /// Bytes the whole frame occupies on disk.
    pub fn frame_len(&self) -> usize {
        self.header_len() + self.payload_len as usize
    }

    /// The last LSN the frame holds. Only meaningful once `count >= 1`.
    pub fn last_lsn(&self) -> u64 {
        self.first_lsn + u64::from(self.count) - 1
    }
}

/// Parses the fixed part of a frame of a segment of `version` and checks
/// what can be checked without the payload: the bounds on length and count.
pub fn decode_frame_header(bytes: &[u8], version: u8) -> Result<FrameHeader, String> {
    let size = if version == 1 { FRAME_HEADER_SIZE_V1 } else { FRAME_HEADER_SIZE };
    if bytes.len() < size {
        return Err("frame header is incomplete".to_string());
    }
    let header = FrameHeader {
        payload_len: read_u32(bytes, 0),
        crc: read_u32(bytes, 4),
        first_lsn: read_u64(bytes, 8),
        count: read_u32(bytes, 16),
        durable_lsn: if version == 1 { 0 } else { read_u64(bytes, 20) },
        version: if version == 1 { 1 } else { 2 },
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
    if header.durable_lsn >= header.first_lsn {
        return Err(format!(
            "frame durable watermark {} is not below its first LSN {}",
            header.durable_lsn, header.first_lsn
        ));
    }
    Ok(header)
}

fn crc_prefix(payload_len: u32, first_lsn: u64, count: u32, durable_lsn: Option<u64>) -> crc32fast::Hasher {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&payload_len.to_le_bytes());
    hasher.update(&first_lsn.to_le_bytes());
    hasher.update(&count.to_le_bytes());
    if let Some(durable) = durable_lsn {
        hasher.update(&durable.to_le_bytes());
    }
    hasher
}

/// The CRC a version 2 frame must carry: over `len`, then
/// `first_lsn | count | durable_lsn | payload`.
pub fn frame_crc(payload_len: u32, first_lsn: u64, count: u32, durable_lsn: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc_prefix(payload_len, first_lsn, count, Some(durable_lsn));
    hasher.update(payload);
    hasher.finalize()
}

/// Same CRC as [`frame_crc`], with the payload's own CRC computed beforehand
/// (outside the submission lock) and combined in.
pub fn frame_crc_with_payload_hasher(
    payload_len: u32,
    first_lsn: u64,
    count: u32,
    durable_lsn: u64,
    payload_hasher: &crc32fast::Hasher,
) -> u32 {
    let mut hasher = crc_prefix(payload_len, first_lsn, count, Some(durable_lsn));
    hasher.combine(payload_hasher);
    hasher.finalize()
}

/// Writes a version 2 frame header into the first `FRAME_HEADER_SIZE` bytes of `out`.
pub fn encode_frame_header(out: &mut [u8], header: &FrameHeader) {
    assert!(out.len() >= FRAME_HEADER_SIZE, "frame header buffer too small");
    assert_eq!(header.version, 2, "only version 2 frames are written");
    out[0..4].copy_from_slice(&header.payload_len.to_le_bytes());
    out[4..8].copy_from_slice(&header.crc.to_le_bytes());
    out[8..16].copy_from_slice(&header.first_lsn.to_le_bytes());
    out[16..20].copy_from_slice(&header.count.to_le_bytes());
    out[20..28].copy_from_slice(&header.durable_lsn.to_le_bytes());
}

/// Checks a whole frame (header already decoded, `payload` its bytes): the CRC
/// and that the event prefixes exactly tile the payload.
pub fn check_frame_payload(header: &FrameHeader, payload: &[u8]) -> Result<(), String> {
    if payload.len() != header.payload_len as usize {
        return Err("frame payload is incomplete".to_string());
    }
    let durable = (header.version != 1).then_some(header.durable_lsn);
    let mut hasher = crc_prefix(header.payload_len, header.first_lsn, header.count, durable);
    hasher.update(payload);
    let computed = hasher.finalize();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_header_rejects_huge_lengths_without_allocating() {
        let mut raw = [0u8; FRAME_HEADER_SIZE];
        raw[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        raw[16..20].copy_from_slice(&1u32.to_le_bytes());
        raw[8..16].copy_from_slice(&1u64.to_le_bytes());
        assert!(decode_frame_header(&raw, 2).unwrap_err().contains("exceeds the limit"));
    }

    #[test]
    fn a_watermark_at_or_past_the_frame_is_refused() {
        let payload = [1u8, 0, 0, 0, 7];
        for (durable, ok) in [(0u64, true), (4, true), (5, false), (9, false)] {
            let crc = frame_crc(5, 5, 1, durable, &payload);
            let mut raw = [0u8; FRAME_HEADER_SIZE];
            encode_frame_header(&mut raw, &FrameHeader::new(5, crc, 5, 1, durable));
            let decoded = decode_frame_header(&raw, 2);
            assert_eq!(decoded.is_ok(), ok, "watermark {durable}: {decoded:?}");
            if let Ok(h) = decoded {
                check_frame_payload(&h, &payload).unwrap();
            }
        }
    }
}
