//! Checked frames as readers hand them out.

use crate::format::EventSlices;

/// A checked frame, borrowed from the reader's buffer.
#[derive(Debug, Clone, Copy)]
pub struct FrameView<'a> {
    pub first_lsn: u64,
    pub count: u32,
    pub(super) payload: &'a [u8],
    /// Events below this LSN are before the reader's start and are skipped.
    pub(super) skip_below: u64,
    /// The LSNs a person accepted as lost just before this frame
    /// (`--accept-data-loss`): the frame does not follow the one before it.
    pub follows_gap: Option<(u64, u64)>,
}

impl<'a> FrameView<'a> {
    pub fn last_lsn(&self) -> u64 {
        self.first_lsn + u64::from(self.count) - 1
    }

    /// The frame's events at or after the reader's start, with their LSNs.
    pub fn events(&self) -> impl Iterator<Item = (u64, &'a [u8])> + 'a {
        events_of(self.payload, self.first_lsn, self.count, self.skip_below)
    }

    pub fn to_owned_frame(&self) -> OwnedFrame {
        OwnedFrame {
            first_lsn: self.first_lsn,
            count: self.count,
            payload: self.payload.to_vec(),
            skip_below: self.skip_below,
            follows_gap: self.follows_gap,
        }
    }
}

/// A checked frame that owns its bytes (what followers hand out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedFrame {
    pub first_lsn: u64,
    pub count: u32,
    payload: Vec<u8>,
    skip_below: u64,
    /// As [`FrameView::follows_gap`].
    pub follows_gap: Option<(u64, u64)>,
}

impl OwnedFrame {
    pub fn last_lsn(&self) -> u64 {
        self.first_lsn + u64::from(self.count) - 1
    }

    pub fn events(&self) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        events_of(&self.payload, self.first_lsn, self.count, self.skip_below)
    }
}

fn events_of(
    payload: &[u8],
    first_lsn: u64,
    count: u32,
    skip_below: u64,
) -> impl Iterator<Item = (u64, &[u8])> {
    // The payload passed `check_frame_payload`, so every slice decodes.
    EventSlices::new(payload, count)
        .map_while(|e| e.ok())
        .zip(first_lsn..)
        .filter(move |(_, lsn)| *lsn >= skip_below)
        .map(|(bytes, lsn)| (lsn, bytes))
}
