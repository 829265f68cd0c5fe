//! Histories of real clients against a real 3-voter ensemble whose leader is SIGKILLed, or
//! hangs (SIGSTOP) until the others have moved on without it and comes back, midway; checked by
//! `paddock_tests::linearizability`: writes, and reads issued after `sync`, must
//! have one order that explains every answer (ops whose outcome a client never learned may or
//! may not have happened). `PADDOCK_TARGET=zookeeper` runs the same test against ZooKeeper.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench::client::Client;
use node::proto::{op, Request, Response};
use paddock_tests::ensemble::Ensemble;
use paddock_tests::linearizability::{check, code, Event, Op, Outcome};
use paddock_tests::{wait_until, Rng};

/// Client threads (two per server); znodes they contend on.
const CLIENTS: u64 = 6;
const KEYS: u64 = 3;
/// Answered ops before the fault, and after it (after a hung leader, while it is frozen too):
/// the load is counted in answers, and each wait is bounded by `PROGRESS_TIMEOUT`.
const OPS_BEFORE_FAULT: usize = 500;
const OPS_AFTER_FAULT: usize = 500;
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(30);

/// A session on any server that takes one (a member that is LOOKING refuses it), or None by
/// the deadline.
fn connect_any(servers: &[SocketAddr], first: usize, deadline: Instant) -> Option<Client> {
    let mut i = first;
    while Instant::now() < deadline {
        if let Ok(c) = Client::connect(servers[i % servers.len()], 4000) {
            return Some(c);
        }
        i += 1;
        std::thread::sleep(Duration::from_millis(10)); // retry pacing; the deadline bounds it
    }
    None
}

/// Runs one op; None when the client cannot tell what happened (socket error, timeout).
fn run(c: &mut Client, path: &str, op: Op) -> Option<Outcome> {
    let outcome = |code, value, version| Some(Outcome { code, value, version });
    let data = |v: u64| v.to_string().into_bytes();
    let reply = match op {
        Op::Create { value } => c.call(
            op::CREATE,
            Request::Create {
                path: path.into(),
                data: data(value),
                acl: engine::acl::open_acl_unsafe(),
                flags: 0,
                ttl: -1,
            },
        ),
        Op::Set { value, version } => {
            c.call(op::SET_DATA, Request::SetData { path: path.into(), data: data(value), version })
        }
        Op::Delete { version } => c.call(op::DELETE, Request::Delete { path: path.into(), version }),
        Op::Get => {
            // sync first: the read that follows must see every write acknowledged before.
            let synced = c.call(op::SYNC, Request::Sync { path: path.into() }).ok()?;
            if synced.err() != code::OK {
                return None;
            }
            c.call(op::GET_DATA, Request::GetData { path: path.into(), watch: false })
        }
    }
    .ok()?;
    let err = reply.err();
    if ![code::OK, code::NO_NODE, code::NODE_EXISTS, code::BAD_VERSION].contains(&err) {
        return None; // ConnectionLoss and the like: unknown
    }
    match reply.response {
        Some(Response::Data(bytes, stat)) => {
            outcome(err, std::str::from_utf8(&bytes).ok().and_then(|s| s.parse().ok()), Some(stat.version))
        }
        Some(Response::Stat(stat)) => outcome(err, None, Some(stat.version)),
        _ => outcome(err, None, None),
    }
}

