//! The real binary driven by the project's own jute client, for what the Rust crate never
//! sends (checkWatches, setWatches, reconfig, unknown opcodes) and for session expiry and
//! reconnect.

use std::time::Duration;

use bench::client::{Client, ClientError};
use engine::code;
use node::proto::{event, op, watcher_type, ConnectRequest, Request, Response, SetWatches};
use paddock_tests::ServerProcess;

fn create(c: &mut Client, path: &str, flags: i32) -> i32 {
    let req = Request::Create { path: path.into(), data: vec![], acl: engine::acl::open_acl_unsafe(), flags, ttl: -1 };
    c.call(op::CREATE, req).expect("create").err()
}

fn watch_data(c: &mut Client, path: &str) -> i32 {
    c.call(op::GET_DATA, Request::GetData { path: path.into(), watch: true }).expect("getData").err()
}

#[test]
fn check_and_remove_watches_answer_no_watcher_when_there_is_none() {
    let server = ServerProcess::paddock(2, "");
    let mut c = Client::connect(server.addr, 4000).expect("connect");
    assert_eq!(create(&mut c, "/cw", 0), 0);
    let check = |c: &mut Client, kind| {
        c.call(op::CHECK_WATCHES, Request::Watches { path: "/cw".into(), watcher_type: kind })
            .expect("checkWatches")
            .err()
    };
    assert_eq!(check(&mut c, watcher_type::DATA), code::NO_WATCHER);
    assert_eq!(watch_data(&mut c, "/cw"), 0);
    assert_eq!(check(&mut c, watcher_type::DATA), 0);
    assert_eq!(check(&mut c, watcher_type::CHILDREN), code::NO_WATCHER);
    assert_eq!(check(&mut c, watcher_type::ANY), 0);
    let remove = c
        .call(op::REMOVE_WATCHES, Request::Watches { path: "/cw".into(), watcher_type: watcher_type::ANY })
        .expect("removeWatches");
    assert_eq!(remove.err(), 0);
    assert_eq!(check(&mut c, watcher_type::ANY), code::NO_WATCHER);
}

#[test]
fn set_watches_fires_what_the_client_missed() {
    let server = ServerProcess::paddock(2, "");
    let mut c = Client::connect(server.addr, 4000).expect("connect");
    for p in ["/sw", "/sw/changed", "/sw/same", "/sw/gone"] {
        assert_eq!(create(&mut c, p, 0), 0);
    }
    let seen = c.call(op::SYNC, Request::Sync { path: "/".into() }).expect("sync").header.zxid;
    c.call(op::SET_DATA, Request::SetData { path: "/sw/changed".into(), data: b"x".to_vec(), version: -1 })
        .expect("set");
    c.call(op::DELETE, Request::Delete { path: "/sw/gone".into(), version: -1 }).expect("delete");
    let sw = SetWatches {
        relative_zxid: seen,
        data: vec!["/sw/changed".into(), "/sw/same".into(), "/sw/gone".into()],
        exist: vec!["/sw/born".into(), "/sw".into()],
        child: vec!["/sw".into()],
        persistent: vec!["/sw/same".into()],
        persistent_recursive: vec![],
    };
    let reply = c.call(op::SET_WATCHES2, Request::SetWatches(sw)).expect("setWatches2");
    assert_eq!(reply.err(), 0);
    let mut events: Vec<(i32, String)> = Vec::new();
    while let Some(e) = c.next_event(Duration::from_millis(300)).expect("event") {
        events.push((e.event_type, e.path));
    }
    events.sort();
    assert_eq!(
        events,
        vec![
            (event::NODE_CREATED, "/sw".to_string()),
            (event::NODE_DELETED, "/sw/gone".to_string()),
            (event::NODE_DATA_CHANGED, "/sw/changed".to_string()),
            (event::NODE_CHILDREN_CHANGED, "/sw".to_string()),
        ]
    );
    // /sw/same was re-armed (one-shot and persistent), so a change now fires exactly one event.
    let mut other = Client::connect(server.addr, 4000).expect("other");
    other
        .call(op::SET_DATA, Request::SetData { path: "/sw/same".into(), data: b"y".to_vec(), version: -1 })
        .expect("set");
    let e = c.next_event(Duration::from_secs(5)).expect("event").expect("an event for the re-armed watch");
    assert_eq!((e.event_type, e.path.as_str()), (event::NODE_DATA_CHANGED, "/sw/same"));
}

#[test]
fn disabled_and_unknown_requests_get_zookeepers_answers() {
    let server = ServerProcess::paddock(2, "");
    let mut c = Client::connect(server.addr, 4000).expect("connect");
    let reconfig =
        Request::Reconfig { joining: String::new(), leaving: "2".into(), new_members: String::new(), config_id: -1 };
    assert_eq!(c.call(op::RECONFIG, reconfig).expect("reconfig").err(), code::RECONFIG_DISABLED);
    assert_eq!(c.call(op::PING, Request::Ping).expect("ping").err(), 0);
    let who = c.call(op::WHO_AM_I, Request::WhoAmI).expect("whoAmI");
    assert_eq!(who.response, Some(Response::ClientInfo(vec![("ip".into(), "127.0.0.1".into())])));
    // An opcode ZooKeeper does not know: Unimplemented, then the connection closes.
    let mut frame = vec![0, 0, 0, 8, 0, 0, 0, 9];
    frame.extend_from_slice(&77i32.to_be_bytes());
    c.send_raw(&frame).expect("send");
    let reply = c.receive(9, 77).expect("a reply to the unknown opcode");
    assert_eq!(reply.err(), code::UNIMPLEMENTED);
    assert!(c.is_closed_by_server(Duration::from_secs(5)));
}

