//! Writes each target's seed corpus (`fuzz/corpus/<target>/seed-*`) from the real encoders, so
//! the fuzzers start from well-formed inputs of every kind: `cargo run --example seeds` in `fuzz/`.

use std::path::Path;

use engine::acl::{self, Acl, Id};
use engine::txn::{Txn, TxnHeader};
use node::election::{Notification, PeerState, Vote};
use node::proto::{op, ConnectRequest, Packet, Request, SetWatches, Writer};
use node::quorum::{self, QuorumPacket};

fn write(target: &str, seeds: Vec<Vec<u8>>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    std::fs::create_dir_all(&dir).expect("create the corpus directory");
    for (i, s) in seeds.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:03}")), s).expect("write a seed");
    }
    println!("{target}: {} seeds", seeds.len());
}

/// A frame without its length prefix, behind the target's selector byte.
fn selected(kind: u8, frame: &[u8]) -> Vec<u8> {
    let mut v = vec![kind];
    v.extend_from_slice(&frame[4..]);
    v
}

fn client_requests() -> Vec<Vec<u8>> {
    let p = |s: &str| s.to_string();
    let creator = vec![Acl { perms: acl::perms::ALL, id: Id::new("digest", "u:hash") }];
    let requests = vec![
        (
            op::CREATE,
            Request::Create { path: p("/a"), data: b"x".to_vec(), acl: acl::open_acl_unsafe(), flags: 0, ttl: -1 },
        ),
        (op::CREATE2, Request::Create { path: p("/a/b-"), data: vec![], acl: creator, flags: 3, ttl: -1 }),
        (
            op::CREATE_TTL,
            Request::Create { path: p("/t"), data: vec![1], acl: acl::open_acl_unsafe(), flags: 5, ttl: 5000 },
        ),
        (
            op::CREATE_CONTAINER,
            Request::Create { path: p("/c"), data: vec![], acl: acl::open_acl_unsafe(), flags: 4, ttl: -1 },
        ),
        (op::DELETE, Request::Delete { path: p("/a"), version: -1 }),
        (op::EXISTS, Request::Exists { path: p("/a"), watch: true }),
        (op::GET_DATA, Request::GetData { path: p("/zookeeper/config"), watch: false }),
        (op::SET_DATA, Request::SetData { path: p("/a"), data: b"yy".to_vec(), version: 3 }),
        (op::GET_ACL, Request::GetAcl { path: p("/a") }),
        (op::SET_ACL, Request::SetAcl { path: p("/a"), acl: acl::read_acl_unsafe(), version: 0 }),
        (op::GET_CHILDREN, Request::GetChildren { path: p("/"), watch: true }),
        (op::GET_CHILDREN2, Request::GetChildren { path: p("/a"), watch: false }),
        (op::SYNC, Request::Sync { path: p("/") }),
        (op::PING, Request::Ping),
        (op::CLOSE_SESSION, Request::CloseSession),
        (op::WHO_AM_I, Request::WhoAmI),
        (op::CHECK_WATCHES, Request::Watches { path: p("/a"), watcher_type: 1 }),
        (op::REMOVE_WATCHES, Request::Watches { path: p("/a"), watcher_type: 3 }),
        (op::ADD_WATCH, Request::AddWatch { path: p("/"), mode: 1 }),
        (op::GET_EPHEMERALS, Request::GetEphemerals { prefix: p("/") }),
        (op::GET_ALL_CHILDREN_NUMBER, Request::GetAllChildrenNumber { path: p("/") }),
        (op::AUTH, Request::Auth { auth_type: 0, scheme: p("digest"), auth: b"u:p".to_vec() }),
        (op::SASL, Request::Sasl { token: vec![1, 2, 3] }),
        (
            op::SET_WATCHES2,
            Request::SetWatches(SetWatches {
                relative_zxid: 7,
                data: vec![p("/a")],
                exist: vec![p("/b")],
                child: vec![p("/")],
                persistent: vec![p("/p")],
                persistent_recursive: vec![p("/r")],
            }),
        ),
        (
            op::MULTI,
            Request::Multi(vec![
                (
                    op::CREATE,
                    Request::Create { path: p("/m"), data: vec![], acl: acl::open_acl_unsafe(), flags: 0, ttl: -1 },
                ),
                (op::CHECK, Request::Check { path: p("/m"), version: 0 }),
                (op::SET_DATA, Request::SetData { path: p("/m"), data: vec![2], version: -1 }),
                (op::DELETE, Request::Delete { path: p("/m"), version: -1 }),
            ]),
        ),
        (
            op::MULTI_READ,
            Request::Multi(vec![
                (op::GET_DATA, Request::GetData { path: p("/a"), watch: false }),
                (op::GET_CHILDREN, Request::GetChildren { path: p("/"), watch: false }),
            ]),
        ),
        (
            op::RECONFIG,
            Request::Reconfig {
                joining: p("server.4=h:1:2"),
                leaving: p("2"),
                new_members: String::new(),
                config_id: -1,
            },
        ),
    ];
    let mut seeds = Vec::new();
    for (i, (code, request)) in requests.into_iter().enumerate() {
        let frame = Packet { xid: i as i32 + 1, op: code, request }.encode();
        seeds.push(selected(1, &frame));
    }
    for c in [ConnectRequest::new_session(30_000), ConnectRequest::resume(0x1234, &[7; 16], 99, 4000)] {
        let mut w = Writer::frame();
        c.encode(&mut w);
        seeds.push(selected(0, &w.finish_frame()));
    }
    seeds
}

