//! The snapshot reader: bytes decoded straight into a tree, as start-up loads them.
//!
//! A snapshot is checksummed whole, so the input is taken as a snapshot without its trailer,
//! which is added with a valid checksum: the decoder and tree builder see the bytes themselves.
#![no_main]

use engine::snapshot;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.to_vec();
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());
    bytes.extend_from_slice(snapshot::SNAP_END_MAGIC);
    let mut builder = engine::tree::TreeBuilder::new(snapshot::declared_node_count(&bytes).min(1 << 16));
    if let Ok(head) = snapshot::decode_with(&bytes, "fuzz", |p, n| builder.add(p, n)) {
        let tree = builder.finish(head.sessions, head.zxid);
        let _ = tree.orphans();
    }
});
