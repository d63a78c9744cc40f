//! The one conversion between events and bytes: a [`StoredEvent`] becomes
//! its codec bytes on the way into the journal, and bytes read back become
//! an [`Event`] with the LSN they were read at.

use bookend_journal::codec;

use crate::error::{Error, Result};
use crate::event::{Event, StoredEvent};

/// The bytes a stored event is appended as.
pub fn encode_event(stored: &StoredEvent) -> Result<Vec<u8>> {
    Ok(codec::encode(stored)?)
}

/// Encodes a stored event into `out` (cleared first), reusing its buffer.
pub(crate) fn encode_event_into(stored: &StoredEvent, out: &mut Vec<u8>) -> Result<()> {
    out.clear();
    codec::encode_into(stored, out)?;
    Ok(())
}

/// Decodes one stored event read at `lsn`.
pub fn decode_event(lsn: u64, bytes: &[u8]) -> Result<Event> {
    let stored: StoredEvent =
        codec::decode(bytes).map_err(|e| Error::Decode { lsn, reason: e.to_string() })?;
    Ok(Event { lsn, at: stored.at, body: stored.body })
}
