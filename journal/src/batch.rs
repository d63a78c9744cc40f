//! A batch of events on its way to becoming one frame.

use serde::Serialize;

use crate::codec;
use crate::error::{Error, Result};
use crate::format::{
    self, BATCH_EVENTS_MAX, EVENT_PREFIX_SIZE, FRAME_HEADER_SIZE, FRAME_SIZE_LIMIT_BYTES, FrameHeader,
};

/// From this payload size on, the payload's CRC is computed before taking
/// the submission lock and combined in under it. `crc32fast`'s `combine` is
/// a GF(2) matrix product (~1 µs, perf showed 7% of the CPU of 64 tasks of
/// one-event buffered appends); hashing a payload below this size under the
/// lock is cheaper.
const CRC_COMBINE_MIN_BYTES: usize = 16 * 1024;

/// Events appended together: they get consecutive LSNs and reach the disk
/// all or none. The batch is encoded straight into the frame's buffer, so
/// appending copies it once more at most (into the writer's group buffer).
#[derive(Debug, Clone)]
pub struct Batch {
    /// The whole frame: `FRAME_HEADER_SIZE` bytes reserved, then the payload.
    frame: Vec<u8>,
    count: u32,
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl Batch {
    pub fn new() -> Self {
        Self::with_capacity(256)
    }

    /// A batch whose buffer starts with room for `bytes` of events.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut frame = Vec::with_capacity(FRAME_HEADER_SIZE + bytes);
        frame.resize(FRAME_HEADER_SIZE, 0);
        Batch { frame, count: 0 }
    }

    /// A batch holding one event.
    pub fn of<T: Serialize + ?Sized>(event: &T) -> Result<Self> {
        let mut batch = Batch::new();
        batch.push(event)?;
        Ok(batch)
    }

    /// Encodes `event` with the codec and adds it. On error the batch is
    /// unchanged.
    pub fn push<T: Serialize + ?Sized>(&mut self, event: &T) -> Result<()> {
        self.check_room_for_one_more()?;
        let prefix_at = self.frame.len();
        self.frame.extend_from_slice(&[0u8; EVENT_PREFIX_SIZE]);
        let len = match codec::encode_into(event, &mut self.frame) {
            Ok(len) => len,
            Err(e) => {
                self.frame.truncate(prefix_at);
                return Err(e);
            }
        };
        self.finish_event(prefix_at, len)
    }

    /// Adds an event that is already encoded.
    pub fn push_encoded(&mut self, bytes: &[u8]) -> Result<()> {
        self.check_room_for_one_more()?;
        let prefix_at = self.frame.len();
        self.frame.extend_from_slice(&[0u8; EVENT_PREFIX_SIZE]);
        self.frame.extend_from_slice(bytes);
        self.finish_event(prefix_at, bytes.len())
    }

    fn check_room_for_one_more(&self) -> Result<()> {
        if self.count as usize >= BATCH_EVENTS_MAX {
            return Err(Error::BatchTooLarge { count: self.count as usize + 1, max: BATCH_EVENTS_MAX });
        }
        Ok(())
    }

    fn finish_event(&mut self, prefix_at: usize, len: usize) -> Result<()> {
        if self.frame.len() > FRAME_SIZE_LIMIT_BYTES {
            let size = self.frame.len();
            self.frame.truncate(prefix_at);
            return Err(Error::RecordTooLarge { size, max: FRAME_SIZE_LIMIT_BYTES });
        }
        // The frame limit bounds `len`, so it fits a u32.
        let len = u32::try_from(len)
            .map_err(|_| Error::RecordTooLarge { size: len, max: FRAME_SIZE_LIMIT_BYTES })?;
        self.frame[prefix_at..prefix_at + EVENT_PREFIX_SIZE].copy_from_slice(&len.to_le_bytes());
        self.count += 1;
        Ok(())
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes the batch occupies on disk as a frame.
    pub fn frame_len(&self) -> usize {
        self.frame.len()
    }

    /// Whether one more event of `event_len` bytes fits in this batch
    /// within a frame limit of `record_max` bytes (and the events limit).
    pub fn fits(&self, event_len: usize, record_max: usize) -> bool {
        (self.count as usize) < BATCH_EVENTS_MAX
            && self.frame.len() + EVENT_PREFIX_SIZE + event_len <= record_max
    }

    /// Whether an event of `event_len` bytes fits in a frame of its own
    /// within `record_max` bytes; the error is the one appending it would get.
    pub fn check_alone(event_len: usize, record_max: usize) -> Result<()> {
        let size = FRAME_HEADER_SIZE + EVENT_PREFIX_SIZE + event_len;
        if size > record_max {
            return Err(Error::RecordTooLarge { size, max: record_max });
        }
        Ok(())
    }

    /// Empties the batch, keeping its buffer.
    pub fn clear(&mut self) {
        self.frame.truncate(FRAME_HEADER_SIZE);
        self.count = 0;
    }

    /// The CRC of the payload alone, computed outside the submission lock,
    /// for a payload large enough that hashing it under the lock would cost
    /// more than combining CRCs there (`None` for a small one).
    pub(crate) fn payload_hasher(&self) -> Option<crc32fast::Hasher> {
        let payload = &self.frame[FRAME_HEADER_SIZE..];
        (payload.len() >= CRC_COMBINE_MIN_BYTES).then(|| {
            let mut hasher = crc32fast::Hasher::new();
            hasher.update(payload);
            hasher
        })
    }

    /// Fills in the frame header once the first LSN is known and returns
    /// the finished frame bytes. `durable_lsn` is the writer's durable
    /// watermark now (it must be below `first_lsn`).
    pub(crate) fn seal(
        mut self,
        first_lsn: u64,
        durable_lsn: u64,
        payload_hasher: Option<&crc32fast::Hasher>,
    ) -> Vec<u8> {
        assert!(durable_lsn < first_lsn, "a frame's watermark must be below its own LSNs");
        let payload_len = (self.frame.len() - FRAME_HEADER_SIZE) as u32;
        let count = self.count;
        let crc = match payload_hasher {
            Some(h) => format::frame_crc_with_payload_hasher(payload_len, first_lsn, count, durable_lsn, h),
            None => format::frame_crc(
                payload_len,
                first_lsn,
                count,
                durable_lsn,
                &self.frame[FRAME_HEADER_SIZE..],
            ),
        };
        let header = FrameHeader::new(payload_len, crc, first_lsn, count, durable_lsn);
        format::encode_frame_header(&mut self.frame, &header);
        self.frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small payloads are hashed under the lock, large ones combined: both
    /// seal a frame whose CRC the reader accepts.
    #[test]
    fn small_and_large_batches_seal_frames_that_check() {
        for (events, size) in [(1usize, 90usize), (3, 5_000), (40, 1_000)] {
            let mut batch = Batch::new();
            for i in 0..events {
                batch.push_encoded(&vec![i as u8; size]).unwrap();
            }
            let large = batch.frame_len() - FRAME_HEADER_SIZE >= CRC_COMBINE_MIN_BYTES;
            let hasher = batch.payload_hasher();
            assert_eq!(hasher.is_some(), large);
            let frame = batch.seal(42, 41, hasher.as_ref());
            let header = format::decode_frame_header(&frame, 2).unwrap();
            assert_eq!((header.first_lsn, header.count as usize), (42, events));
            format::check_frame_payload(&header, &frame[FRAME_HEADER_SIZE..]).unwrap();
        }
    }
}