#[test]
fn an_expired_session_loses_its_ephemerals_and_cannot_be_resumed() {
    let server = ServerProcess::paddock(2, "");
    let mut owner = Client::connect(server.addr, 400).expect("owner");
    assert_eq!(owner.timeout_ms, 400, "negotiated up to minSessionTimeout = 2 ticks");
    assert_eq!(create(&mut owner, "/lease", 1), 0);
    let mut watcher = Client::connect(server.addr, 4000).expect("watcher");
    assert_eq!(watch_data(&mut watcher, "/lease"), 0);
    let (sid, password, last) = (owner.session_id, owner.password.clone(), owner.last_zxid);
    owner.drop_connection();
    let e = watcher.next_event(Duration::from_secs(10)).expect("event").expect("NodeDeleted after expiry");
    assert_eq!((e.event_type, e.path.as_str()), (event::NODE_DELETED, "/lease"));
    match Client::resume(server.addr, sid, &password, last, 4000) {
        Err(ClientError::SessionExpired) => {}
        other => panic!("resuming an expired session must fail, got {:?}", other.map(|c| c.session_id)),
    }
}

#[test]
fn a_live_session_resumes_on_a_new_connection_but_not_with_a_wrong_password() {
    let server = ServerProcess::paddock(2, "");
    let mut c = Client::connect(server.addr, 4000).expect("connect");
    assert_eq!(create(&mut c, "/mine", 1), 0);
    let (sid, password, last) = (c.session_id, c.password.clone(), c.last_zxid);
    let mut wrong = password.clone();
    wrong[0] ^= 1;
    assert!(matches!(Client::resume(server.addr, sid, &wrong, last, 4000), Err(ClientError::SessionExpired)));
    let mut again = Client::resume(server.addr, sid, &password, last, 4000).expect("resume");
    assert_eq!(again.session_id, sid);
    assert!(c.is_closed_by_server(Duration::from_secs(5)), "the old connection is closed when the session moves");
    let eph = again.call(op::GET_EPHEMERALS, Request::GetEphemerals { prefix: "/".into() }).expect("getEphemerals");
    assert_eq!(eph.response, Some(Response::Paths(vec!["/mine".into()])));
    let close = again.call(op::CLOSE_SESSION, Request::CloseSession).expect("closeSession");
    assert_eq!(close.err(), 0);
    assert!(again.is_closed_by_server(Duration::from_secs(5)));
    let mut check = Client::connect(server.addr, 4000).expect("connect");
    let r = check.call(op::EXISTS, Request::Exists { path: "/mine".into(), watch: false }).expect("exists");
    assert_eq!(r.err(), code::NO_NODE);
}

#[test]
fn a_client_that_has_seen_the_future_is_refused() {
    let server = ServerProcess::paddock(2, "");
    let req = ConnectRequest { last_zxid_seen: 1 << 40, ..ConnectRequest::new_session(4000) };
    assert!(Client::handshake(server.addr, &req).is_err(), "ZooKeeper closes the connection of a client ahead of it");
    Client::connect(server.addr, 4000).expect("others are still served");
}

fn create_with_data(c: &mut Client, path: &str, data: &[u8]) -> i32 {
    let req = Request::Create {
        path: path.into(),
        data: data.to_vec(),
        acl: engine::acl::open_acl_unsafe(),
        flags: 0,
        ttl: -1,
    };
    c.call(op::CREATE, req).expect("create").err()
}

fn quota_stats(c: &mut Client, path: &str) -> String {
    let r = c
        .call(op::GET_DATA, Request::GetData { path: format!("/zookeeper/quota{path}/zookeeper_stats"), watch: false });
    match r.expect("getData").response {
        Some(Response::Data(d, _)) => String::from_utf8_lossy(&d).into_owned(),
        other => panic!("no stats node: {other:?}"),
    }
}

#[test]
fn quota_nodes_track_usage_and_hard_limits_are_enforced() {
    let server = ServerProcess::paddock(2, "enforceQuota=true");
    let mut c = Client::connect(server.addr, 4000).expect("connect");
    assert_eq!(create_with_data(&mut c, "/qa", b"xy"), 0);
    // What zkCli's setquota writes: the quota path, its limits, then zeroed stats.
    assert_eq!(create_with_data(&mut c, "/zookeeper/quota/qa", b""), 0);
    assert_eq!(
        create_with_data(&mut c, "/zookeeper/quota/qa/zookeeper_limits", b"count=-1,bytes=-1,countHardLimit=3"),
        0
    );
    assert_eq!(create_with_data(&mut c, "/zookeeper/quota/qa/zookeeper_stats", b"count=0,bytes=0"), 0);
    assert_eq!(quota_stats(&mut c, "/qa"), "count=1,bytes=2");
    assert_eq!(create_with_data(&mut c, "/qa/one", b"abc"), 0);
    assert_eq!(create_with_data(&mut c, "/qa/two", b""), 0);
    assert_eq!(quota_stats(&mut c, "/qa"), "count=3,bytes=5");
    assert_eq!(create_with_data(&mut c, "/qa/three", b""), code::QUOTA_EXCEEDED);
    c.call(op::DELETE, Request::Delete { path: "/qa/two".into(), version: -1 }).expect("delete");
    assert_eq!(quota_stats(&mut c, "/qa"), "count=2,bytes=5");
    assert_eq!(create_with_data(&mut c, "/qa/three", b""), 0, "room again after a delete");
}
