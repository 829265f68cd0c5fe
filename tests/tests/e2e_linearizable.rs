//! Histories of real clients against a real 3-voter ensemble under a fault, checked by
//! `paddock_tests::linearizability`: writes, and reads issued after `sync`, must have one order
//! that explains every answer (ops whose outcome a client never learned may or may not have
//! happened). The faults: the leader or a follower SIGKILLed (a follower is restarted and must
//! catch up), or hung (SIGSTOP) until the others have moved on without it and then resumed; the
//! leader or a follower partitioned from the others by the link proxies, its connections closed
//! or (silently) its traffic dropped, and healed; a slow disk (an fsync delay) on a follower or on
//! the leader, then a crash that puts it on every commit's path. After each fault every client
//! goes back to its own server, so the restarted, resumed or healed member serves checked reads
//! and writes again. A failing history is written to a file, with the servers each session used
//! beside it.
//!
//! `PADDOCK_TARGET=zookeeper` runs the same tests against ZooKeeper (the slow-disk ones are
//! skipped there: the delay is a Paddock knob).
//!
//! Every wait is bounded: load is counted in answered ops, each count with a deadline
//! (`PROGRESS_TIMEOUT`), and role changes are waited for through the four-letter words.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bench::client::Client;
use node::proto::{op, Request, Response};
use paddock_tests::ensemble::{target_flavor, Ensemble, START_TIMEOUT};
use paddock_tests::linearizability::{check, code, Event, Op, Outcome};
use paddock_tests::{wait_until, Flavor, Rng};

/// Client threads (two per server); znodes they contend on.
const CLIENTS: u64 = 6;
const KEYS: u64 = 3;
/// Answered ops before the fault, during it (while a member is down, hung, cut off or slow),
/// and after it: the load is counted in answers, and each wait is bounded by `PROGRESS_TIMEOUT`.
const OPS_BEFORE_FAULT: usize = 500;
const OPS_DURING_FAULT: usize = 500;
const OPS_AFTER_FAULT: usize = 500;
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client gives a server to open a session before trying the next, as ZooKeeper's
/// client gives each server a share of the session timeout: a SIGSTOPped member accepts
/// connections (the kernel does) but never answers.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The slow disk: each log batch of the slow member waits this long before its fdatasync.
const SLOW_FSYNC_MS: u64 = 50;