/// One client's history until `stop`.
fn client(
    id: u64,
    servers: Vec<SocketAddr>,
    start: Instant,
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicUsize>,
) -> Vec<Event> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (id + 1));
    let mut history = Vec::new();
    let mut counter = 0;
    let deadline = start + 3 * PROGRESS_TIMEOUT;
    let mut conn = connect_any(&servers, id as usize, deadline);
    while !stop.load(Ordering::Relaxed) {
        let Some(c) = conn.as_mut() else { break };
        let path = format!("/lin/k{}", rng.next() % KEYS);
        counter += 1;
        let value = id * 1_000_000 + counter;
        let op = match rng.next() % 8 {
            0 => Op::Create { value },
            1..=3 => Op::Set { value, version: -1 },
            4..=6 => Op::Get,
            _ => Op::Delete { version: -1 },
        };
        let call = start.elapsed().as_nanos() as u64;
        let outcome = run(c, &path, op);
        let ret = outcome.map(|o| (start.elapsed().as_nanos() as u64, o));
        history.push(Event { session: id, path, op, call, ret });
        if ret.is_some() {
            answered.fetch_add(1, Ordering::Relaxed);
        } else {
            // The connection is suspect: continue on a new session elsewhere.
            conn = connect_any(&servers, id as usize + 1, deadline);
        }
    }
    history
}

/// Waits until the clients have had `more` answers beyond `from`; false at the deadline.
fn answers_beyond(answered: &AtomicUsize, from: usize, more: usize) -> bool {
    wait_until(PROGRESS_TIMEOUT, || answered.load(Ordering::Relaxed) >= from + more)
}

/// Runs the clients, applies `fault` to the leader once they have made progress, lets them make
/// progress after it, and checks the history. `fault` gets the answer counter to wait on.
fn checked_history_under(fault: impl FnOnce(&mut Ensemble, u64, &AtomicUsize)) {
    let mut e = Ensemble::from_env(3, 0, "");
    let leader = e.leader().expect("a leader");
    let servers: Vec<SocketAddr> = e.ids().into_iter().map(|id| e.addr(id)).collect();
    {
        let mut c = Client::connect(servers[0], 4000).expect("connect");
        let req = Request::Create {
            path: "/lin".into(),
            data: Vec::new(),
            acl: engine::acl::open_acl_unsafe(),
            flags: 0,
            ttl: -1,
        };
        assert_eq!(c.call(op::CREATE, req).expect("create /lin").err(), code::OK);
    }
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let (servers, stop, answered) = (servers.clone(), stop.clone(), answered.clone());
            std::thread::spawn(move || client(id, servers, start, stop, answered))
        })
        .collect();
    let before = answers_beyond(&answered, 0, OPS_BEFORE_FAULT);
    let fault_at = start.elapsed().as_nanos() as u64;
    if before {
        fault(&mut e, leader, &answered);
    }
    let after = before && answers_beyond(&answered, answered.load(Ordering::Relaxed), OPS_AFTER_FAULT);
    stop.store(true, Ordering::Relaxed);
    let history: Vec<Event> = threads.into_iter().flat_map(|t| t.join().expect("client thread")).collect();
    assert!(before && after, "the clients stopped making progress; {}", e.describe());

    let known = history.iter().filter(|e| e.ret.is_some()).count();
    let after = history.iter().filter(|e| e.call > fault_at && e.ret.is_some()).count();
    eprintln!("{} ops, {known} with a known outcome, {after} of those after the fault began", history.len());
    assert!(known > 200 && after > 50, "too little load to check anything: {known} known, {after} after the fault");
    if let Err(v) = check(&history) {
        let file = std::env::temp_dir().join(format!("paddock-nonlinearizable-{}.txt", std::process::id()));
        v.write_to(&file).expect("write the history");
        panic!("no linearization of the ops on {}; history in {}", v.path, file.display());
    }
}

#[test]
fn writes_and_synced_reads_stay_linearizable_across_a_leader_kill() {
    checked_history_under(|e, leader, _| e.kill(leader));
}

#[test]
fn writes_and_synced_reads_stay_linearizable_when_the_leader_hangs_and_comes_back() {
    checked_history_under(|e, leader, answered| {
        e.stop(leader);
        // Frozen until the other two have elected a leader and served a load without it (every
        // op here needs a leader), which takes longer than the harness's syncLimit.
        let served = answers_beyond(answered, answered.load(Ordering::Relaxed), OPS_AFTER_FAULT);
        e.cont(leader);
        assert!(served, "the ensemble made no progress while its leader was frozen; {}", e.describe());
    });
}
