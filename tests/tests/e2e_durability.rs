//! Durability of the real binary: SIGKILL under pipelined load loses no acknowledged write,
//! group commit batches concurrent writers, snapshots are taken and used, and a corrupt log
//! stops start-up.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bench::client::{four_letter, Client};
use node::proto::{op, Request, Response};
use paddock_tests::{wait_until, Rng, ServerProcess};

fn create_req(path: &str, data: &[u8]) -> Request {
    Request::Create { path: path.into(), data: data.to_vec(), acl: engine::acl::open_acl_unsafe(), flags: 0, ttl: -1 }
}

/// What a writer saw acknowledged: created paths with their data, and the highest counter
/// version with its data.
#[derive(Default)]
struct Acked {
    writer: usize,
    created: Vec<(String, Vec<u8>)>,
    counter: Option<(i32, Vec<u8>)>,
}

/// Pipelines creates and counter updates (up to `window` in flight) until the connection dies
/// or `stop` is set, recording every success reply.
fn write_until_killed(
    addr: std::net::SocketAddr,
    writer: usize,
    round: usize,
    window: usize,
    stop: &AtomicBool,
) -> Acked {
    let mut acked = Acked { writer, ..Acked::default() };
    let Ok(mut c) = Client::connect(addr, 4000) else { return acked };
    let counter = format!("/crash/counter-{writer}");
    let mut in_flight: VecDeque<(i32, i32, String, Vec<u8>)> = VecDeque::new();
    let mut n = 0u64;
    loop {
        while in_flight.len() < window && !stop.load(Ordering::Relaxed) {
            n += 1;
            let xid = c.next_xid();
            let data = format!("r{round}-w{writer}-{n}").into_bytes();
            let (opcode, path, req) = if n.is_multiple_of(3) {
                (
                    op::SET_DATA,
                    counter.clone(),
                    Request::SetData { path: counter.clone(), data: data.clone(), version: -1 },
                )
            } else {
                let p = format!("/crash/r{round}-w{writer}-{n}");
                (op::CREATE, p.clone(), create_req(&p, &data))
            };
            if c.send(xid, opcode, &req).is_err() {
                return acked;
            }
            in_flight.push_back((xid, opcode, path, data));
        }
        let Some((xid, opcode, path, data)) = in_flight.pop_front() else { return acked };
        let Ok(reply) = c.receive(xid, opcode) else { return acked };
        assert_eq!(reply.err(), 0, "{path}: {reply:?}");
        match (opcode, reply.response) {
            (op::SET_DATA, Some(Response::Stat(s))) => {
                if acked.counter.as_ref().is_none_or(|(v, _)| s.version > *v) {
                    acked.counter = Some((s.version, data));
                }
            }
            (op::CREATE, _) => acked.created.push((path, data)),
            other => panic!("unexpected reply {other:?}"),
        }
    }
}

fn get(c: &mut Client, path: &str) -> Option<(Vec<u8>, engine::Stat)> {
    match c.call(op::GET_DATA, Request::GetData { path: path.into(), watch: false }).expect("getData").response {
        Some(Response::Data(d, s)) => Some((d, s)),
        _ => None,
    }
}

/// Walks the whole tree checking that every node agrees with its children.
fn assert_tree_consistent(c: &mut Client) -> usize {
    let mut stack = vec!["/".to_string()];
    let mut seen = 0;
    while let Some(p) = stack.pop() {
        let r = c.call(op::GET_CHILDREN2, Request::GetChildren { path: p.clone(), watch: false }).expect("ls");
        let Some(Response::Children2(children, stat)) = r.response else { panic!("{p}: {r:?}") };
        seen += 1;
        assert_eq!(stat.num_children as usize, children.len(), "{p}: numChildren");
        // ZooKeeper's cversion is 2 × creations − children: at least the children for any node
        // whose children all came from txns (not `/` and `/zookeeper`, born with theirs).
        if p != "/" && p != "/zookeeper" {
            assert!(
                stat.cversion >= stat.num_children,
                "{p}: cversion {} < children {}",
                stat.cversion,
                stat.num_children
            );
        }
        for child in children {
            let cp = if p == "/" { format!("/{child}") } else { format!("{p}/{child}") };
            let (_, cs) = get(c, &cp).unwrap_or_else(|| panic!("{cp} listed but missing"));
            assert!(cs.czxid <= stat.pzxid, "{cp}: created after its parent's pzxid");
            stack.push(cp);
        }
    }
    let total = c.call(op::GET_ALL_CHILDREN_NUMBER, Request::GetAllChildrenNumber { path: "/".into() }).expect("count");
    assert_eq!(total.response, Some(Response::Count(seen as i32 - 1)), "every node is reachable from /");
    seen
}

