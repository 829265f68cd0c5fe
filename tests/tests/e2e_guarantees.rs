//! ZooKeeper's ordering guarantees on a 2-core server with many sessions: connections on every
//! core, FIFO per session, a watch event before the data that triggered it, and reads that
//! never go back in time, across reconnects too.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bench::client::{four_letter, Client};
use node::proto::{event, op, Request, Response};
use paddock_tests::ServerProcess;

fn set(path: &str, data: &[u8]) -> Request {
    Request::SetData { path: path.into(), data: data.to_vec(), version: -1 }
}

fn create(c: &mut Client, path: &str) {
    let req =
        Request::Create { path: path.into(), data: vec![], acl: engine::acl::open_acl_unsafe(), flags: 0, ttl: -1 };
    let err = c.call(op::CREATE, req).expect("create").err();
    assert!(err == 0 || err == engine::code::NODE_EXISTS, "create {path}: {err}");
}

fn mntr_value(text: &str, key: &str) -> usize {
    text.lines().find_map(|l| l.strip_prefix(key).and_then(|v| v.trim().parse().ok())).unwrap_or(0)
}

#[test]
fn connections_are_spread_over_every_core() {
    let server = ServerProcess::paddock(2, "");
    let clients: Vec<Client> = (0..20).map(|_| Client::connect(server.addr, 4000).expect("connect")).collect();
    let mntr = four_letter(server.addr, "mntr").expect("mntr");
    let (core0, core1) =
        (mntr_value(&mntr, "paddock_core_0_connections"), mntr_value(&mntr, "paddock_core_1_connections"));
    // 20 sessions plus the mntr connection itself, balanced by the acceptor.
    assert_eq!(core0 + core1, 21, "{mntr}");
    assert!(core0.abs_diff(core1) <= 1, "unbalanced: {core0} vs {core1}");
    assert_eq!(mntr_value(&mntr, "zk_global_sessions"), 20);
    drop(clients);
}

#[test]
fn replies_keep_each_sessions_request_order_under_pipelining() {
    let server = ServerProcess::paddock(2, "");
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let addr = server.addr;
            std::thread::spawn(move || {
                let mut c = Client::connect(addr, 4000).expect("connect");
                let path = format!("/fifo-{t}");
                create(&mut c, &path);
                let xids: Vec<i32> = (0..300).map(|_| c.next_xid()).collect();
                for (i, x) in xids.iter().enumerate() {
                    let (opcode, req) = if i % 3 == 2 {
                        (op::GET_DATA, Request::GetData { path: path.clone(), watch: false })
                    } else {
                        (op::SET_DATA, set(&path, format!("{i}").as_bytes()))
                    };
                    c.send(*x, opcode, &req).expect("send");
                }
                let mut last_zxid = 0;
                let mut last_version = 0;
                for (i, x) in xids.iter().enumerate() {
                    let opcode = if i % 3 == 2 { op::GET_DATA } else { op::SET_DATA };
                    // `receive` skips nothing here: the first frame must be the next reply.
                    let before = c.arrivals.len();
                    let r = c.receive(*x, opcode).expect("reply");
                    assert_eq!(c.arrivals.len(), before + 1, "replies arrived out of order");
                    assert_eq!(r.err(), 0);
                    assert!(r.header.zxid >= last_zxid, "zxid went back");
                    last_zxid = r.header.zxid;
                    let version = match r.response {
                        Some(Response::Stat(s)) | Some(Response::Data(_, s)) => s.version,
                        other => panic!("unexpected {other:?}"),
                    };
                    assert!(version >= last_version, "version went back");
                    last_version = version;
                }
                assert_eq!(last_version, 200);
            })
        })
        .collect();
    for t in threads {
        t.join().expect("session thread");
    }
}

#[test]
fn a_watch_event_arrives_before_the_data_that_triggered_it() {
    let server = ServerProcess::paddock(2, "");
    let mut reader = Client::connect(server.addr, 4000).expect("reader");
    let mut writer = Client::connect(server.addr, 4000).expect("writer");
    create(&mut reader, "/wbd");
    for round in 0..100u32 {
        let r = reader.call(op::GET_DATA, Request::GetData { path: "/wbd".into(), watch: true }).expect("watch");
        assert_eq!(r.err(), 0);
        let value = round.to_string().into_bytes();
        let w = writer.call(op::SET_DATA, set("/wbd", &value)).expect("set");
        assert_eq!(w.err(), 0);
        // Poll until the reader sees the new value; by then its event must already be here.
        loop {
            let r = reader.call(op::GET_DATA, Request::GetData { path: "/wbd".into(), watch: false }).expect("read");
            if matches!(&r.response, Some(Response::Data(d, _)) if *d == value) {
                break;
            }
        }
        let e = reader.events.pop_front().expect("event queued before the reply carrying the new data");
        assert_eq!((e.event_type, e.path.as_str()), (event::NODE_DATA_CHANGED, "/wbd"));
        assert!(reader.events.is_empty());
    }
}

#[test]
fn a_sessions_reads_never_go_back_in_time_across_reconnects() {
    let server = ServerProcess::paddock(2, "");
    let mut setup = Client::connect(server.addr, 4000).expect("setup");
    create(&mut setup, "/clock");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (addr, stop) = (server.addr, stop.clone());
        std::thread::spawn(move || {
            let mut w = Client::connect(addr, 4000).expect("writer");
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) && n < 5000 {
                w.call(op::SET_DATA, set("/clock", &n.to_be_bytes())).expect("set");
                n += 1;
            }
        })
    };
    let mut reader = Client::connect(server.addr, 4000).expect("reader");
    let mut last_version = -1;
    for round in 0..40 {
        for _ in 0..10 {
            let r = reader.call(op::GET_DATA, Request::GetData { path: "/clock".into(), watch: false }).expect("read");
            let Some(Response::Data(_, stat)) = r.response else { panic!("read failed: {r:?}") };
            assert!(stat.version >= last_version, "round {round}: version {} after {last_version}", stat.version);
            last_version = stat.version;
        }
        // Reconnect with the session and the last zxid seen, as a client does after a disconnect.
        let (sid, pw, last) = (reader.session_id, reader.password.clone(), reader.last_zxid);
        reader.drop_connection();
        reader = Client::resume(server.addr, sid, &pw, last, 4000).expect("resume");
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    assert!(last_version > 0, "the writer made progress during the reads");
}

#[test]
fn many_sessions_on_both_cores_see_one_consistent_tree() {
    let server = ServerProcess::paddock(2, "");
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let addr = server.addr;
            std::thread::spawn(move || {
                let mut c = Client::connect(addr, 4000).expect("connect");
                create(&mut c, "/shared");
                for i in 0..50 {
                    let req = Request::Create {
                        path: format!("/shared/n-{t}-{i}"),
                        data: vec![],
                        acl: engine::acl::open_acl_unsafe(),
                        flags: 0,
                        ttl: -1,
                    };
                    assert_eq!(c.call(op::CREATE, req).expect("create").err(), 0);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let mut c = Client::connect(server.addr, 4000).expect("connect");
    let r = c.call(op::GET_CHILDREN2, Request::GetChildren { path: "/shared".into(), watch: false }).expect("ls");
    let Some(Response::Children2(children, stat)) = r.response else { panic!("{r:?}") };
    assert_eq!((children.len(), stat.num_children, stat.cversion), (800, 800, 800));
}
