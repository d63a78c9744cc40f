//! One ack of `bookend append` as a JSON line, written straight to the
//! output. The common acks (a start, an end, a touch, a repeat) are
//! serialized from a borrowed struct: building a `serde_json::Value` for
//! each cost an allocation per key and per value on the acks thread.

use std::io::Write;

use bookend_projector::Ack;
use serde::Serialize;

/// An ack that lists no events, with its keys in the order
/// `Ack::to_json` prints them (serde_json's map sorts them).
#[derive(Serialize)]
struct ShortAck<'a> {
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    duplicate: bool,
    lsn: Option<u64>,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_id: Option<&'a str>,
}

/// Writes `ack` and a newline to `out`, byte for byte as
/// `writeln!(out, "{}", ack.to_json())` would.
pub fn write_ack(out: &mut dyn Write, ack: &Ack) -> std::io::Result<()> {
    if ack.describes_events() {
        return writeln!(out, "{}", ack.to_json());
    }
    let short = ShortAck {
        duplicate: ack.duplicate,
        lsn: ack.lsn,
        ok: true,
        reason: ack.reason.as_ref().map(|r| r.as_str()),
        session_id: ack.session_id.as_deref(),
    };
    serde_json::to_writer(&mut *out, &short)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use bookend_projector::{EndReason, Event, EventBody};

    use super::*;

    fn line(ack: &Ack) -> String {
        let mut out = Vec::new();
        write_ack(&mut out, ack).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// Every shape of short ack, and one that lists its events, comes out
    /// as `to_json` prints it.
    #[test]
    fn short_acks_match_to_json() {
        let id = Some("s-1".to_string());
        let end = Event {
            lsn: 9,
            at: 1,
            body: EventBody::SessionEnd {
                session_id: "s-0".into(),
                key: None,
                reason: EndReason::Superseded,
                next_id: Some("s-1".into()),
            },
        };
        let acks = [
            Ack { lsn: Some(3), session_id: id.clone(), ..Ack::default() },
            Ack { lsn: Some(3), duplicate: true, session_id: id.clone(), ..Ack::default() },
            Ack {
                lsn: Some(4),
                session_id: id.clone(),
                reason: Some(EndReason::Completed),
                ..Ack::default()
            },
            Ack { lsn: None, session_id: Some("a \"quoted\" id\n".into()), ..Ack::default() },
            Ack::default(),
            Ack { lsn: Some(9), events: vec![end.clone()], ..Ack::default() },
            Ack { lsn: Some(10), session_id: id, events: vec![end.clone(), end], ..Ack::default() },
        ];
        for ack in &acks {
            assert_eq!(line(ack), format!("{}\n", ack.to_json()), "{ack:?}");
        }
    }
}
