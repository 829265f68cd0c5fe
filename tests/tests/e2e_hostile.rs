//! Bad input: each hostile connection gets ZooKeeper's answer (an error or a closed
//! connection), and a healthy client on the same server keeps being served.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bench::client::Client;
use node::proto::{op, Request, Writer};
use paddock_tests::{wait_until, ServerProcess};

/// A healthy session does a write and a read.
fn still_served(healthy: &mut Client, n: u32) {
    let path = format!("/healthy-{n}");
    let req = Request::Create {
        path: path.clone(),
        data: b"ok".to_vec(),
        acl: engine::acl::open_acl_unsafe(),
        flags: 0,
        ttl: -1,
    };
    assert_eq!(healthy.call(op::CREATE, req).expect("healthy create").err(), 0);
    let r = healthy.call(op::GET_DATA, Request::GetData { path, watch: false }).expect("healthy read");
    assert_eq!(r.err(), 0);
}

fn closed_by_server(mut s: TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
                return false
            }
            Err(_) => return true,
        }
    }
}

fn handshaken(server: &ServerProcess) -> Client {
    Client::connect(server.addr, 4000).expect("connect")
}

#[test]
fn garbage_after_the_handshake_closes_only_that_connection() {
    let server = ServerProcess::paddock(2, "");
    let mut healthy = handshaken(&server);
    let mut bad = handshaken(&server);
    // A well-framed body that is no valid create: the path length points past the end.
    let mut frame = vec![0, 0, 0, 16, 0, 0, 0, 1, 0, 0, 0, 1];
    frame.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff, 1, 2, 3, 4]);
    bad.send_raw(&frame).expect("send");
    assert!(bad.is_closed_by_server(Duration::from_secs(5)));
    still_served(&mut healthy, 1);
}

#[test]
fn a_length_over_jute_maxbuffer_closes_the_connection() {
    let server = ServerProcess::paddock(2, "jute.maxbuffer=65536");
    let mut healthy = handshaken(&server);
    let mut bad = handshaken(&server);
    bad.send_raw(&(65537i32).to_be_bytes()).expect("send");
    assert!(bad.is_closed_by_server(Duration::from_secs(5)));
    let mut negative = handshaken(&server);
    negative.send_raw(&(-5i32).to_be_bytes()).expect("send");
    assert!(negative.is_closed_by_server(Duration::from_secs(5)));
    still_served(&mut healthy, 2);
}

#[test]
fn a_truncated_record_closes_the_connection() {
    let server = ServerProcess::paddock(2, "");
    let mut healthy = handshaken(&server);
    let mut bad = handshaken(&server);
    // getData whose frame ends inside the path.
    let mut frame = vec![0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 9];
    frame.truncate(16);
    bad.send_raw(&frame).expect("send");
    assert!(bad.is_closed_by_server(Duration::from_secs(5)));
    still_served(&mut healthy, 3);
}

#[test]
fn a_request_before_the_handshake_closes_the_connection() {
    let server = ServerProcess::paddock(2, "");
    let mut healthy = handshaken(&server);
    let mut s = TcpStream::connect(server.addr).expect("connect");
    let p =
        node::proto::Packet { xid: 1, op: op::GET_DATA, request: Request::GetData { path: "/a".into(), watch: false } };
    s.write_all(&p.encode()).expect("send");
    assert!(closed_by_server(s));
    still_served(&mut healthy, 4);
}

#[test]
fn a_frame_trickled_a_byte_at_a_time_is_still_understood() {
    let server = ServerProcess::paddock(2, "");
    let mut healthy = handshaken(&server);
    let mut s = TcpStream::connect(server.addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let req = node::proto::ConnectRequest::new_session(4000);
    let mut w = Writer::frame();
    req.encode(&mut w);
    for (i, b) in w.finish_frame().into_iter().enumerate() {
        s.write_all(&[b]).expect("byte");
        still_served(&mut healthy, 100 + i as u32);
    }
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("a ConnectResponse to the trickled handshake");
    assert_eq!(i32::from_be_bytes(len), 37);
}

#[test]
fn connections_beyond_max_client_cnxns_from_one_address_are_refused() {
    let server = ServerProcess::paddock(2, "maxClientCnxns=5");
    let mut allowed: Vec<Client> = (0..5).map(|_| handshaken(&server)).collect();
    let extra = TcpStream::connect(server.addr).expect("tcp connect");
    assert!(closed_by_server(extra), "the sixth connection is closed at once");
    still_served(&mut allowed[0], 5);
    allowed.pop().expect("one").drop_connection();
    assert!(
        wait_until(Duration::from_secs(5), || Client::connect(server.addr, 4000).is_ok()),
        "a slot frees when a connection closes"
    );
}
