//! The bytes bookend writes are frozen: an accidental change to the codec,
//! the frame layout or the segment header fails here.
//!
//! bincode is pinned at 2.0.1 and its upstream has stopped, so nothing but
//! these files guards the format. Each golden file under `tests/golden/` is
//! the hex of a representative encoding. A deliberate format change bumps
//! `FORMAT_VERSION` and regenerates them with `BOOKEND_BLESS=1`; the files
//! of the older version stay, and a test proves a journal of that version
//! still opens (and is carried on in the new version).

use std::collections::BTreeMap;
use std::path::PathBuf;

use bookend_journal::sim::SimFs;
use bookend_journal::{Batch, Durability, Journal, JournalId, JournalOptions, Reader, codec, format};
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

/// A fixed id, so the header's bytes can be frozen.
const GOLDEN_ID: JournalId = JournalId([
    0x01, 0x93, 0x0a, 0x1b, 0x2c, 0x3d, 0x7e, 0x4f, 0x80, 0x91, 0xa2, 0xb3, 0xc4, 0xd5, 0xe6, 0xf7,
]);

fn hex_file(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden").join(name);
    let text: String = std::fs::read_to_string(&path).unwrap().split_whitespace().collect();
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn segment_header_and_frames_are_frozen() {
    let seal = format::SealRecord {
        first_lsn: 1,
        last_lsn: 41,
        len: 4000,
        last_frame_offset: 3950,
        crc: 0x1234_5678,
    };
    golden("segment_header_lsn_1.hex", &format::encode_segment_header(1, GOLDEN_ID, None));
    golden("segment_header_lsn_42.hex", &format::encode_segment_header(42, GOLDEN_ID, Some(seal)));
    let exact = JournalOptions { preallocate_bytes: 0, ..JournalOptions::default() };
    let (id, segment) = write_two_frames(exact);
    // The header carries the journal's (random) id; the frames after it are
    // the same for every journal.
    assert_eq!(&segment[..format::SEGMENT_HEADER_SIZE], &format::encode_segment_header(1, id, None)[..]);
    golden("segment_frames_after_header.hex", &segment[format::SEGMENT_HEADER_SIZE..]);
    // With preallocation (the default) the same bytes are followed by zeros
    // only: the format does not change, the file is just longer.
    let (_, preallocated) = write_two_frames(JournalOptions::default());
    assert!(preallocated.len() > segment.len(), "the default preallocates space");
    assert_eq!(
        &preallocated[format::SEGMENT_HEADER_SIZE..segment.len()],
        &segment[format::SEGMENT_HEADER_SIZE..]
    );
    assert!(preallocated[segment.len()..].iter().all(|b| *b == 0));
}

fn write_two_frames(options: JournalOptions) -> (JournalId, Vec<u8>) {
    let sim = SimFs::new();
    let journal = Journal::open_with_fs(sim_fs(&sim), sim_dir(), options).unwrap();
    let mut batch = Batch::new();
    batch.push(&representative()).unwrap();
    batch.push(&"second").unwrap();
    journal.append_blocking(batch, Durability::Durable).unwrap();
    journal.append_blocking(Batch::of(&42u64).unwrap(), Durability::Durable).unwrap();
    let id = journal.id();
    drop(journal);
    (id, sim.read_file(&sim_dir().join(format::segment_file_name(1))).unwrap())
}

/// A journal written by bookend before format version 2 (a version 1
/// segment, frozen when it was current) opens: its events read back, the
/// writer gives it a manifest and continues in a new version 2 segment,
/// and the old segment is not changed.
#[test]
fn a_version_1_journal_still_opens_and_continues_in_version_2() {
    let v1 = hex_file("segment_v1_with_two_frames.hex");
    assert_eq!(&v1[..format::SEGMENT_HEADER_SIZE_V1], &hex_file("segment_v1_header_lsn_1.hex")[..]);
    let sim = SimFs::new();
    let old = sim_dir().join(format::segment_file_name(1));
    sim.write_file(&old, &v1).unwrap();
    let journal = Journal::open_with_fs(sim_fs(&sim), sim_dir(), JournalOptions::default()).unwrap();
    assert_eq!(journal.next_lsn(), 4);
    journal.append_blocking(Batch::of(&"third").unwrap(), Durability::Durable).unwrap();
    drop(journal);
    assert_eq!(sim.read_file(&old).unwrap(), v1, "the version 1 segment changed");
    let new = sim.read_file(&sim_dir().join(format::segment_file_name(4))).unwrap();
    let header = format::decode_segment_header(&new).unwrap();
    assert_eq!((header.version, header.prev.map(|p| (p.first_lsn, p.last_lsn))), (2, Some((1, 3))));
    let mut reader = Reader::open_with_fs(sim_fs(&sim), sim_dir(), 1);
    let mut events = Vec::new();
    while let Some(frame) = reader.next_frame().unwrap() {
        events.extend(frame.events().map(|(lsn, bytes)| (lsn, bytes.to_vec())));
    }
    assert_eq!(events.len(), 4);
    assert_eq!(codec::decode::<Representative>(&events[0].1).unwrap(), representative());
    assert_eq!(codec::decode::<String>(&events[1].1).unwrap(), "second");
    assert_eq!(codec::decode::<u64>(&events[2].1).unwrap(), 42);
    assert_eq!(codec::decode::<String>(&events[3].1).unwrap(), "third");
    assert!(bookend_journal::check(sim_fs(&sim), &sim_dir()).is_ok());
}
