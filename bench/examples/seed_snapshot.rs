//! Writes a Paddock dataDir holding one snapshot of N znodes with B-byte values, for measuring
//! restart-to-serving time and memory (PERF.md). The znodes sit 1000 to a parent, as a service
//! registry or Kafka's metadata would, not all under one node.
//!
//! cargo run --release -p paddock-bench --example seed_snapshot -- DATA_DIR [ZNODES] [VALUE_BYTES]

use engine::{acl, DataTree, Txn, TxnHeader};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().ok_or("usage: seed_snapshot DATA_DIR [ZNODES] [VALUE_BYTES]")?);
    let znodes: usize = args.next().map(|v| v.parse()).transpose()?.unwrap_or(1_000_000);
    let value_bytes: usize = args.next().map(|v| v.parse()).transpose()?.unwrap_or(100);
    let mut tree = DataTree::new();
    let mut zxid = 0i64;
    let mut create = |tree: &mut DataTree, path: String, data: Vec<u8>| {
        zxid += 1;
        let parent = engine::path::parent(&path);
        let parent_cversion = tree.get(parent).map_or(0, |n| n.stat.cversion) + 1;
        let txn = Txn::Create { path, data, acl: acl::open_acl_unsafe(), ephemeral_owner: 0, parent_cversion };
        let r = tree.apply(&TxnHeader { session_id: 0, cxid: 0, zxid, time_ms: 1_700_000_000_000 + zxid }, &txn);
        debug_assert_eq!(r.result.err, 0);
    };
    create(&mut tree, "/bench".into(), Vec::new());
    let per_parent = 1000;
    for i in 0..znodes {
        if i % per_parent == 0 {
            create(&mut tree, format!("/bench/d{:04}", i / per_parent), Vec::new());
        }
        create(&mut tree, format!("/bench/d{:04}/n{:06}", i / per_parent, i), vec![b'v'; value_bytes]);
    }
    let engine_dir = dir.join(engine::recovery::ENGINE_DIR);
    std::fs::create_dir_all(&engine_dir)?;
    let bytes = engine::snapshot::SnapshotWriter::whole(&tree, 1_700_000_000_000);
    let path = engine_dir.join(engine::snapshot::snapshot_name(tree.last_zxid()));
    std::fs::write(&path, &bytes)?;
    println!("{} znodes, {} bytes, zxid {:#x}: {}", tree.node_count(), bytes.len(), tree.last_zxid(), path.display());
    Ok(())
}
