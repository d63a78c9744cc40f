//! The one conversion between events and bytes: a [`StoredEvent`] becomes
//! its codec bytes on the way into the journal, and bytes read back become
//! an [`Event`] with the LSN they were read at.

use bookend_journal::codec;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::event::{Event, EventBody, StoredEvent};

/// A [`StoredEvent`] that borrows its body: the same fields in the same
/// order, so the same bytes, without a copy of every string in the body.
#[derive(Serialize)]
struct StoredEventRef<'a> {
    at: u64,
    body: &'a EventBody,
}

/// The bytes a stored event is appended as.
pub fn encode_event(stored: &StoredEvent) -> Result<Vec<u8>> {
    Ok(codec::encode(stored)?)
}

/// Encodes the event `body` at time `at` into `out` (cleared first),
/// reusing its buffer: the bytes of `StoredEvent { at, body }`.
pub(crate) fn encode_event_into(at: u64, body: &EventBody, out: &mut Vec<u8>) -> Result<()> {
    out.clear();
    codec::encode_into(&StoredEventRef { at, body }, out)?;
    Ok(())
}

/// Decodes one stored event read at `lsn`.
pub fn decode_event(lsn: u64, bytes: &[u8]) -> Result<Event> {
    let stored: StoredEvent =
        codec::decode(bytes).map_err(|e| Error::Decode { lsn, reason: e.to_string() })?;
    Ok(Event { lsn, at: stored.at, body: stored.body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EndReason, StartFields};

    /// The borrowed form encodes to exactly the bytes of the owned one
    /// (which the golden tests freeze).
    #[test]
    fn a_borrowed_body_encodes_as_the_stored_event() {
        let start = StartFields {
            session_id: "s-1".into(),
            key: Some("telegram:1".into()),
            platform: Some("telegram".into()),
            ..StartFields::default()
        };
        let bodies = [
            EventBody::SessionStart(start.into()),
            EventBody::SessionEnd {
                session_id: "s-1".into(),
                key: Some("telegram:1".into()),
                reason: EndReason::Completed,
                next_id: Some("s-2".into()),
            },
            EventBody::JournalOpen { epoch: 3, pid: 42, host: "h".into(), version: "0.1".into() },
        ];
        let mut out = Vec::new();
        for (i, body) in bodies.into_iter().enumerate() {
            let at = 1_763_700_000_000 + i as u64;
            encode_event_into(at, &body, &mut out).unwrap();
            assert_eq!(out, encode_event(&StoredEvent { at, body }).unwrap());
        }
    }
}
