//! Jute encode and decode of the requests and responses that dominate ZooKeeper traffic, through
//! `node::proto`: the per-request CPU every connection's core spends before and after core 0.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use engine::Stat;
use node::proto::{op, Packet, Reader, Request, Response, Writer};
use std::hint::black_box;

/// Data carried by create, setData and getData in these benches: ZooKeeper's common small value.
const VALUE_BYTES: usize = 100;

fn stat() -> Stat {
    Stat {
        czxid: 0x1_0000_0042,
        mzxid: 0x1_0000_0099,
        ctime: 1_700_000_000_000,
        mtime: 1_700_000_000_500,
        version: 7,
        cversion: 3,
        aversion: 0,
        ephemeral_owner: 0,
        data_length: VALUE_BYTES as i32,
        num_children: 0,
        pzxid: 0x1_0000_0042,
    }
}

fn requests() -> Vec<(&'static str, Packet)> {
    let path = "/app/config/service-0042".to_string();
    let data = vec![b'x'; VALUE_BYTES];
    vec![
        (
            "create",
            Packet {
                xid: 42,
                op: op::CREATE,
                request: Request::Create {
                    path: path.clone(),
                    data: data.clone(),
                    acl: engine::acl::open_acl_unsafe(),
                    flags: 0,
                    ttl: -1,
                },
            },
        ),
        (
            "getData",
            Packet { xid: 42, op: op::GET_DATA, request: Request::GetData { path: path.clone(), watch: true } },
        ),
        (
            "setData",
            Packet { xid: 42, op: op::SET_DATA, request: Request::SetData { path: path.clone(), data, version: -1 } },
        ),
        ("getChildren", Packet { xid: 42, op: op::GET_CHILDREN, request: Request::GetChildren { path, watch: false } }),
    ]
}

fn responses() -> Vec<(&'static str, i32, Response)> {
    let children = (0..10).map(|i| format!("member-{i:010}")).collect();
    vec![
        ("create", op::CREATE, Response::Path("/app/config/service-0042".into())),
        ("getData", op::GET_DATA, Response::Data(vec![b'x'; VALUE_BYTES], stat())),
        ("setData", op::SET_DATA, Response::Stat(stat())),
        ("getChildren", op::GET_CHILDREN, Response::Children(children)),
    ]
}

fn requests_bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("proto/request");
    g.throughput(Throughput::Elements(1));
    for (name, p) in requests() {
        g.bench_function(format!("encode/{name}"), |b| b.iter(|| black_box(&p).encode()));
        let frame = p.encode();
        g.bench_function(format!("decode/{name}"), |b| b.iter(|| Packet::decode(black_box(&frame[4..]))));
    }
    g.finish();
}

fn responses_bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("proto/response");
    g.throughput(Throughput::Elements(1));
    for (name, opcode, rsp) in responses() {
        g.bench_function(format!("encode/{name}"), |b| {
            b.iter_batched_ref(
                || Writer { buf: Vec::with_capacity(256) },
                |w| black_box(&rsp).encode(w),
                BatchSize::SmallInput,
            )
        });
        let mut w = Writer::default();
        rsp.encode(&mut w);
        let body = w.buf;
        g.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| Response::decode(opcode, &mut Reader::new(black_box(&body))))
        });
    }
    g.finish();
}

criterion_group!(benches, requests_bench, responses_bench);
criterion_main!(benches);