/// A session on any server that takes one (a member that is LOOKING refuses it), trying
/// `servers[first]` first; None by the deadline or once `stop` is set.
fn connect_any(servers: &[SocketAddr], first: usize, deadline: Instant, stop: &AtomicBool) -> Option<Client> {
    let mut i = first;
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        if let Ok(c) = Client::connect_within(&servers[i % servers.len()], 4000, CONNECT_TIMEOUT) {
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

/// What the client threads share with the test.
struct Shared {
    start: Instant,
    stop: AtomicBool,
    /// Ops answered so far, over every client: the load's progress.
    answered: AtomicUsize,
    /// Bumped to send every client back to its own server (after a fault, so that a member
    /// that was down, hung or cut off serves checked ops again instead of being avoided).
    home_generation: AtomicUsize,
}

/// Where client `session` had its session from time `since` on (ns, the history's clock): to
/// tell, when a history fails, which server gave which answer.
struct Placement {
    session: u64,
    since: u64,
    server: SocketAddr,
}

/// What one client did: its ops, and the servers it used.
type ClientRecord = (Vec<Event>, Vec<Placement>);

/// One client's history until `stop`. Client `id` lives on `servers[id % n]` ("home") and
/// moves to the next server that takes a session when its connection fails.
fn client(id: u64, servers: Vec<SocketAddr>, shared: Arc<Shared>) -> ClientRecord {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (id + 1));
    let mut history = Vec::new();
    let mut placements = Vec::new();
    let mut placed = |conn: &Option<Client>| {
        if let Some(c) = conn {
            placements.push(Placement { session: id, since: shared.start.elapsed().as_nanos() as u64, server: c.addr });
        }
    };
    let mut counter = 0;
    let deadline = shared.start + 4 * PROGRESS_TIMEOUT;
    let home = id as usize;
    let mut generation = shared.home_generation.load(Ordering::Relaxed);
    let mut conn = connect_any(&servers, home, deadline, &shared.stop);
    placed(&conn);
    while !shared.stop.load(Ordering::Relaxed) {
        let now = shared.home_generation.load(Ordering::Relaxed);
        if now != generation {
            generation = now;
            conn = connect_any(&servers, home, deadline, &shared.stop);
            placed(&conn);
        }
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
        let call = shared.start.elapsed().as_nanos() as u64;
        let outcome = run(c, &path, op);
        let ret = outcome.map(|o| (shared.start.elapsed().as_nanos() as u64, o));
        history.push(Event { session: id, path, op, call, ret });
        if ret.is_some() {
            shared.answered.fetch_add(1, Ordering::Relaxed);
        } else {
            // The connection is suspect: continue on a new session elsewhere.
            conn = connect_any(&servers, home + 1, deadline, &shared.stop);
            placed(&conn);
        }
    }
    (history, placements)
}

/// The client threads. Dropping the load stops them, so a test that panics midway leaves no
/// client retrying against a dead ensemble.
struct Load {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<ClientRecord>>,
}

impl Load {
    fn start(servers: &[SocketAddr]) -> Load {
        let shared = Arc::new(Shared {
            start: Instant::now(),
            stop: AtomicBool::new(false),
            answered: AtomicUsize::new(0),
            home_generation: AtomicUsize::new(0),
        });
        let threads = (0..CLIENTS)
            .map(|id| {
                let (servers, shared) = (servers.to_vec(), shared.clone());
                std::thread::spawn(move || client(id, servers, shared))
            })
            .collect();
        Load { shared, threads }
    }

    fn answered(&self) -> usize {
        self.shared.answered.load(Ordering::Relaxed)
    }

    /// Ns since the load began, the clock of the history.
    fn now(&self) -> u64 {
        self.shared.start.elapsed().as_nanos() as u64
    }

    /// Waits until the clients have had `more` answers from now and `cond` holds too (it is
    /// polled only once the answers are in); false at the deadline.
    fn serve(&self, more: usize, mut cond: impl FnMut() -> bool) -> bool {
        let from = self.answered();
        wait_until(PROGRESS_TIMEOUT, || self.answered() >= from + more && cond())
    }

    fn send_clients_home(&self) {
        self.shared.home_generation.fetch_add(1, Ordering::Relaxed);
    }

    /// Stops the clients and returns every op they ran, and where.
    fn finish(mut self) -> (Vec<Event>, Vec<Placement>) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let (mut history, mut placements) = (Vec::new(), Vec::new());
        for t in self.threads.drain(..) {
            let (h, p) = t.join().expect("client thread");
            history.extend(h);
            placements.extend(p);
        }
        (history, placements)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

/// What a fault works with: the ensemble, its roles when the load began, and the load.
struct Fault<'a> {
    e: &'a mut Ensemble,
    leader: u64,
    followers: Vec<u64>,
    load: &'a Load,
}

impl Fault<'_> {
    /// Waits until the clients have had `OPS_DURING_FAULT` more answers and `cond` holds;
    /// Err naming `what` (and every member's state) at the deadline.
    fn serve_until(&self, what: &str, mut cond: impl FnMut(&Ensemble) -> bool) -> Result<(), String> {
        let e = &*self.e;
        if self.load.serve(OPS_DURING_FAULT, || cond(e)) {
            Ok(())
        } else {
            Err(format!("no progress {what} within {PROGRESS_TIMEOUT:?}; {}", e.describe()))
        }
    }

    /// [`Fault::serve_until`] with no condition beyond the answers.
    fn serve(&self, what: &str) -> Result<(), String> {
        self.serve_until(what, |_| true)
    }

    /// Waits until `id` serves again (has a mode) after a fault it had noticed.
    fn rejoined(&mut self, id: u64) -> Result<(), String> {
        match self.e.wait_mode(id, START_TIMEOUT) {
            Some(_) => Ok(()),
            None => Err(format!("server {id} did not serve again within {START_TIMEOUT:?}; {}", self.e.describe())),
        }
    }
}

/// Whether some member other than `old` leads.
fn another_leads(e: &Ensemble, old: u64) -> bool {
    e.live().into_iter().any(|id| id != old && e.mode(id).as_deref() == Some("leader"))
}

/// A file name for this test's failing history (the test's thread is named after it).
fn history_file() -> std::path::PathBuf {
    let test = std::thread::current().name().unwrap_or("test").replace("::", "-");
    let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
    std::env::temp_dir().join(format!("paddock-nonlinearizable-{test}-{}-{at}.txt", std::process::id()))
}

