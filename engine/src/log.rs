//! The transaction log's on-disk format (engine/FORMAT.md) and the scanner recovery uses.
//!
//! A segment is a preallocated, pre-zeroed file: one header block, then batches. Each batch is
//! one group commit: records packed back to back, zero-padded to the block size, so a later
//! commit never rewrites a block that holds acknowledged records. A record is
//! `[payload_len u32][crc32c u32][zxid i64][payload]`, the CRC covering the zxid and the payload.
//! A zero length where a record would start means: padding (inside a block) or the end of the
//! log (at a block boundary).

use std::path::{Path, PathBuf};

/// Size of a log block: the unit of every write and of the padding.
pub const BLOCK_BYTES: usize = 4096;
/// First bytes of every segment.
pub const LOG_MAGIC: &[u8; 8] = b"PDKLOG01";
/// Format version written in the header.
pub const LOG_VERSION: u32 = 1;
/// Bytes before a record's payload.
pub const RECORD_HEADER_BYTES: usize = 16;
/// The largest payload a record may carry (jute.maxbuffer is far below it).
pub const RECORD_PAYLOAD_MAX_BYTES: usize = 64 * 1024 * 1024;
/// Prefix of segment file names; the rest is the first zxid in 16 hex digits.
pub const SEGMENT_PREFIX: &str = "log.";

/// Rounds up to a block boundary.
pub fn align_up(n: usize) -> usize {
    n.div_ceil(BLOCK_BYTES) * BLOCK_BYTES
}

/// The header block of a segment whose first record has `first_zxid`.
pub fn segment_header(first_zxid: i64) -> Vec<u8> {
    let mut b = vec![0u8; BLOCK_BYTES];
    b[..8].copy_from_slice(LOG_MAGIC);
    b[8..12].copy_from_slice(&LOG_VERSION.to_be_bytes());
    b[12..16].copy_from_slice(&(BLOCK_BYTES as u32).to_be_bytes());
    b[16..24].copy_from_slice(&first_zxid.to_be_bytes());
    let crc = crc32c::crc32c(&b[..24]);
    b[24..28].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Appends one framed record to a batch being built.
pub fn frame_record(zxid: i64, payload: &[u8], batch: &mut Vec<u8>) {
    debug_assert!(!payload.is_empty() && payload.len() <= RECORD_PAYLOAD_MAX_BYTES);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&zxid.to_be_bytes()), payload);
    batch.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    batch.extend_from_slice(&crc.to_be_bytes());
    batch.extend_from_slice(&zxid.to_be_bytes());
    batch.extend_from_slice(payload);
}

/// The file name of a segment.
pub fn segment_name(first_zxid: i64) -> String {
    format!("{SEGMENT_PREFIX}{first_zxid:016x}")
}

/// Files in `dir` named `<prefix><zxid in hex>`, with their zxid, oldest first: the log's
/// segments and the snapshots are both found this way.
pub fn list_by_zxid(dir: &Path, prefix: &str) -> std::io::Result<Vec<(i64, PathBuf)>> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(z) = name.strip_prefix(prefix).and_then(|hex| i64::from_str_radix(hex, 16).ok()) {
            out.push((z, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Segments in a directory, oldest first, by the first zxid in their name.
pub fn list_segments(dir: &Path) -> std::io::Result<Vec<(i64, PathBuf)>> {
    list_by_zxid(dir, SEGMENT_PREFIX)
}

/// One valid record found by the scanner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRef {
    pub offset: usize,
    pub zxid: i64,
    pub payload: std::ops::Range<usize>,
}

/// How a segment's valid records end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEnd {
    /// Zeros at a block boundary: nothing was lost. Appends resume at `append_at`.
    Clean { append_at: usize },
    /// A partial or damaged record with nothing valid after it: what a crash mid-write leaves.
    /// The bytes from `offset` are garbage to be zeroed; appends resume at `append_at`.
    Torn { offset: usize, append_at: usize },
    /// A damaged record followed by valid ones: acknowledged history is corrupt.
    Corrupt { offset: usize },
}

/// What a segment holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    pub first_zxid: i64,
    pub records: Vec<RecordRef>,
    pub end: LogEnd,
}

