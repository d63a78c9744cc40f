//! The one module that knows how an event becomes bytes.
//!
//! bincode 2.0.1 through its serde path with `config::standard()` (varint
//! integers, little endian) and a decode limit. The crate is pinned exactly
//! because its upstream has stopped; the bytes are frozen by the golden tests
//! in `tests/codec_golden.rs`. If the format ever has to change, the segment
//! header's version byte says which codec wrote a segment.
//!
//! bincode's serde path cannot express `#[serde(tag)]`, `flatten` or `skip*`:
//! stored types must be plain structs and externally tagged enums.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::format::FRAME_SIZE_LIMIT_BYTES;

/// The largest single encoded event: whatever fits in the largest frame.
pub const EVENT_SIZE_MAX_BYTES: usize = FRAME_SIZE_LIMIT_BYTES;

fn config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<EVENT_SIZE_MAX_BYTES>,
> {
    bincode::config::standard().with_limit::<EVENT_SIZE_MAX_BYTES>()
}

/// Appends the encoding of `value` to `out` and returns its length.
/// `out` is left as it was if encoding fails.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<usize> {
    let start = out.len();
    match bincode::serde::encode_into_std_write(value, out, config()) {
        Ok(n) if n <= EVENT_SIZE_MAX_BYTES => Ok(n),
        Ok(n) => {
            out.truncate(start);
            Err(Error::RecordTooLarge { size: n, max: EVENT_SIZE_MAX_BYTES })
        }
        Err(e) => {
            out.truncate(start);
            Err(Error::Codec { reason: e.to_string() })
        }
    }
}

/// Encodes `value` into a new vector.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    encode_into(value, &mut out)?;
    Ok(out)
}

/// Decodes one value that must occupy all of `bytes`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let (value, used) = bincode::serde::decode_from_slice::<T, _>(bytes, config())
        .map_err(|e| Error::Codec { reason: e.to_string() })?;
    if used != bytes.len() {
        return Err(Error::Codec {
            reason: format!("{} trailing bytes after the encoded value", bytes.len() - used),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Sample {
        id: String,
        n: u64,
        tags: Vec<String>,
    }

    #[test]
    fn round_trips_and_rejects_trailing_bytes() {
        let s = Sample { id: "s1".into(), n: 300, tags: vec!["a".into()] };
        let mut bytes = encode(&s).unwrap();
        assert_eq!(decode::<Sample>(&bytes).unwrap(), s);
        bytes.push(0);
        assert!(matches!(decode::<Sample>(&bytes), Err(Error::Codec { .. })));
    }

    #[test]
    fn huge_declared_lengths_are_errors_not_allocations() {
        // A varint length of u64::MAX for the string: bincode must refuse it
        // through the limit instead of trying to allocate.
        let bytes = [0xFFu8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F];
        assert!(decode::<Sample>(&bytes).is_err());
    }
}
