//! Snapshot write (encode the whole tree, write, fdatasync) and load (map, check, decode, then
//! rebuild the tree's children and indexes): the cost of a snapshot and of a restart, at 1M
//! znodes of 100 bytes. `PADDOCK_BENCH_ZNODES` sets the node count (CI runs it small).

use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use engine::snapshot::{load, SnapshotWriter};
use engine::{DataTree, Txn, TxnHeader};

const DEFAULT_ZNODES: usize = 1_000_000;
const VALUE_BYTES: usize = 100;
/// Children per directory node: a two-level tree, as services lay out their znodes.
const FANOUT: usize = 1000;

fn znodes() -> usize {
    std::env::var("PADDOCK_BENCH_ZNODES").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_ZNODES)
}

/// A tree of `n` data nodes under `/bench/d<i>/n<j>`, built through `apply` as a server would.
fn tree(n: usize) -> DataTree {
    let mut t = DataTree::new();
    let mut zxid = 0i64;
    let mut create = |t: &mut DataTree, path: String, data_bytes: usize| {
        zxid += 1;
        let hdr = TxnHeader { session_id: 1, cxid: zxid as i32, zxid, time_ms: 1_700_000_000_000 };
        let txn = Txn::Create {
            path,
            data: vec![b'x'; data_bytes],
            acl: engine::acl::open_acl_unsafe(),
            ephemeral_owner: 0,
            parent_cversion: 0,
        };
        t.apply(&hdr, &txn);
    };
    create(&mut t, "/bench".into(), 0);
    for d in 0..n.div_ceil(FANOUT) {
        create(&mut t, format!("/bench/d{d}"), 0);
        for j in 0..FANOUT.min(n - d * FANOUT) {
            create(&mut t, format!("/bench/d{d}/n{j}"), VALUE_BYTES);
        }
    }
    t
}

fn snapshot(c: &mut Criterion) {
    let n = znodes();
    let t = tree(n);
    let path = std::env::temp_dir().join(format!("paddock-bench-snapshot-{}", std::process::id()));
    let mut g = c.benchmark_group("snapshot");
    // Seconds per iteration at 1M nodes: ten samples of one iteration each, not criterion's
    // linear 1+2+...+10 iterations.
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(t.node_count() as u64));
    g.bench_function(format!("write/{n}-znodes"), |b| {
        b.iter(|| {
            let bytes = SnapshotWriter::whole(&t, 1_700_000_000_000);
            let mut f = std::fs::File::create(&path).expect("create the snapshot file");
            f.write_all(&bytes).expect("write the snapshot");
            f.sync_data().expect("sync the snapshot");
            bytes.len()
        })
    });
    std::fs::write(&path, SnapshotWriter::whole(&t, 1_700_000_000_000)).expect("write the snapshot");
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    eprintln!("snapshot of {} znodes: {:.1} MiB", t.node_count(), bytes as f64 / (1 << 20) as f64);
    drop(t);
    g.bench_function(format!("load+restore/{n}-znodes"), |b| {
        // Dropping a million-node tree is not part of a restart: it happens outside the clock.
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let s = load(black_box(&path)).expect("load the snapshot");
                let t = DataTree::restore(s.nodes, s.sessions, s.zxid);
                total += start.elapsed();
                black_box(t.node_count());
            }
            total
        })
    });
    g.finish();
    let _ = std::fs::remove_file(&path);
}

criterion_group!(benches, snapshot);
criterion_main!(benches);
