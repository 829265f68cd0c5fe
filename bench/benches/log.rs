//! The log's framing (CRC32C per record, on the write path of every txn) and the scanner that
//! recovery runs over every segment at start-up.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use engine::log::{align_up, frame_record, scan, segment_header, BLOCK_BYTES};

mod common;

/// Records per batch when framing, and per batch in the scanned segment.
const BATCH_RECORDS: usize = 64;
/// Size of the segment scanned: ZooKeeper's default preAllocSize.
const SEGMENT_BYTES: usize = 64 << 20;

/// A segment as the writer leaves it: header, batches each padded to a block, zeros after.
fn segment() -> (Vec<u8>, usize) {
    let mut seg = segment_header(1);
    let mut zxid = 1;
    let mut records = 0;
    while seg.len() + align_up(BATCH_RECORDS * common::RECORD_BYTES) <= SEGMENT_BYTES / 2 {
        let b = common::batch(zxid, BATCH_RECORDS);
        seg.extend_from_slice(&b);
        seg.resize(align_up(seg.len()), 0);
        zxid += BATCH_RECORDS as i64;
        records += BATCH_RECORDS;
    }
    seg.resize(SEGMENT_BYTES, 0);
    assert_eq!(seg.len() % BLOCK_BYTES, 0);
    (seg, records)
}

fn log(c: &mut Criterion) {
    let mut g = c.benchmark_group("log");
    let payloads: Vec<Vec<u8>> = (0..BATCH_RECORDS as i64).map(common::payload).collect();
    let mut batch = Vec::with_capacity(BATCH_RECORDS * common::RECORD_BYTES);
    g.throughput(Throughput::Bytes((BATCH_RECORDS * common::RECORD_BYTES) as u64));
    g.bench_function(format!("frame/{BATCH_RECORDS}x{}B", common::RECORD_BYTES), |b| {
        b.iter(|| {
            batch.clear();
            for (i, p) in payloads.iter().enumerate() {
                frame_record(i as i64 + 1, black_box(p), &mut batch);
            }
            batch.len()
        })
    });
    let (seg, records) = segment();
    let s = scan(&seg).expect("a valid segment");
    assert_eq!(s.records.len(), records);
    g.throughput(Throughput::Bytes((records * common::RECORD_BYTES) as u64));
    g.sample_size(20);
    g.bench_function(format!("scan/{}MiB-segment/{records}-records", SEGMENT_BYTES >> 20), |b| {
        b.iter(|| scan(black_box(&seg)).map(|s| s.records.len()))
    });
    g.finish();
}

criterion_group!(benches, log);
criterion_main!(benches);