/// Runs the clients on `e` (a formed 3-voter ensemble), applies `fault` once they have made
/// progress, sends them back to their own servers, lets them make progress again, and checks
/// the whole history. `fault` returns once its fault is over (a member restarted, resumed or
/// healed and serving again), or Err when the ensemble stopped making progress.
fn checked_history_under(mut e: Ensemble, fault: impl FnOnce(&mut Fault) -> Result<(), String>) {
    let leader = e.wait_modes(START_TIMEOUT);
    let followers = e.followers();
    assert_eq!(followers.len(), 2, "two followers expected; {}", e.describe());
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
    let began = Instant::now();
    let load = Load::start(&servers);
    let before = load.serve(OPS_BEFORE_FAULT, || true);
    let fault_at = load.now();
    let outcome = if before {
        fault(&mut Fault { e: &mut e, leader, followers, load: &load })
    } else {
        Err(format!("no progress before the fault; {}", e.describe()))
    };
    let fault_over = load.now();
    load.send_clients_home();
    let outcome = outcome.and_then(|()| {
        if load.serve(OPS_AFTER_FAULT, || true) {
            Ok(())
        } else {
            Err(format!("no progress after the fault; {}", e.describe()))
        }
    });
    let stopping = load.now();
    let (history, placements) = load.finish();
    let secs = |ns: u64| ns as f64 / 1e9;
    eprintln!(
        "load: {:.1} s before the fault, {:.1} s in it, {:.1} s after, {:.1} s to stop the clients",
        secs(fault_at),
        secs(fault_over - fault_at),
        secs(stopping - fault_over),
        secs(began.elapsed().as_nanos() as u64 - stopping)
    );
    if let Err(why) = outcome {
        panic!("the clients stopped making progress: {why}");
    }

    let known = history.iter().filter(|e| e.ret.is_some()).count();
    let after = history.iter().filter(|e| e.call > fault_at && e.ret.is_some()).count();
    eprintln!("{} ops, {known} with a known outcome, {after} of those after the fault began", history.len());
    assert!(known > 200 && after > 50, "too little load to check anything: {known} known, {after} after the fault");
    if let Err(v) = check(&history) {
        let file = history_file();
        v.write_to(&file).expect("write the history");
        // Beside it, which member each session was on, from when: a reply's server is the last
        // placement of its session before the op's call.
        let member = |addr: SocketAddr| e.ids().into_iter().find(|&id| e.addr(id) == addr).unwrap_or(0);
        let mut text = format!("# sessions of {}: session, since (ns), member\n", file.display());
        for p in &placements {
            text.push_str(&format!("session {:#x} since {} member {}\n", p.session, p.since, member(p.server)));
        }
        let where_file = file.with_extension("sessions.txt");
        std::fs::write(&where_file, text).expect("write the sessions");
        panic!(
            "no linearization of the ops on {}; history in {}, sessions' servers in {}",
            v.path,
            file.display(),
            where_file.display()
        );
    }
}

#[test]
fn writes_and_synced_reads_stay_linearizable_across_a_leader_kill() {
    checked_history_under(Ensemble::from_env(3, 0, ""), |f| {
        f.e.kill(f.leader);
        Ok(())
    });
}

#[test]
fn writes_and_synced_reads_stay_linearizable_when_the_leader_hangs_and_comes_back() {
    checked_history_under(Ensemble::from_env(3, 0, ""), |f| {
        let old = f.leader;
        f.e.stop(old);
        // Frozen until the other two have elected a leader and served a load without it (every
        // op here needs a leader), which takes longer than the harness's syncLimit.
        let served = f.serve_until("while the leader was frozen", |e| another_leads(e, old));
        f.e.cont(old);
        served?;
        f.rejoined(old)
    });
}

#[test]
fn writes_and_synced_reads_stay_linearizable_across_a_follower_kill_and_restart() {
    checked_history_under(Ensemble::from_env(3, 0, ""), |f| {
        let victim = f.followers[0];
        f.e.kill(victim);
        f.serve("with a follower down")?;
        // Restarted on its data, it syncs from the leader; its clients come back to it and
        // their synced reads must see everything acknowledged meanwhile.
        f.e.restart(victim);
        Ok(())
    });
}

#[test]
fn writes_and_synced_reads_stay_linearizable_when_a_follower_hangs_and_comes_back() {
    checked_history_under(Ensemble::from_env(3, 0, ""), |f| {
        let (leader, victim) = (f.leader, f.followers[0]);
        f.e.stop(victim);
        // Frozen until the others have served a load without it and the leader has dropped it
        // (silent past syncLimit), so that it wakes up to a link that is gone, with its clients'
        // requests waiting in its sockets.
        let served = f.serve_until("while a follower was frozen", |e| {
            e.mntr_i64(leader, "zk_synced_followers").is_some_and(|n| n < 2)
        });
        f.e.cont(victim);
        served?;
        f.rejoined(victim)
    });
}

