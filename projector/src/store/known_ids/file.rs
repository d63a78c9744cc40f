//! The known-ids filter's file: a small header, then every filter's bit
//! words as they are in memory, so the file is read straight into the
//! words and written from them a chunk at a time. Format 3 was one
//! codec-encoded record: loading a filter of 5M ids (8.4 MB) held the
//! file's bytes and the decoded words at once, and saving it held three
//! copies.

use std::io;
use std::path::Path;

use bookend_journal::codec;
use bookend_journal::fs::{FsFile, StdFs, open_read_if_exists};
use serde::{Deserialize, Serialize};

use super::filter::IdFilter;

/// Bump when the file changes shape (3: one codec record, the words as a
/// byte string; 4: a header, then the words).
pub(super) const KNOWN_IDS_FORMAT: u32 = 4;
/// The largest filter file read back (ten times the filter of 10 M ids).
const KNOWN_IDS_FILE_MAX_BYTES: u64 = 128 << 20;
/// The largest header read back (a few bytes per filter generation).
const HEADER_MAX_BYTES: u32 = 64 << 10;
/// Bytes read, compared or written at a time.
const CHUNK_BYTES: usize = 64 << 10;

// Format 4: { header_len u32 LE | header | words }
//   header (codec): { format u32 | seed u64 | probe u64 |
//                     filters seq<(hashes u32, count u64, words u64)> }
//   words: each filter's `words` u64 words, little-endian, in the order of
//          `filters`.
#[derive(Serialize, Deserialize)]
pub(super) struct Header {
    pub format: u32,
    pub seed: u64,
    pub probe: u64,
    pub filters: Vec<(u32, u64, u64)>,
}

/// A file as read: its header, each filter's words, and the CRC of all its
/// bytes.
pub(super) type Read = (Header, Vec<Vec<u64>>, u32);

/// Feeds the file's bytes for `header` and `filters` to `sink`, in order,
/// a chunk at a time.
fn stream(
    header: &[u8],
    filters: &[(IdFilter, usize)],
    mut sink: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let len = u32::try_from(header.len()).map_err(|_| invalid("the header is over 4 GiB"))?;
    sink(&len.to_le_bytes())?;
    sink(header)?;
    let mut buf = Vec::with_capacity(CHUNK_BYTES);
    for (filter, _) in filters {
        for words in filter.as_slice().chunks(CHUNK_BYTES / 8) {
            buf.clear();
            buf.extend(words.iter().flat_map(|w| w.to_le_bytes()));
            sink(&buf)?;
        }
    }
    Ok(())
}

/// Writes the file for `filters` at `path` unless it already holds exactly
/// these bytes, replacing it atomically; returns the CRC of its bytes. The
/// bytes are made twice at most: to compare (a file of another length is
/// not read), then to write.
pub(super) fn write(path: &Path, seed: u64, probe: u64, filters: &[(IdFilter, usize)]) -> io::Result<u32> {
    let header = Header {
        format: KNOWN_IDS_FORMAT,
        seed,
        probe,
        filters: filters
            .iter()
            .map(|(f, n)| (f.num_hashes(), *n as u64, f.as_slice().len() as u64))
            .collect(),
    };
    let words: u64 = header.filters.iter().map(|f| f.2).sum();
    let header = codec::encode(&header).map_err(|e| invalid(&e.to_string()))?;
    let len = 4 + header.len() as u64 + words * 8;
    if let Some(crc) = held(path, len, &header, filters)? {
        return Ok(crc);
    }
    let mut hasher = crc32fast::Hasher::new();
    bookend_journal::fs::write_atomically_with(&StdFs, path, |file| {
        let mut at = 0u64;
        stream(&header, filters, |bytes| {
            hasher.update(bytes);
            file.write_all_at(bytes, at)?;
            at += bytes.len() as u64;
            Ok(())
        })
    })?;
    Ok(hasher.finalize())
}

/// The CRC of the file at `path` if it is the `len` bytes `stream` would
/// write; `None` if it is not (or there is none).
fn held(path: &Path, len: u64, header: &[u8], filters: &[(IdFilter, usize)]) -> io::Result<Option<u32>> {
    let Some(file) = open_read_if_exists(&StdFs, path)? else { return Ok(None) };
    if file.size()? != len {
        return Ok(None);
    }
    let mut at = 0u64;
    let mut theirs = Vec::new();
    let mut hasher = crc32fast::Hasher::new();
    let same = stream(header, filters, |ours| {
        theirs.resize(ours.len(), 0);
        read_exact_at(&*file, &mut theirs, at)?;
        at += ours.len() as u64;
        hasher.update(ours);
        if theirs != ours { Err(io::Error::other(Differs)) } else { Ok(()) }
    });
    match same {
        Ok(()) => Ok(Some(hasher.finalize())),
        Err(e) if e.get_ref().is_some_and(|inner| inner.is::<Differs>()) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The file differs from what would be written (ends a comparison early).
#[derive(Debug)]
struct Differs;

impl std::fmt::Display for Differs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the file differs")
    }
}

impl std::error::Error for Differs {}

