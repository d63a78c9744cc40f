//! The active segment's end: zeros preallocated ahead of the data, and
//! rotation (trim, sync, seal record into the new segment's header, the
//! manifest).

use std::sync::atomic::Ordering;

use super::shared::lock;
use super::{ActiveSegment, Writer};
use crate::error::{IoContext, Result};
use crate::format::SealRecord;
use crate::manifest::store_manifest;
use crate::segment;

impl Writer {
    /// Keeps `preallocate_bytes` of zeros ahead of the data once less than
    /// half of them is left, so the next fdatasyncs need no size change.
    pub(super) fn preallocate(&mut self) -> Result<()> {
        let ahead = self.options.preallocate_bytes;
        let segment = &mut self.segment;
        let limit = self.options.segment_size_max_bytes;
        if ahead == 0 || segment.allocated >= limit || segment.allocated - segment.written >= ahead / 2 {
            return Ok(());
        }
        let target = (segment.written + ahead).min(limit);
        let zeros = vec![0u8; (target - segment.allocated) as usize];
        segment.file.write_all_at(&zeros, segment.allocated).ctx("preallocate", &segment.path)?;
        segment.allocated = target;
        Ok(())
    }

    /// Seals the active segment (everything in it written and synced) and
    /// starts a new one at `first_lsn`, whose header carries the seal record;
    /// then the manifest records the new segment and the durable floor.
    pub(super) fn rotate(&mut self, first_lsn: u64) -> Result<()> {
        self.flush_buf()?;
        if self.segment.allocated > self.segment.written {
            // A sealed segment holds its frames and nothing after them.
            self.segment
                .file
                .set_len(self.segment.written)
                .ctx("trim preallocated space of", &self.segment.path)?;
            self.segment.allocated = self.segment.written;
        }
        {
            let mut sync = lock(&self.shared.sync);
            sync.claimed = sync.claimed.max(first_lsn - 1);
        }
        self.shared.sync_file(&*self.segment.file, &self.segment.path)?;
        self.shared.durable_up_to(first_lsn - 1)?;
        let seal = SealRecord {
            first_lsn: self.segment.first_lsn,
            last_lsn: first_lsn - 1,
            len: self.segment.written,
            last_frame_offset: self.segment.last_frame_offset,
            crc: self.segment.crc.clone().finalize(),
        };
        let (file, path) = segment::create_segment(
            &*self.shared.fs,
            &self.shared.dir,
            first_lsn,
            self.shared.id,
            Some(seal),
        )?;
        tracing::debug!(segment = %path.display(), "started a new segment");
        self.shared.counters.segments_created.fetch_add(1, Ordering::Relaxed);
        let header = crate::format::encode_segment_header(first_lsn, self.shared.id, Some(seal));
        self.segment = ActiveSegment::starting(file, path, first_lsn, &header, self.segment.generation + 1);
        self.record_segment(first_lsn)
    }

    fn record_segment(&self, first_lsn: u64) -> Result<()> {
        if self.turns.is_some() {
            self.shared.reload_manifest()?;
        }
        let mut manifest = lock(&self.shared.manifest);
        let mut updated = manifest.clone();
        updated.last_segment_first_lsn = first_lsn;
        updated.durable_floor_lsn = updated.durable_floor_lsn.max(first_lsn - 1);
        store_manifest(&*self.shared.fs, &self.shared.dir, &updated)?;
        *manifest = updated;
        Ok(())
    }
}