/// Partitions `victim` from the other two, by closing its links or, `silently`, by dropping
/// their traffic (each side then finds out only by its own timeouts), until it has stopped
/// serving (it can see no quorum) and the others have served a load without it, with a leader
/// of their own if it led; then heals, and waits until it serves again. Its clients reach it
/// throughout: a leader cut off must answer them nothing that a quorum does not hold, and the
/// writes it took alone must not show once it rejoins.
fn partition(f: &mut Fault, victim: u64, silently: bool) -> Result<(), String> {
    if silently {
        f.e.isolate_silently(victim);
    } else {
        f.e.isolate(victim);
    }
    let led = victim == f.leader;
    f.serve_until(&format!("while server {victim} was cut off (silently: {silently})"), |e| {
        e.mode(victim).is_none() && (!led || another_leads(e, victim))
    })?;
    f.e.heal_all();
    f.rejoined(victim)
}

#[test]
fn writes_and_synced_reads_stay_linearizable_when_the_leader_is_partitioned_away() {
    checked_history_under(Ensemble::proxied_from_env(3, 0, ""), |f| partition(f, f.leader, false));
}

#[test]
fn writes_and_synced_reads_stay_linearizable_when_the_leader_is_partitioned_away_silently() {
    checked_history_under(Ensemble::proxied_from_env(3, 0, ""), |f| partition(f, f.leader, true));
}

#[test]
fn writes_and_synced_reads_stay_linearizable_when_a_follower_is_partitioned_away() {
    checked_history_under(Ensemble::proxied_from_env(3, 0, ""), |f| partition(f, f.followers[0], false));
}

#[test]
fn writes_and_synced_reads_stay_linearizable_when_a_follower_is_partitioned_away_silently() {
    checked_history_under(Ensemble::proxied_from_env(3, 0, ""), |f| partition(f, f.followers[0], true));
}

/// A formed 3-voter ensemble in which member `slow`, and only it, has a slow disk
/// (`paddock.testFsyncDelayMs`), and `slow` leads if `lead` and follows otherwise; None against
/// ZooKeeper, which has no such knob.
fn ensemble_with_slow_disk(slow: u64, lead: bool) -> Option<Ensemble> {
    if target_flavor() != Flavor::Paddock {
        eprintln!("skipped: the fsync delay is a Paddock knob");
        return None;
    }
    let mut e = Ensemble::configure(Flavor::Paddock, 3, 0, "");
    e.append_config(slow, &format!("paddock.testFsyncDelayMs={SLOW_FSYNC_MS}"));
    for id in e.ids() {
        e.start(id);
    }
    // Empty logs elect the highest id, so member 3 normally leads at once. Otherwise the
    // leader is killed, which with equal logs hands the lead to the highest id left, and is
    // restarted to follow; a few rounds at most.
    for _ in 0..3 {
        let leader = e.wait_modes(START_TIMEOUT);
        if (leader == slow) == lead {
            return Some(e);
        }
        e.kill(leader);
        let moved = wait_until(START_TIMEOUT, || another_leads(&e, leader));
        assert!(moved, "no new leader after killing {leader}; {}", e.describe());
        e.restart(leader);
    }
    panic!("server {slow} did not take the role wanted (lead: {lead}); {}", e.describe());
}

#[test]
fn writes_and_synced_reads_stay_linearizable_with_a_slow_disk_on_a_follower() {
    const SLOW: u64 = 1;
    let Some(e) = ensemble_with_slow_disk(SLOW, false) else { return };
    checked_history_under(e, |f| {
        // The leader and the fast follower commit without the slow one, which logs, acks and
        // applies late: its clients' synced reads must still see every acknowledged write.
        f.serve("with a slow follower disk")?;
        // Then the fast follower dies, and every commit waits for the slow disk.
        let fast = f.followers.iter().copied().find(|&id| id != SLOW).expect("a fast follower");
        f.e.kill(fast);
        f.serve("with the slow follower needed for every commit")?;
        f.e.restart(fast);
        Ok(())
    });
}

#[test]
fn writes_and_synced_reads_stay_linearizable_with_a_slow_disk_on_the_leader() {
    let Some(e) = ensemble_with_slow_disk(3, true) else { return };
    checked_history_under(e, |f| {
        // The followers' acks make a quorum before the leader's own fsync ends: nothing may be
        // answered, on any member, before a quorum holds it.
        f.serve("with a slow leader disk")?;
        // Then the leader dies with its log behind the followers': what it answered lives on
        // in theirs. Restarted, it follows (on its slow disk) and must catch up.
        let old = f.leader;
        f.e.kill(old);
        f.serve_until("after the slow leader died", |e| another_leads(e, old))?;
        f.e.restart(old);
        Ok(())
    });
}