/// Why a segment cannot be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    #[error("not a Paddock log segment (bad magic or header checksum)")]
    BadHeader,
    #[error("unsupported log format version {0}")]
    Version(u32),
}

/// Checks the header block and returns the segment's first zxid.
pub fn read_header(bytes: &[u8]) -> Result<i64, SegmentError> {
    if bytes.len() < BLOCK_BYTES || &bytes[..8] != LOG_MAGIC {
        return Err(SegmentError::BadHeader);
    }
    let crc = u32::from_be_bytes([bytes[24], bytes[25], bytes[26], bytes[27]]);
    if crc != crc32c::crc32c(&bytes[..24]) {
        return Err(SegmentError::BadHeader);
    }
    let version = u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version != LOG_VERSION {
        return Err(SegmentError::Version(version));
    }
    let mut z = [0u8; 8];
    z.copy_from_slice(&bytes[16..24]);
    Ok(i64::from_be_bytes(z))
}

/// A record at `pos` if it is whole and its checksum matches.
pub fn record_at(bytes: &[u8], pos: usize) -> Option<RecordRef> {
    let head = bytes.get(pos..pos + RECORD_HEADER_BYTES)?;
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len == 0 || len > RECORD_PAYLOAD_MAX_BYTES {
        return None;
    }
    let crc = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    let mut z = [0u8; 8];
    z.copy_from_slice(&head[8..16]);
    let start = pos + RECORD_HEADER_BYTES;
    let payload = bytes.get(start..start + len)?;
    if crc32c::crc32c_append(crc32c::crc32c(&z), payload) != crc {
        return None;
    }
    Some(RecordRef { offset: pos, zxid: i64::from_be_bytes(z), payload: start..start + len })
}

/// The records of an unpadded run of framed records, as a leader sends them to its learners;
/// None if any is damaged, since a quorum packet that fails its checksums is not to be trusted.
pub fn framed_records(bytes: &[u8]) -> Option<Vec<RecordRef>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let r = record_at(bytes, pos)?;
        pos = r.payload.end;
        out.push(r);
    }
    Some(out)
}

