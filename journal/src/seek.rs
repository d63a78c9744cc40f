//! Where readers may start inside the last segment without scanning it
//! from its header: recovery reads every frame of that segment at open
//! (CRC, LSN continuity) and notes the offset of a frame every
//! `SEEK_POINT_SPACING` bytes, and where its frames end. A reader of the
//! in-process journal from an LSN in that segment starts at the nearest
//! point before it, instead of reading and checking again every frame
//! recovery just checked: the open of a session journal reads its tail
//! after the checkpoint, usually a few events at the end of a segment of
//! up to 16 MiB.

/// Bytes of frames between two seek points.
pub(crate) const SEEK_POINT_SPACING: u64 = 1 << 20;

/// Frame boundaries recovery checked in one segment, in LSN order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SeekPoints {
    /// The first LSN of the segment (its file name).
    pub segment_first_lsn: u64,
    /// (first LSN of a frame, its offset), increasing in both; the last
    /// one may be where the checked frames end (the next LSN to write).
    pub points: Vec<(u64, u64)>,
}

impl SeekPoints {
    pub fn new(segment_first_lsn: u64) -> SeekPoints {
        SeekPoints { segment_first_lsn, points: Vec::new() }
    }

    /// Notes the frame starting at `lsn` at `offset` if it is far enough
    /// past the last point.
    pub fn note(&mut self, lsn: u64, offset: u64) {
        if self.points.last().is_none_or(|&(_, at)| offset >= at + SEEK_POINT_SPACING) {
            self.points.push((lsn, offset));
        }
    }

    /// Keeps the points before `end` and adds `end` itself, where LSN
    /// `next_lsn` will start.
    pub fn end_at(mut self, next_lsn: u64, end: u64) -> SeekPoints {
        self.points.retain(|&(_, at)| at < end);
        self.points.push((next_lsn, end));
        self
    }

    /// The nearest point at or before `lsn`: (its LSN, its offset).
    pub fn before(&self, lsn: u64) -> Option<(u64, u64)> {
        let after = self.points.partition_point(|&(first, _)| first <= lsn);
        after.checked_sub(1).map(|i| self.points[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_spaced_and_found_at_or_before() {
        let mut p = SeekPoints::new(100);
        for i in 0..40u64 {
            p.note(100 + i * 10, 64 + i * (SEEK_POINT_SPACING / 4));
        }
        let p = p.end_at(500, 64 + 40 * (SEEK_POINT_SPACING / 4));
        assert_eq!(p.points.len(), 11);
        assert_eq!(p.before(100), Some((100, 64)));
        assert_eq!(p.before(145), Some((140, 64 + SEEK_POINT_SPACING)));
        assert_eq!(p.before(900), Some((500, 64 + 10 * SEEK_POINT_SPACING)));
        assert_eq!(p.before(99), None);
    }

    #[test]
    fn points_past_a_truncated_end_are_dropped() {
        let mut p = SeekPoints::new(1);
        p.note(1, 64);
        p.note(50, 64 + SEEK_POINT_SPACING);
        let p = p.end_at(40, 64 + SEEK_POINT_SPACING - 10);
        assert_eq!(p.points, vec![(1, 64), (40, 64 + SEEK_POINT_SPACING - 10)]);
    }
}
