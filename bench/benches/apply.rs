//! `DataTree::apply` per txn kind on a tree of 10,000 nodes: the work core 0 does per write,
//! after prep and the log, which bounds the write throughput of the whole server.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use engine::{DataTree, Txn, TxnHeader};

/// Nodes under `/bench` before measuring, so lookups and child sets have a realistic size.
const TREE_NODES: usize = 10_000;
const VALUE_BYTES: usize = 100;

fn hdr(zxid: i64) -> TxnHeader {
    TxnHeader { session_id: 1, cxid: zxid as i32, zxid, time_ms: 1_700_000_000_000 }
}

fn create(path: String, parent_cversion: i32) -> Txn {
    Txn::Create {
        path,
        data: vec![b'x'; VALUE_BYTES],
        acl: engine::acl::open_acl_unsafe(),
        ephemeral_owner: 0,
        parent_cversion,
    }
}

/// A tree with `/bench/n0..n{TREE_NODES}`, and the zxid it ends at.
fn tree() -> (DataTree, i64) {
    let mut t = DataTree::new();
    t.apply(&hdr(1), &create("/bench".into(), 1));
    for i in 0..TREE_NODES {
        let z = 2 + i as i64;
        t.apply(&hdr(z), &create(format!("/bench/n{i}"), i as i32 + 1));
    }
    (t, 1 + TREE_NODES as i64)
}

/// Times `iters` applies of fresh txns made by `make` (untimed), on a fresh tree each sample.
fn timed_applies(iters: u64, prepare: impl Fn(&mut DataTree, &mut i64, u64), make: impl Fn(u64) -> Txn) -> Duration {
    let (mut t, mut zxid) = tree();
    prepare(&mut t, &mut zxid, iters);
    let txns: Vec<Txn> = (0..iters).map(make).collect();
    let start = Instant::now();
    for txn in &txns {
        zxid += 1;
        black_box(t.apply(&hdr(zxid), txn));
    }
    start.elapsed()
}

fn apply(c: &mut Criterion) {
    let mut g = c.benchmark_group("apply");
    g.throughput(Throughput::Elements(1));
    g.bench_function("create", |b| {
        b.iter_custom(|iters| {
            timed_applies(iters, |_, _, _| {}, |i| create(format!("/bench/new{i}"), TREE_NODES as i32 + 2 + i as i32))
        })
    });
    g.bench_function("delete", |b| {
        b.iter_custom(|iters| {
            let prepare = |t: &mut DataTree, zxid: &mut i64, n: u64| {
                for i in 0..n {
                    *zxid += 1;
                    t.apply(&hdr(*zxid), &create(format!("/bench/del{i}"), *zxid as i32));
                }
            };
            timed_applies(iters, prepare, |i| Txn::Delete { path: format!("/bench/del{i}") })
        })
    });
    let (mut t, mut zxid) = tree();
    let set = Txn::SetData { path: "/bench/n4242".into(), data: vec![b'y'; VALUE_BYTES], version: 1 };
    g.bench_function("setData", |b| {
        b.iter(|| {
            zxid += 1;
            t.apply(&hdr(zxid), black_box(&set))
        })
    });
    // The load generator's multi: create, setData of another node, delete of the created one;
    // the tree is the same after each, so it can repeat.
    let multi = Txn::Multi(vec![
        create("/bench/multi".into(), 0),
        Txn::SetData { path: "/bench/n17".into(), data: vec![b'z'; VALUE_BYTES], version: 1 },
        Txn::Delete { path: "/bench/multi".into() },
    ]);
    g.bench_function("multi3", |b| {
        b.iter(|| {
            zxid += 1;
            t.apply(&hdr(zxid), black_box(&multi))
        })
    });
    g.finish();
}

criterion_group!(benches, apply);
criterion_main!(benches);