fn quorum_packets() -> Vec<Vec<u8>> {
    let get = Packet {
        xid: 5,
        op: op::SET_DATA,
        request: Request::SetData { path: "/a".into(), data: vec![1], version: -1 },
    };
    let mut records = Vec::new();
    engine::log::frame_record(0x1_0000_0001, &txn_payload(0x1_0000_0001), &mut records);
    let packets = vec![
        QuorumPacket::LearnerInfo { server: 2, accepted_epoch: 1, last_zxid: 0x1_0000_0005, observer: false },
        QuorumPacket::Ack { zxid: 0x1_0000_0001 },
        QuorumPacket::CreateSession { session_id: 0x100, timeout_ms: 4000 },
        QuorumPacket::Request { session_id: 0x100, auth: vec![Id::new("digest", "u:hash")], packet: get },
        QuorumPacket::Ping { sessions: vec![0x100, 0x101] },
        QuorumPacket::NewEpoch { epoch: 2, secret: 0xfeed },
        QuorumPacket::Diff,
        QuorumPacket::Trunc { zxid: 0x1_0000_0003 },
        QuorumPacket::Snap { zxid: 5, snapshot: snapshot_bytes() },
        QuorumPacket::Proposal { records },
        QuorumPacket::NewLeader { zxid: 0x2_0000_0000 },
        QuorumPacket::UpToDate,
        QuorumPacket::Commit { zxid: 0x2_0000_0001 },
        QuorumPacket::SyncDone { session_id: 0x100, cxid: 9 },
    ];
    let mut seeds: Vec<Vec<u8>> = packets.iter().map(|p| selected(1, &p.encode())).collect();
    let n =
        Notification { sender: 1, state: PeerState::Looking, round: 3, vote: Vote { leader: 3, zxid: 17, epoch: 1 } };
    seeds.push(selected(0, &quorum::encode_notification(&n)));
    seeds
}

fn zoo_cfgs() -> Vec<Vec<u8>> {
    let cfgs = [
        "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir=/tmp/zk\nclientPort=2181\n",
        "tickTime=100\ndataDir=/d\ndataLogDir=/l\nclientPort=2181\nclientPortAddress=127.0.0.1\n\
         maxClientCnxns=60\nminSessionTimeout=400\nmaxSessionTimeout=40000\nautopurge.snapRetainCount=3\n\
         autopurge.purgeInterval=1\nsnapCount=100000\npreAllocSize=65536\njute.maxbuffer=1048575\n\
         4lw.commands.whitelist=srvr, mntr, ruok\nreadonlymode.enabled=true\n",
        "# an ensemble\ntickTime=2000\ndataDir=/d\nclientPort=2181\ninitLimit=5\nsyncLimit=2\n\
         server.1=10.0.0.1:2888:3888\nserver.2=10.0.0.2:2888:3888\nserver.3=10.0.0.3:2888:3888:observer;2181\n\
         peerType=participant\nstandaloneEnabled=false\n",
        "dataDir=/d\nclientPort=2181\nadmin.enableServer=true\nadmin.serverPort=8080\nforceSync=no\n\
         globalOutstandingLimit=1000\nzookeeper.paddock.quorumHeartbeatMs=50\nmetricsProvider.httpPort=7000\n",
    ];
    cfgs.iter().map(|c| c.as_bytes().to_vec()).collect()
}

