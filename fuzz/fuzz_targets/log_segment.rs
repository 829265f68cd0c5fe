//! The log reader: a segment as recovery scans it, every record's txn decoded.
//!
//! Records carry checksums, so random bytes rarely get past them. Inputs whose first byte is odd
//! are read as a list of payloads instead (`[u16 length][payload]...`), framed with valid
//! checksums into a segment, so the scan and the txn decoder see well-framed garbage too; the
//! scan must then find every framed record.
#![no_main]

use engine::log;
use libfuzzer_sys::fuzz_target;

fn decode_all(segment: &[u8]) -> Option<usize> {
    let scan = log::scan(segment).ok()?;
    for r in &scan.records {
        let _ = engine::codec::decode_txn(&segment[r.payload.clone()]);
    }
    if let log::LogEnd::Torn { offset, .. } = scan.end {
        let _ = log::torn_extent(segment, offset);
    }
    Some(scan.records.len())
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else { return };
    if kind & 1 == 0 {
        decode_all(rest);
        return;
    }
    let mut segment = log::segment_header(1);
    let mut batch = Vec::new();
    let mut zxid = 1;
    let mut input = rest;
    while input.len() >= 2 {
        let len = (u16::from_be_bytes([input[0], input[1]]) as usize).min(input.len() - 2);
        let payload = &input[2..2 + len];
        input = &input[2 + len..];
        // A record is never empty: its length field of zero marks the padding after a batch.
        if !payload.is_empty() {
            log::frame_record(zxid, payload, &mut batch);
            zxid += 1;
        }
    }
    // The same run of records as a leader proposes it to its learners.
    let proposed = log::framed_records(&batch).expect("framed records read back");
    assert_eq!(proposed.len() as i64, zxid - 1, "framed_records lost records");
    segment.extend_from_slice(&batch);
    segment.resize(log::align_up(segment.len()), 0);
    let found = decode_all(&segment).expect("a framed segment scans");
    assert_eq!(found as i64, zxid - 1, "the scan lost framed records");
});