/// Every acknowledged create is there with its data; every counter is at least at its highest
/// acknowledged version (with that version's data if it is exactly there).
fn assert_acked_present(c: &mut Client, acked: &[Acked], when: &str) {
    let mut counters: HashMap<usize, (i32, Vec<u8>)> = HashMap::new();
    for a in acked {
        for (p, d) in &a.created {
            assert_eq!(get(c, p).map(|(data, _)| data), Some(d.clone()), "{when}: acknowledged create {p} lost");
        }
        if let Some((v, d)) = &a.counter {
            if counters.get(&a.writer).is_none_or(|(best, _)| v > best) {
                counters.insert(a.writer, (*v, d.clone()));
            }
        }
    }
    for (w, (v, d)) in counters {
        let (data, stat) = get(c, &format!("/crash/counter-{w}")).expect("counter node");
        assert!(stat.version >= v, "{when}: counter-{w} at version {} < acknowledged {v}", stat.version);
        if stat.version == v {
            assert_eq!(data, d, "{when}: counter-{w} data");
        }
    }
}

#[test]
fn acknowledged_writes_survive_sigkill_at_random_moments() {
    let rounds: usize = std::env::var("PADDOCK_CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let seed = std::env::var("PADDOCK_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1) | 1);
    eprintln!("crash test: {rounds} rounds, replay with PADDOCK_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    // A small snapCount, so kills also land while snapshots are being written.
    let mut server = ServerProcess::paddock(2, "snapCount=400");
    let mut setup = Client::connect(server.addr, 4000).expect("connect");
    assert_eq!(setup.call(op::CREATE, create_req("/crash", b"")).expect("create").err(), 0);
    for w in 0..4 {
        let p = format!("/crash/counter-{w}");
        assert_eq!(setup.call(op::CREATE, create_req(&p, b"")).expect("create").err(), 0);
    }
    let all_acked: Arc<Mutex<Vec<Acked>>> = Arc::new(Mutex::new(Vec::new()));
    for round in 0..rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let (addr, stop, acked) = (server.addr, stop.clone(), all_acked.clone());
                std::thread::spawn(move || {
                    let a = write_until_killed(addr, w, round, 16, &stop);
                    acked.lock().map(|mut v| v.push(a)).ok();
                })
            })
            .collect();
        let delay = Duration::from_millis(20 + rng.next() % 250);
        let started = Instant::now();
        // Kill at a random moment of the load (the writers run until the socket dies).
        while started.elapsed() < delay {
            std::thread::yield_now();
        }
        server.kill();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().expect("writer");
        }
        server.restart(2);
        let mut c = Client::connect(server.addr, 4000).expect("connect after restart");
        // This round's acknowledged writes now; every round's again at the end.
        let acked = all_acked.lock().expect("lock");
        let this_round = &acked[acked.len() - 4..];
        assert_acked_present(&mut c, this_round, &format!("round {round} (seed {seed})"));
        drop(acked);
        if round % 5 == 4 {
            assert_tree_consistent(&mut c);
        }
    }
    let mut c = Client::connect(server.addr, 4000).expect("connect");
    assert_acked_present(&mut c, &all_acked.lock().expect("lock"), &format!("after all rounds (seed {seed})"));
    assert_tree_consistent(&mut c);
    let log = server.log();
    assert!(log.contains("recovered"), "{log}");
}