fn txn_payload(zxid: i64) -> Vec<u8> {
    let mut out = Vec::new();
    let hdr = TxnHeader { session_id: 0x100, cxid: 1, zxid, time_ms: 1_700_000_000_000 };
    let txn = Txn::Create {
        path: "/a".into(),
        data: b"v".to_vec(),
        acl: acl::open_acl_unsafe(),
        ephemeral_owner: 0,
        parent_cversion: 1,
    };
    engine::codec::encode_txn(&hdr, &txn, &mut out);
    out
}

fn sample_txns() -> Vec<(TxnHeader, Txn)> {
    let h = |zxid| TxnHeader { session_id: 0x100, cxid: zxid as i32, zxid, time_ms: 1_700_000_000_000 + zxid };
    let create = |path: &str, owner| Txn::Create {
        path: path.into(),
        data: path.as_bytes().to_vec(),
        acl: acl::open_acl_unsafe(),
        ephemeral_owner: owner,
        parent_cversion: 1,
    };
    vec![
        (h(1), Txn::CreateSession { timeout_ms: 4000 }),
        (h(2), create("/a", 0)),
        (h(3), create("/a/e", 0x100)),
        (h(4), Txn::SetData { path: "/a".into(), data: vec![9; 20], version: 1 }),
        (h(5), Txn::SetAcl { path: "/a".into(), acl: acl::read_acl_unsafe(), version: 1 }),
        (h(6), Txn::Multi(vec![Txn::Check { path: "/a".into() }, create("/b", 0), Txn::Delete { path: "/b".into() }])),
        (h(7), Txn::Multi(vec![Txn::Error { err: -101 }, Txn::Error { err: 0 }])),
        (h(8), Txn::Error { err: -110 }),
        (h(9), Txn::CloseSession),
    ]
}

fn snapshot_bytes() -> Vec<u8> {
    let mut tree = engine::tree::DataTree::new();
    for (hdr, txn) in sample_txns().iter().take(7) {
        tree.apply(hdr, txn);
    }
    engine::snapshot::SnapshotWriter::whole(&tree, 1_700_000_000_000)
}

fn log_segments() -> Vec<Vec<u8>> {
    let payloads: Vec<Vec<u8>> = sample_txns()
        .iter()
        .map(|(hdr, txn)| {
            let mut out = Vec::new();
            engine::codec::encode_txn(hdr, txn, &mut out);
            out
        })
        .collect();
    // Raw: a whole segment as the log writes it, then the same torn mid-record.
    let mut segment = engine::log::segment_header(1);
    for (i, p) in payloads.iter().enumerate() {
        engine::log::frame_record(i as i64 + 1, p, &mut segment);
    }
    segment.resize(engine::log::align_up(segment.len()), 0);
    let mut raw = vec![0u8];
    raw.extend_from_slice(&segment);
    let mut torn = raw.clone();
    torn.truncate(engine::log::BLOCK_BYTES + 200);
    // Framed by the target: [u16 length][payload] each.
    let mut framed = vec![1u8];
    for p in &payloads {
        framed.extend_from_slice(&(p.len() as u16).to_be_bytes());
        framed.extend_from_slice(p);
    }
    vec![raw, torn, framed]
}

fn snapshots() -> Vec<Vec<u8>> {
    // The target appends the checksum and end magic itself.
    let whole = snapshot_bytes();
    let body = whole[..whole.len() - 12].to_vec();
    let empty = engine::snapshot::SnapshotWriter::whole(&engine::tree::DataTree::new(), 0);
    vec![body, empty[..empty.len() - 12].to_vec()]
}

fn main() {
    write("client_request", client_requests());
    write("quorum_packet", quorum_packets());
    write("zoo_cfg", zoo_cfgs());
    write("log_segment", log_segments());
    write("snapshot", snapshots());
}