/// Reads the file at `path`: `None` if there is none. A file that is not a
/// whole format 4 file is `InvalidData`.
pub(super) fn read(path: &Path) -> io::Result<Option<Read>> {
    let Some(file) = open_read_if_exists(&StdFs, path)? else { return Ok(None) };
    let size = file.size()?;
    if size > KNOWN_IDS_FILE_MAX_BYTES {
        return Err(invalid(&format!("it is {size} bytes, over the limit of {KNOWN_IDS_FILE_MAX_BYTES}")));
    }
    let mut hasher = crc32fast::Hasher::new();
    let mut len = [0u8; 4];
    read_exact_at(&*file, &mut len, 0)?;
    hasher.update(&len);
    let header_len = u32::from_le_bytes(len);
    if header_len > HEADER_MAX_BYTES || u64::from(header_len) + 4 > size {
        return Err(invalid(&format!("its header length {header_len} does not fit the file")));
    }
    let mut bytes = vec![0u8; header_len as usize];
    read_exact_at(&*file, &mut bytes, 4)?;
    hasher.update(&bytes);
    let header: Header = codec::decode(&bytes).map_err(|e| invalid(&e.to_string()))?;
    if header.format != KNOWN_IDS_FORMAT {
        return Err(invalid(&format!("it is format {}, not {KNOWN_IDS_FORMAT}", header.format)));
    }
    let words: u64 = header.filters.iter().map(|f| f.2).fold(0, u64::saturating_add);
    let expected = words.saturating_mul(8).saturating_add(4 + u64::from(header_len));
    if expected != size {
        return Err(invalid(&format!("it is {size} bytes, but its header describes {expected}")));
    }
    let mut at = 4 + u64::from(header_len);
    let mut filters = Vec::with_capacity(header.filters.len());
    for &(_, _, count) in &header.filters {
        filters.push(read_words(&*file, &mut at, count, &mut hasher)?);
    }
    Ok(Some((header, filters, hasher.finalize())))
}

/// Reads `count` words at `*at`, a chunk at a time, into a vector of exactly
/// that size.
fn read_words(
    file: &dyn FsFile,
    at: &mut u64,
    count: u64,
    hasher: &mut crc32fast::Hasher,
) -> io::Result<Vec<u64>> {
    let count = usize::try_from(count).map_err(|_| invalid("a filter is too large"))?;
    let mut words = Vec::with_capacity(count);
    let mut buf = vec![0u8; CHUNK_BYTES];
    while words.len() < count {
        let n = (count - words.len()).min(CHUNK_BYTES / 8) * 8;
        read_exact_at(file, &mut buf[..n], *at)?;
        hasher.update(&buf[..n]);
        words.extend(
            buf[..n]
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])),
        );
        *at += n as u64;
    }
    Ok(words)
}

fn read_exact_at(file: &dyn FsFile, buf: &mut [u8], at: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let n = file.read_at(&mut buf[done..], at + done as u64)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file ends early"));
        }
        done += n;
    }
    Ok(())
}

fn invalid(reason: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::known_ids::filter::KnownIds;

    fn filters(ids: std::ops::Range<u32>) -> Vec<(IdFilter, usize)> {
        let mut small = KnownIds::filter(1000, 7);
        let mut large = KnownIds::filter(200_000, 7);
        for i in ids {
            small.insert(&format!("s{i}"));
            large.insert(&format!("l{i}"));
        }
        vec![(small, 1000), (large, 200_000)]
    }

    #[test]
    fn a_written_file_reads_back_word_for_word() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known-ids");
        let filters = filters(0..5000);
        let crc = write(&path, 7, 99, &filters).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(crc, crc32fast::hash(&bytes));
        let (header, words, read_crc) = read(&path).unwrap().unwrap();
        assert_eq!((header.format, header.seed, header.probe, read_crc), (KNOWN_IDS_FORMAT, 7, 99, crc));
        assert_eq!(header.filters.len(), 2);
        for ((f, n), (w, h)) in filters.iter().zip(words.iter().zip(&header.filters)) {
            assert_eq!(f.as_slice(), w.as_slice());
            assert_eq!((h.0, h.1, h.2), (f.num_hashes(), *n as u64, w.len() as u64));
        }
    }

    #[test]
    fn the_same_bits_are_not_written_again_and_new_bits_are() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known-ids");
        let crc = write(&path, 7, 99, &filters(0..100)).unwrap();
        let inode = std::fs::metadata(&path).unwrap().ino();
        assert_eq!(write(&path, 7, 99, &filters(0..100)).unwrap(), crc);
        assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode, "unchanged bits were rewritten");
        assert_ne!(write(&path, 7, 99, &filters(0..101)).unwrap(), crc);
        assert_ne!(std::fs::metadata(&path).unwrap().ino(), inode, "changed bits were not written");
    }

    #[test]
    fn a_damaged_file_is_invalid_data_never_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known-ids");
        write(&path, 7, 99, &filters(0..100)).unwrap();
        let whole = std::fs::read(&path).unwrap();
        let mut huge_header = whole.clone();
        huge_header[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        // A format 3 file began with its codec record, not a length.
        let format_3 = codec::encode(&(3u32, 7u64, 99u64, Vec::<(u32, u64, Vec<u8>)>::new())).unwrap();
        for (what, bytes) in [
            ("cut short", whole[..whole.len() - 8].to_vec()),
            ("grown", [whole.as_slice(), &[0u8; 8]].concat()),
            ("cut inside the length", whole[..2].to_vec()),
            ("a header length past the file", huge_header),
            ("format 3", format_3),
        ] {
            std::fs::write(&path, &bytes).unwrap();
            let err = read(&path).err().unwrap_or_else(|| panic!("{what}: read as a filter"));
            assert!(
                matches!(err.kind(), io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof),
                "{what}: {err}"
            );
        }
        std::fs::remove_file(&path).unwrap();
        assert!(read(&path).unwrap().is_none(), "no file is not an error");
    }
}