#[test]
fn concurrent_writers_share_fsyncs() {
    let server = ServerProcess::paddock(2, "");
    let threads: Vec<_> = (0..64)
        .map(|t| {
            let addr = server.addr;
            std::thread::spawn(move || {
                let mut c = Client::connect(addr, 4000).expect("connect");
                let p = format!("/gc-{t}");
                assert_eq!(c.call(op::CREATE, create_req(&p, b"")).expect("create").err(), 0);
                for i in 0..30 {
                    let req = Request::SetData { path: p.clone(), data: format!("{i}").into_bytes(), version: -1 };
                    assert_eq!(c.call(op::SET_DATA, req).expect("set").err(), 0);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer");
    }
    let mntr = four_letter(server.addr, "mntr").expect("mntr");
    let value = |k: &str| -> f64 {
        mntr.lines().find_map(|l| l.strip_prefix(k).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
    };
    // 64 sessions, 64 creates and 64 × 30 sets, plus the harness's probe session.
    assert!(value("paddock_fsync_txns") >= 64.0 * 32.0, "{mntr}");
    let per_fsync = value("paddock_txns_per_fsync_avg");
    assert!(per_fsync > 1.0, "64 concurrent writers must share fsyncs, got {per_fsync} txns per fsync:\n{mntr}");
}

#[test]
fn snapshots_are_taken_during_load_and_used_at_restart() {
    let mut server = ServerProcess::paddock(2, "snapCount=200");
    let mut c = Client::connect(server.addr, 4000).expect("connect");
    for i in 0..600 {
        assert_eq!(c.call(op::CREATE, create_req(&format!("/s{i}"), b"x")).expect("create").err(), 0);
    }
    let snapshots =
        || four_letter(server.addr, "mntr").map(|m| m.contains("paddock_snapshot_count\t0")).unwrap_or(true);
    assert!(wait_until(Duration::from_secs(10), || !snapshots()), "a snapshot is written after snapCount txns");
    server.restart(2);
    assert!(server.log().contains("loaded snapshot"), "{}", server.log());
    let mut c = Client::connect(server.addr, 4000).expect("connect");
    for i in [0, 299, 599] {
        assert_eq!(get(&mut c, &format!("/s{i}")).map(|(d, _)| d), Some(b"x".to_vec()));
    }
    let out = std::process::Command::new(paddock_tests::paddock_bin())
        .args(["purge", "-n", "3"])
        .arg(server.dir.join("zoo.cfg"))
        .output()
        .expect("purge");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    server.restart(2);
    assert_eq!(
        get(&mut Client::connect(server.addr, 4000).expect("connect"), "/s599").map(|(d, _)| d),
        Some(b"x".to_vec())
    );
}

#[test]
fn a_corrupt_log_stops_start_up_naming_file_and_offset() {
    let mut server = ServerProcess::paddock(1, "");
    let mut c = Client::connect(server.addr, 4000).expect("connect");
    for i in 0..20 {
        assert_eq!(c.call(op::CREATE, create_req(&format!("/c{i}"), b"data")).expect("create").err(), 0);
    }
    let log_dir = server.dir.join("data/paddock");
    let segment = engine::log::list_segments(&log_dir).expect("segments").remove(0).1;
    let mut bytes = std::fs::read(&segment).expect("read");
    let scan = engine::log::scan(&bytes).expect("scan");
    let victim = scan.records[2].clone();
    bytes[victim.payload.start] ^= 0x40;
    server.kill();
    std::fs::write(&segment, &bytes).expect("corrupt the log");
    let (code, err) = server.restart_expecting_failure();
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains(&segment.display().to_string()), "names the file: {err}");
    assert!(err.contains(&format!("offset {}", victim.offset)), "names the offset: {err}");
    assert_eq!(std::fs::read(&segment).expect("read"), bytes, "nothing is changed or deleted");
    let dump = std::process::Command::new(paddock_tests::paddock_bin())
        .args(["log", "dump"])
        .arg(&segment)
        .output()
        .expect("dump");
    assert_eq!(dump.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&dump.stdout).contains("CORRUPT"));
}
