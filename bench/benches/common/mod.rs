//! What the log benches share: a realistic record.

use engine::{Txn, TxnHeader};

/// Bytes of one framed log record in these benches: a setData of a small value, as a
/// coordination workload writes.
pub const RECORD_BYTES: usize = 120;

/// The payload of a setData txn at `zxid`, sized so its framed record is [`RECORD_BYTES`].
pub fn payload(zxid: i64) -> Vec<u8> {
    let hdr = TxnHeader { session_id: 0x100_0000_0001, cxid: zxid as i32, zxid, time_ms: 1_700_000_000_000 };
    let txn = |data: Vec<u8>| Txn::SetData { path: "/app/k0042".into(), data, version: 1 };
    let mut bare = Vec::new();
    engine::codec::encode_txn(&hdr, &txn(Vec::new()), &mut bare);
    let data_bytes = RECORD_BYTES - engine::log::RECORD_HEADER_BYTES - bare.len();
    let mut out = Vec::with_capacity(RECORD_BYTES);
    engine::codec::encode_txn(&hdr, &txn(vec![b'v'; data_bytes]), &mut out);
    assert_eq!(out.len() + engine::log::RECORD_HEADER_BYTES, RECORD_BYTES);
    out
}

/// `n` framed records with zxids from `first_zxid`: one group-commit batch.
pub fn batch(first_zxid: i64, n: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity(n * RECORD_BYTES);
    for i in 0..n as i64 {
        engine::log::frame_record(first_zxid + i, &payload(first_zxid + i), &mut b);
    }
    b
}
