//! The bytes bookend writes are frozen: an accidental change to the codec,
//! the frame layout or the segment header fails here.
//!
//! bincode is pinned at 2.0.1 and its upstream has stopped, so nothing but
//! these files guards the format. Each golden file under `tests/golden/` is
//! the hex of a representative encoding. A deliberate format change bumps
//! `FORMAT_VERSION` and regenerates them with `BOOKEND_BLESS=1`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bookend_journal::sim::SimFs;
use bookend_journal::{Batch, Durability, Journal, JournalOptions, codec, format};
use bookend_tests::{sim_dir, sim_fs};
use serde::{Deserialize, Serialize};

/// A record with the shapes stored events use: strings, optional fields,
/// integers of several sizes, a map, and an externally tagged enum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Representative {
    id: String,
    key: Option<String>,
    at_ms: u64,
    attempt: u32,
    attrs: BTreeMap<String, String>,
    reason: Reason,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Reason {
    IdleExpiry,
    Other(String),
}

fn representative() -> Representative {
    Representative {
        id: "s-0001".into(),
        key: Some("telegram:42".into()),
        at_ms: 1_763_700_000_000,
        attempt: 3,
        attrs: BTreeMap::from([("lang".into(), "en".into())]),
        reason: Reason::Other("custom".into()),
    }
}

fn golden(name: &str, bytes: &[u8]) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden").join(name);
    let hex: String = bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .chunks(32)
        .map(|c| c.concat() + "\n")
        .collect();
    if std::env::var("BOOKEND_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &hex).unwrap();
        return;
    }
    let stored = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(stored, hex, "the bytes of {name} changed: the on-disk format is frozen");
}

#[test]
fn event_encodings_are_frozen() {
    let value = representative();
    let bytes = codec::encode(&value).unwrap();
    golden("representative_event.hex", &bytes);
    assert_eq!(codec::decode::<Representative>(&bytes).unwrap(), value);

    let unit = Representative { key: None, attrs: BTreeMap::new(), reason: Reason::IdleExpiry, ..value };
    golden("representative_event_minimal.hex", &codec::encode(&unit).unwrap());
}

#[test]
fn segment_header_and_frames_are_frozen() {
    golden("segment_header_lsn_1.hex", &format::encode_segment_header(1));
    let exact = JournalOptions { preallocate_bytes: 0, ..JournalOptions::default() };
    let segment = write_two_frames(exact);
    golden("segment_with_two_frames.hex", &segment);
    // With preallocation (the default) the same bytes are followed by zeros
    // only: the format does not change, the file is just longer.
    let preallocated = write_two_frames(JournalOptions::default());
    assert!(preallocated.len() > segment.len(), "the default preallocates space");
    assert_eq!(&preallocated[..segment.len()], &segment[..]);
    assert!(preallocated[segment.len()..].iter().all(|b| *b == 0));
}

fn write_two_frames(options: JournalOptions) -> Vec<u8> {
    let sim = SimFs::new();
    let journal = Journal::open_with_fs(sim_fs(&sim), sim_dir(), options).unwrap();
    let mut batch = Batch::new();
    batch.push(&representative()).unwrap();
    batch.push(&"second").unwrap();
    journal.append_blocking(batch, Durability::Durable).unwrap();
    journal.append_blocking(Batch::of(&42u64).unwrap(), Durability::Durable).unwrap();
    drop(journal);
    sim.read_file(&sim_dir().join(format::segment_file_name(1))).unwrap()
}