fn length_at(bytes: &[u8], pos: usize) -> Option<u32> {
    bytes.get(pos..pos + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Scans a whole segment: every valid record, and how the valid part ends.
pub fn scan(bytes: &[u8]) -> Result<Scan, SegmentError> {
    let first_zxid = read_header(bytes)?;
    let mut records: Vec<RecordRef> = Vec::new();
    let mut pos = BLOCK_BYTES;
    loop {
        match length_at(bytes, pos) {
            // The file ends, or zeros at a batch boundary: a clean end.
            None | Some(0) if pos.is_multiple_of(BLOCK_BYTES) => {
                return Ok(Scan { first_zxid, records, end: LogEnd::Clean { append_at: pos } })
            }
            // Zeros inside a block: the padding after a batch.
            Some(0) | None => {
                pos = align_up(pos);
                continue;
            }
            Some(_) => {}
        }
        let last = records.last().map_or(first_zxid - 1, |r| r.zxid);
        match record_at(bytes, pos) {
            Some(r) if r.zxid > last => {
                pos = r.payload.end;
                records.push(r);
            }
            _ => {
                // Is there anything valid later? Batches start at block boundaries.
                let mut probe = align_up(pos + 1);
                while probe + RECORD_HEADER_BYTES <= bytes.len() {
                    if record_at(bytes, probe).is_some_and(|r| r.zxid > last) {
                        return Ok(Scan { first_zxid, records, end: LogEnd::Corrupt { offset: pos } });
                    }
                    probe += BLOCK_BYTES;
                }
                let append_at = align_up(pos);
                return Ok(Scan { first_zxid, records, end: LogEnd::Torn { offset: pos, append_at } });
            }
        }
    }
}

/// The end of the garbage a torn write left from `offset`: the first block boundary after it
/// whose block is all zeros (segments are pre-zeroed, so that is where untouched space begins).
pub fn torn_extent(bytes: &[u8], offset: usize) -> usize {
    let mut end = align_up(offset + 1).min(bytes.len());
    while end < bytes.len() {
        let block_end = (end + BLOCK_BYTES).min(bytes.len());
        if bytes[end..block_end].iter().all(|b| *b == 0) {
            break;
        }
        end = block_end;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A segment of `batches`, each a list of (zxid, payload), padded as the writer pads them.
    fn segment(first: i64, batches: &[Vec<(i64, Vec<u8>)>], size: usize) -> Vec<u8> {
        let mut file = segment_header(first);
        for batch in batches {
            let mut b = Vec::new();
            for (z, p) in batch {
                frame_record(*z, p, &mut b);
            }
            b.resize(align_up(b.len()), 0);
            file.extend_from_slice(&b);
        }
        if size > file.len() {
            file.resize(size, 0);
        }
        file
    }

    fn three_batches() -> Vec<Vec<(i64, Vec<u8>)>> {
        vec![
            vec![(1, vec![1; 100]), (2, vec![2; 50])],
            vec![(3, vec![3; 5000])],
            vec![(4, vec![4; 10]), (5, vec![5; 20]), (6, vec![6; 30])],
        ]
    }

    #[test]
    fn a_clean_segment_scans_to_its_end() {
        let bytes = segment(1, &three_batches(), 64 * 1024);
        let s = scan(&bytes).expect("scan");
        assert_eq!(s.records.iter().map(|r| r.zxid).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(s.end, LogEnd::Clean { append_at: 5 * BLOCK_BYTES });
    }

    #[test]
    fn a_tail_cut_at_every_byte_keeps_exactly_the_whole_records() {
        let full = segment(1, &three_batches(), 0);
        let last_batch_start = 4 * BLOCK_BYTES;
        let last_batch_end = last_batch_start + 3 * RECORD_HEADER_BYTES + 60;
        for cut in last_batch_start..=last_batch_end {
            let mut bytes = full[..cut].to_vec();
            bytes.resize(64 * 1024, 0);
            let s = scan(&bytes).expect("scan");
            let whole = s.records.len();
            let expected = 3 + [RECORD_HEADER_BYTES + 10, 2 * RECORD_HEADER_BYTES + 30, 3 * RECORD_HEADER_BYTES + 60]
                .iter()
                .filter(|end| cut >= last_batch_start + **end)
                .count();
            assert_eq!(whole, expected, "cut at {cut}");
            assert!(!matches!(s.end, LogEnd::Corrupt { .. }), "cut at {cut}: {:?}", s.end);
        }
    }

    #[test]
    fn a_flipped_bit_in_the_last_record_is_a_torn_tail() {
        let mut bytes = segment(1, &three_batches(), 64 * 1024);
        let last = scan(&bytes).expect("scan").records[5].clone();
        bytes[last.payload.start + 3] ^= 0x10;
        let s = scan(&bytes).expect("scan");
        assert_eq!(s.records.len(), 5);
        assert_eq!(s.end, LogEnd::Torn { offset: last.offset, append_at: align_up(last.offset) });
    }

    #[test]
    fn a_flipped_bit_before_valid_records_is_corruption() {
        let mut bytes = segment(1, &three_batches(), 64 * 1024);
        let second = scan(&bytes).expect("scan").records[1].clone();
        bytes[second.payload.start] ^= 0x01;
        let s = scan(&bytes).expect("scan");
        assert_eq!(s.end, LogEnd::Corrupt { offset: second.offset });
    }

    #[test]
    fn torn_extent_stops_at_the_first_zero_block() {
        let mut bytes = vec![0u8; 6 * BLOCK_BYTES];
        for b in &mut bytes[BLOCK_BYTES + 100..3 * BLOCK_BYTES + 7] {
            *b = 0xAB;
        }
        assert_eq!(torn_extent(&bytes, BLOCK_BYTES + 100), 4 * BLOCK_BYTES);
    }

    #[test]
    fn a_bad_header_is_refused() {
        let mut bytes = segment(1, &three_batches(), 64 * 1024);
        bytes[20] ^= 1;
        assert_eq!(scan(&bytes), Err(SegmentError::BadHeader));
    }
}
