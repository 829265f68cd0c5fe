//! Ensembles of real servers (3 voters and an observer unless said otherwise): leader election,
//! replication through every member, failover under load, learner sync (DIFF, SNAP, TRUNC) and
//! observers; a leader partitioned from its followers (through the harness's link proxies);
//! read-only mode.
//!
//! Flavour: Paddock by default; `PADDOCK_TARGET=zookeeper` runs the same tests against Apache
//! ZooKeeper 3.8, the reference: every test here is written against ZooKeeper's behaviour and
//! passes on it. The few assertions that read Paddock's own metrics (`paddock_sync_diff`,
//! `paddock_sync_snap`, `paddock_sync_trunc`, `paddock_last_logged_zxid`) are marked
//! "Paddock-only" and are skipped (the values printed) on ZooKeeper.
//!
//!   cargo test --release -p paddock-tests --test e2e_ensemble
//!   PADDOCK_TARGET=zookeeper cargo test --release -p paddock-tests --test e2e_ensemble
//!
//! Ensembles run one at a time (the harness serialises them), each test in well under a minute.
//! Every wait has a deadline; loops that retry a client call say so and are bounded too.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bench::client::Client as RawClient;
use node::proto::{op, Request};
use paddock_tests::ensemble::{target_flavor, Ensemble, START_TIMEOUT};
use paddock_tests::{wait_until, Flavor};
use zookeeper_client as zk;

/// The client session timeout the tests ask for (the harness's maxSessionTimeout allows it).
const SESSION: Duration = Duration::from_secs(4);
/// How long an election, a rejoin or a catch-up may take before a test fails.
const ELECTION: Duration = Duration::from_secs(30);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

fn open() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

fn ephemeral() -> zk::CreateOptions<'static> {
    zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all())
}

/// One attempt at a session on `servers`, bounded by 5 s.
async fn try_connect(servers: &str) -> Result<zk::Client, String> {
    let connector = zk::Client::connector().with_session_timeout(SESSION).with_fail_eagerly();
    match tokio::time::timeout(Duration::from_secs(5), connector.connect(servers)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no session within 5 s".into()),
    }
}

/// A session on `servers` (a connect string), retried until `timeout`: a member that is
/// electing or syncing refuses sessions for a while.
async fn connect(servers: &str, timeout: Duration) -> zk::Client {
    let deadline = Instant::now() + timeout;
    loop {
        match try_connect(servers).await {
            Ok(c) => return c,
            Err(e) if Instant::now() >= deadline => panic!("no session on {servers} within {timeout:?}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await, // retry interval; the deadline bounds it
        }
    }
}

/// Retries `call` until it succeeds or `timeout` passes (connection loss while the ensemble
/// elects). Only for idempotent calls, or ones whose retry outcome the test tolerates.
async fn retry<T, F, Fut>(what: &str, timeout: Duration, mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, zk::Error>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match tokio::time::timeout(Duration::from_secs(5), call()).await {
            Ok(Ok(v)) => return v,
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no reply within 5 s".to_string(),
        };
        if Instant::now() >= deadline {
            panic!("{what}: still failing after {timeout:?}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await; // retry interval; the deadline bounds it
    }
}

/// A create that counts NodeExists as done: for retries after a reply was lost.
async fn create_idempotent(c: &zk::Client, path: &str) -> Result<(), zk::Error> {
    match c.create(path, b"", &open()).await {
        Ok(_) | Err(zk::Error::NodeExists) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The children of `path` as seen by the member behind `c`, after a sync (so the member has
/// everything committed before the sync was issued).
async fn synced_children(c: &zk::Client, path: &str) -> BTreeSet<String> {
    c.sync(path).await.expect("sync");
    c.list_children(path).await.expect("ls").into_iter().collect()
}

/// A session on one member only.
async fn connect_to(e: &Ensemble, id: u64) -> zk::Client {
    connect(&e.connect_string(id), ELECTION).await
}

/// The voters other than `leader`, lowest id first.
fn followers_of(e: &Ensemble, leader: u64) -> Vec<u64> {
    e.voters().into_iter().filter(|&id| id != leader).collect()
}

/// Prints the sync counters a learner reports (Paddock) and the leader-side counts ZooKeeper
/// reports, so a run shows which kind of sync happened.
fn print_sync_counters(e: &Ensemble, learner: u64, leader: Option<u64>) {
    let m = e.mntr(learner);
    let get = |k: &str| m.get(k).cloned().unwrap_or_else(|| "-".into());
    eprintln!(
        "learner {learner}: paddock_sync_diff={} paddock_sync_trunc={} paddock_sync_snap={}",
        get("paddock_sync_diff"),
        get("paddock_sync_trunc"),
        get("paddock_sync_snap")
    );
    if let Some(l) = leader {
        let m = e.mntr(l);
        let get = |k: &str| m.get(k).cloned().unwrap_or_else(|| "-".into());
        eprintln!("leader {l}: zk_diff_count={} zk_snap_count={}", get("zk_diff_count"), get("zk_snap_count"));
    }
}

// ---------------------------------------------------------------------------------------------
// a. modes

#[test]
fn one_leader_two_followers_and_an_observer_and_the_highest_myid_leads_a_fresh_ensemble() {
    let e = Ensemble::from_env(3, 1, "");
    // Every voter started at once with an empty log: equal (epoch, zxid) votes, so the
    // tie-break on myid decides.
    assert_eq!(e.leader(), Some(3), "{}", e.describe());
    assert_eq!(e.mode(1).as_deref(), Some("follower"), "{}", e.describe());
    assert_eq!(e.mode(2).as_deref(), Some("follower"), "{}", e.describe());
    assert_eq!(e.mode(4).as_deref(), Some("observer"), "{}", e.describe());
    // mntr agrees with srvr.
    for (id, state) in [(1, "follower"), (2, "follower"), (3, "leader"), (4, "observer")] {
        assert_eq!(e.mntr(id).get("zk_server_state").map(String::as_str), Some(state), "server {id}");
    }
}

// ---------------------------------------------------------------------------------------------
// b. who leads after the leader dies

#[test]
fn after_the_leader_dies_the_most_up_to_date_voter_leads_even_with_a_lower_myid() {
    let mut e = Ensemble::from_env(3, 1, "");
    let rt = runtime();
    let leader = e.leader().expect("a leader");
    let followers = followers_of(&e, leader);
    let (fresh, lagging) = (followers[0], followers[1]); // fresh has the lower myid
    let c = rt.block_on(connect_to(&e, leader));
    rt.block_on(c.create("/lag", b"", &open())).expect("create /lag");

    // Freeze `lagging`, then wait until the leader drops it (ZooKeeper does after syncLimit
    // ticks without an ack, and stops sending it anything): otherwise the writes below would
    // still reach its socket buffer, it would read and log them once continued, and win the
    // then tied election on myid (ZooKeeper 3.8 does exactly that without this wait).
    e.stop(lagging);
    let frozen = Instant::now();
    let dropped = wait_until(Duration::from_secs(10), || e.mntr_i64(leader, "zk_synced_followers") == Some(1));
    eprintln!("the leader dropped the frozen follower after {} ms", frozen.elapsed().as_millis());
    assert!(
        dropped,
        "the leader did not drop the stopped follower {lagging} within 10 s (syncLimit is 5 ticks of 100 ms): \
         mntr zk_synced_followers={:?}",
        e.mntr(leader).get("zk_synced_followers")
    );
    rt.block_on(async {
        for i in 0..5 {
            c.create(&format!("/lag/n-{i}"), b"", &open()).await.expect("write with the lagging follower frozen");
        }
    });
    drop(c);
    e.kill(leader);
    e.cont(lagging);

    let new_leader = e.wait_modes(ELECTION);
    assert_eq!(new_leader, fresh, "the voter with the highest zxid must lead, whatever its myid; {}", e.describe());
    // The lagging one follows it and gets the writes it missed.
    rt.block_on(async {
        let l = connect_to(&e, lagging).await;
        assert_eq!(synced_children(&l, "/lag").await.len(), 5);
    });
    assert_eq!(e.mode(lagging).as_deref(), Some("follower"));
}

#[test]
fn after_the_leader_dies_equally_up_to_date_voters_elect_the_highest_myid() {
    let mut e = Ensemble::from_env(3, 1, "");
    let rt = runtime();
    let leader = e.leader().expect("a leader");
    let followers = followers_of(&e, leader);
    rt.block_on(async {
        let c = connect_to(&e, leader).await;
        c.create("/tie", b"", &open()).await.expect("create");
        c.set_data("/tie", b"x", None).await.expect("set");
    });
    // Both followers have applied everything the leader has (the client's closeSession
    // included), and nothing more is coming.
    let equal = wait_until(Duration::from_secs(10), || {
        let l = e.srvr_zxid(leader);
        l.is_some() && followers.iter().all(|&f| e.srvr_zxid(f) == l)
    });
    assert!(equal, "followers did not reach the leader's zxid; {}", e.describe());
    e.kill(leader);
    let new_leader = e.wait_modes(ELECTION);
    assert_eq!(new_leader, *followers.iter().max().unwrap(), "tie on zxid: the highest myid leads; {}", e.describe());
}

// ---------------------------------------------------------------------------------------------
// c. replication

#[test]
fn writes_through_every_member_are_read_on_every_member_and_sync_reads_the_latest() {
    let e = Ensemble::from_env(3, 1, "");
    let rt = runtime();
    rt.block_on(async {
        let mut clients = Vec::new();
        for id in e.ids() {
            clients.push((id, connect_to(&e, id).await));
        }
        clients[0].1.create("/rep", b"", &open()).await.expect("create /rep");
        // Followers and the observer forward writes to the leader.
        for (id, c) in &clients {
            c.create(&format!("/rep/from-{id}"), id.to_string().as_bytes(), &open())
                .await
                .unwrap_or_else(|err| panic!("write through server {id}: {err}"));
        }
        let expected: BTreeSet<String> = e.ids().iter().map(|id| format!("from-{id}")).collect();
        for (id, c) in &clients {
            assert_eq!(synced_children(c, "/rep").await, expected, "children read on server {id}");
            for w in e.ids() {
                let (data, _) = c.get_data(&format!("/rep/from-{w}")).await.expect("read");
                assert_eq!(data, w.to_string().into_bytes(), "/rep/from-{w} read on server {id}");
            }
        }
        // sync, then read on one member, sees the latest write made through another.
        clients[0].1.create("/rep/x", b"", &open()).await.expect("create /rep/x");
        for round in 0..24 {
            let (wid, writer) = &clients[round % clients.len()];
            let (rid, reader) = &clients[(round + 1 + round / clients.len()) % clients.len()];
            if wid == rid {
                continue;
            }
            let value = format!("round-{round}").into_bytes();
            writer.set_data("/rep/x", &value, None).await.expect("set");
            reader.sync("/rep/x").await.expect("sync");
            let (data, _) = reader.get_data("/rep/x").await.expect("get");
            assert_eq!(data, value, "round {round}: written through {wid}, read after sync on {rid}");
        }
    });
}

// ---------------------------------------------------------------------------------------------
// d. failover under load

/// What one writer saw.
#[derive(Default)]
struct WriterLog {
    acked: Vec<String>,
    errors: Vec<String>,
    /// When the first write sent after the kill was acknowledged.
    first_after_kill: Option<Instant>,
}

/// Creates `/load/w<writer>-<n>` one after another, first through `pinned`, and after any
/// failure through a new session on any member of `any`, until `stop`; records every
/// acknowledged path.
async fn writer(
    w: usize,
    pinned: String,
    any: String,
    stop: Arc<AtomicBool>,
    killed_at: Arc<Mutex<Option<Instant>>>,
    acked: Arc<AtomicUsize>,
) -> WriterLog {
    let mut log = WriterLog::default();
    let mut servers = pinned;
    let mut client: Option<zk::Client> = None;
    let mut n = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let Some(c) = client.as_ref() else {
            match try_connect(&servers).await {
                Ok(c) => client = Some(c),
                Err(e) => {
                    log.errors.push(format!("connect: {e}"));
                    servers = any.clone();
                    tokio::time::sleep(Duration::from_millis(20)).await; // retry interval; `stop` bounds the loop
                }
            }
            continue;
        };
        let path = format!("/load/w{w}-{n:06}");
        n += 1;
        let sent = Instant::now();
        match tokio::time::timeout(Duration::from_secs(10), c.create(&path, b"", &open())).await {
            Ok(Ok(_)) => {
                log.acked.push(path);
                acked.fetch_add(1, Ordering::Relaxed);
                let killed = *killed_at.lock().unwrap();
                if log.first_after_kill.is_none() && killed.is_some_and(|k| sent >= k) {
                    log.first_after_kill = Some(Instant::now());
                }
            }
            outcome => {
                // Unknown outcome: the write may or may not exist; it is not counted as acked.
                log.errors.push(match outcome {
                    Ok(Err(e)) => e.to_string(),
                    _ => "no reply within 10 s".into(),
                });
                client = None;
                servers = any.clone();
            }
        }
    }
    log
}

#[test]
fn acknowledged_writes_and_a_followers_ephemeral_survive_the_leaders_death_under_load() {
    let mut e = Ensemble::from_env(3, 1, "");
    let rt = runtime();
    let leader = e.leader().expect("a leader");
    let followers = followers_of(&e, leader);
    // A session on a follower that lives on: its ephemeral must survive the leader's death.
    let holder = rt.block_on(async {
        let h = connect_to(&e, followers[0]).await;
        h.create("/load", b"", &open()).await.expect("create /load");
        h.create("/holder", b"", &ephemeral()).await.expect("ephemeral");
        h
    });
    let holder_session = holder.session_id().0;

    let stop = Arc::new(AtomicBool::new(false));
    let killed_at = Arc::new(Mutex::new(None));
    let acked = Arc::new(AtomicUsize::new(0));
    let any = e.all_connect_string();
    let writers: Vec<_> = [followers[0], followers[1], leader]
        .iter()
        .enumerate()
        .map(|(w, &target)| {
            rt.spawn(writer(w, e.connect_string(target), any.clone(), stop.clone(), killed_at.clone(), acked.clone()))
        })
        .collect();

    assert!(wait_until(Duration::from_secs(20), || acked.load(Ordering::Relaxed) >= 60), "writers made no progress");
    let kill = Instant::now();
    *killed_at.lock().unwrap() = Some(kill);
    e.kill(leader);
    let new_leader = e.wait_modes(ELECTION);
    let elected = kill.elapsed();
    assert_ne!(new_leader, leader);
    let before = acked.load(Ordering::Relaxed);
    let resumed = wait_until(ELECTION, || acked.load(Ordering::Relaxed) >= before + 60);
    stop.store(true, Ordering::Relaxed);
    let logs: Vec<WriterLog> = rt.block_on(async {
        let mut logs = Vec::new();
        for w in writers {
            logs.push(w.await.expect("writer task"));
        }
        logs
    });
    assert!(
        resumed,
        "writes did not resume after the failover; errors: {:?}",
        logs.iter().map(|l| &l.errors).collect::<Vec<_>>()
    );
    let first = logs.iter().filter_map(|l| l.first_after_kill).min().expect("a write after the kill");
    eprintln!(
        "failover: kill -> new leader {new_leader} with every live member serving: {} ms; kill -> first successful write: {} ms \
         ({} writes acked, {} failed or unknown)",
        elapsed_ms(kill, kill + elected),
        elapsed_ms(kill, first),
        logs.iter().map(|l| l.acked.len()).sum::<usize>(),
        logs.iter().map(|l| l.errors.len()).sum::<usize>()
    );

    let acked: BTreeSet<String> =
        logs.iter().flat_map(|l| l.acked.iter().map(|p| p["/load/".len()..].to_string())).collect();
    rt.block_on(async {
        let mut views = Vec::new();
        for id in e.live() {
            let c = connect_to(&e, id).await;
            let children = retry("sync and list /load", ELECTION, || async {
                c.sync("/load").await?;
                c.list_children("/load").await
            })
            .await;
            let children: BTreeSet<String> = children.into_iter().collect();
            let missing: Vec<&String> = acked.difference(&children).collect();
            assert!(missing.is_empty(), "server {id} lacks acknowledged writes: {missing:?}");
            let stat = c.check_stat("/holder").await.expect("exists").unwrap_or_else(|| {
                panic!("server {id}: the ephemeral of a live session on follower {} is gone", followers[0])
            });
            assert_eq!(stat.ephemeral_owner, holder_session);
            views.push((id, children));
        }
        for (id, v) in &views[1..] {
            assert_eq!(v, &views[0].1, "servers {} and {id} disagree on /load", views[0].0);
        }
        // The holder's session itself is alive (it reconnected to its follower).
        retry("the holder's session", ELECTION, || holder.check_stat("/holder")).await.expect("still there");
    });
}

fn elapsed_ms(from: Instant, to: Instant) -> u128 {
    to.saturating_duration_since(from).as_millis()
}

// ---------------------------------------------------------------------------------------------
// e. learner sync

/// Kills a follower, writes `writes` znodes, restarts it; returns (ensemble, follower, leader)
/// once the follower serves again with exactly the leader's data.
fn restart_a_follower_behind(extra: &str, writes: usize, dir: &str) -> (Ensemble, u64, u64) {
    let mut e = Ensemble::from_env(3, 1, extra);
    let rt = runtime();
    let leader = e.leader().expect("a leader");
    let follower = followers_of(&e, leader)[0];
    let c = rt.block_on(connect_to(&e, leader));
    rt.block_on(c.create(dir, b"", &open())).expect("create");
    e.kill(follower);
    rt.block_on(async {
        for i in 0..writes {
            c.create(&format!("{dir}/n-{i:04}"), &i.to_be_bytes(), &open()).await.expect("write");
        }
    });
    e.restart(follower);
    assert_eq!(e.mode(follower).as_deref(), Some("follower"), "{}", e.describe());
    rt.block_on(async {
        let f = connect_to(&e, follower).await;
        let on_follower = synced_children(&f, dir).await;
        assert_eq!(on_follower.len(), writes);
        assert_eq!(on_follower, synced_children(&c, dir).await, "the follower's data differs from the leader's");
        let last = format!("{dir}/n-{:04}", writes - 1);
        assert_eq!(f.get_data(&last).await.expect("read").0, (writes - 1).to_be_bytes());
    });
    // Once the clients' sessions are closed nothing is written any more: the follower reaches
    // exactly the leader's zxid.
    let same = wait_until(Duration::from_secs(10), || {
        let l = e.srvr_zxid(leader);
        l.is_some() && e.srvr_zxid(follower) == l
    });
    assert!(same, "follower zxid {:?}, leader {:?}", e.srvr_zxid(follower), e.srvr_zxid(leader));
    (e, follower, leader)
}

#[test]
fn a_restarted_follower_catches_up_by_diff() {
    let (e, follower, leader) = restart_a_follower_behind("", 200, "/diff");
    print_sync_counters(&e, follower, Some(leader));
    if e.flavor == Flavor::Paddock {
        // Paddock-only: the learner-side sync counters.
        let diff = e.mntr_i64(follower, "paddock_sync_diff");
        assert!(diff.is_some_and(|d| d >= 1), "paddock_sync_diff={diff:?} after a restart 200 txns behind");
    }
}

#[test]
fn a_follower_behind_the_sync_window_catches_up_by_snapshot() {
    // paddock.syncWindowTxns (Paddock-only key; ZooKeeper takes it as an unused system
    // property): the leader keeps 50 txns in memory to sync learners by DIFF, so a follower 200
    // behind needs a snapshot.
    let (e, follower, leader) = restart_a_follower_behind("paddock.syncWindowTxns=50", 200, "/snap");
    print_sync_counters(&e, follower, Some(leader));
    if e.flavor == Flavor::Paddock {
        // Paddock-only.
        let snap = e.mntr_i64(follower, "paddock_sync_snap");
        assert!(snap.is_some_and(|s| s >= 1), "paddock_sync_snap={snap:?} with a 50-txn window, 200 behind");
    }
}

/// Whether the leader has logged something since `before` (its srvr Zxid, Paddock's
/// `paddock_last_logged_zxid`, or on ZooKeeper a proposal sent and an fsync done).
struct LoggedProbe {
    zxid: Option<i64>,
    logged: Option<i64>,
    proposals: Option<i64>,
    fsyncs: Option<i64>,
}

impl LoggedProbe {
    fn read(e: &Ensemble, id: u64) -> LoggedProbe {
        let m = e.mntr(id);
        let get = |k: &str| m.get(k).and_then(|v| v.parse::<i64>().ok());
        LoggedProbe {
            zxid: e.srvr_zxid(id),
            logged: get("paddock_last_logged_zxid"),
            proposals: get("zk_proposal_count"),
            fsyncs: get("zk_cnt_fsynctime"),
        }
    }

    fn advanced_since(&self, before: &LoggedProbe) -> bool {
        let up = |a: Option<i64>, b: Option<i64>| matches!((a, b), (Some(a), Some(b)) if a > b);
        up(self.zxid, before.zxid)
            || up(self.logged, before.logged)
            || (up(self.proposals, before.proposals) && up(self.fsyncs, before.fsyncs))
    }
}

/// A leader logs a proposal nobody acknowledges and dies; the others elect a leader without
/// it (and, if `write_in_new_epoch`, commit a write in the new epoch); the old leader restarts,
/// rejoins as a follower and must drop the proposal.
///
/// ZooKeeper 3.8 syncs it by SNAP when the new epoch has a txn ("Cannot send TRUNC to peer ...
/// peer zxid is from different epoch": it never truncates across an epoch boundary) and by
/// TRUNC when the new leader has nothing past the old epoch (the learner is ahead of the
/// leader's whole history).
fn old_leader_with_an_unacknowledged_proposal_rejoins(write_in_new_epoch: bool) {
    let mut e = Ensemble::from_env(3, 1, "");
    let rt = runtime();
    let old = e.leader().expect("a leader");
    let followers = followers_of(&e, old);
    // One blocking session on the leader does everything, so that no txn of another session
    // (a closeSession sent in the background, say) is in flight when the followers freeze. It is
    // opened while there is a quorum: creating a session is a txn.
    let create = |path: &str| Request::Create {
        path: path.into(),
        data: vec![],
        acl: engine::acl::open_acl_unsafe(),
        flags: 0,
        ttl: -1,
    };
    let mut raw = RawClient::connect(e.addr(old), 4000).expect("raw session on the leader");
    for path in ["/trunc".to_string()].into_iter().chain((0..5).map(|i| format!("/trunc/acked-{i}"))) {
        assert_eq!(raw.call(op::CREATE, create(&path)).expect("create").err(), 0, "create {path}");
    }
    let before = LoggedProbe::read(&e, old);
    for &f in &followers {
        e.stop(f);
    }
    // A create the leader proposes and logs but nobody can acknowledge; its reply never comes.
    let xid = raw.next_xid();
    raw.send(xid, op::CREATE, &create("/trunc/never")).expect("send the create");
    let logged = wait_until(Duration::from_secs(5), || LoggedProbe::read(&e, old).advanced_since(&before));
    assert!(logged, "the leader did not log the proposal (srvr Zxid, paddock_last_logged_zxid) within 5 s");
    e.kill(old);
    // The frozen followers never ran after the proposal was sent, but it sits unread in their
    // sockets: continued (SIGCONT), they would read and log it, and the next epoch would rightly
    // commit it (ZooKeeper 3.8 does: /trunc/never then exists everywhere). SIGKILL discards
    // those buffers; they restart from their own logs, which do not have it.
    for &f in &followers {
        e.kill(f);
    }
    for &f in &followers {
        e.start(f);
    }
    let new_leader = e.wait_modes(ELECTION);
    assert_ne!(new_leader, old);
    if write_in_new_epoch {
        rt.block_on(async {
            let c = connect_to(&e, new_leader).await;
            retry("write after the failover", ELECTION, || create_idempotent(&c, "/trunc/after")).await;
        });
    }

    e.restart(old);
    assert_eq!(e.mode(old).as_deref(), Some("follower"), "the old leader rejoins as a follower; {}", e.describe());
    rt.block_on(async {
        let c = connect_to(&e, old).await;
        let children = synced_children(&c, "/trunc").await;
        let after = write_in_new_epoch.then(|| "after".to_string());
        let expected: BTreeSet<String> = (0..5).map(|i| format!("acked-{i}")).chain(after).collect();
        assert_eq!(children, expected, "the never-acknowledged /trunc/never must be gone from the old leader");
        assert_eq!(c.check_stat("/trunc/never").await.expect("exists"), None);
    });
    print_sync_counters(&e, old, Some(new_leader));
    if e.flavor == Flavor::Paddock {
        // Paddock-only. A SNAP would also be a correct sync (ZooKeeper sends one when the new
        // epoch has a txn); TRUNC is what is expected of Paddock in both cases.
        let trunc = e.mntr_i64(old, "paddock_sync_trunc");
        assert!(trunc.is_some_and(|t| t >= 1), "paddock_sync_trunc={trunc:?}");
    }
}

#[test]
fn an_old_leaders_unacknowledged_proposal_is_truncated_when_it_rejoins_after_new_writes() {
    old_leader_with_an_unacknowledged_proposal_rejoins(true);
}

#[test]
fn an_old_leaders_unacknowledged_proposal_is_truncated_when_it_rejoins_a_new_epoch_without_writes() {
    old_leader_with_an_unacknowledged_proposal_rejoins(false);
}

// ---------------------------------------------------------------------------------------------
// f. observers

#[test]
fn the_observer_serves_reads_forwards_writes_and_its_death_does_not_affect_writes() {
    let mut e = Ensemble::from_env(3, 1, "");
    let rt = runtime();
    let leader = e.leader().expect("a leader");
    let observer = e.observers()[0];
    rt.block_on(async {
        let o = connect_to(&e, observer).await;
        let l = connect_to(&e, leader).await;
        o.create("/obs", b"via-observer", &open()).await.expect("write through the observer");
        l.sync("/obs").await.expect("sync");
        assert_eq!(l.get_data("/obs").await.expect("read on the leader").0, b"via-observer");
        l.set_data("/obs", b"via-leader", None).await.expect("set");
        o.sync("/obs").await.expect("sync");
        assert_eq!(o.get_data("/obs").await.expect("read on the observer").0, b"via-leader");
    });

    e.kill(observer);
    rt.block_on(async {
        for id in e.voters() {
            let c = connect_to(&e, id).await;
            let path = format!("/obs/v{id}");
            let write = tokio::time::timeout(Duration::from_secs(5), c.create(&path, b"", &open())).await;
            write.expect("write within 5 s with the observer dead").expect("write with the observer dead");
        }
    });
    assert_eq!(e.try_wait_modes(Duration::from_secs(1)), Some(leader), "the observer's death moved the leader");

    e.restart(observer);
    assert_eq!(e.mode(observer).as_deref(), Some("observer"));
    rt.block_on(async {
        let o = connect_to(&e, observer).await;
        let expected: BTreeSet<String> = e.voters().iter().map(|id| format!("v{id}")).collect();
        assert_eq!(synced_children(&o, "/obs").await, expected, "the restarted observer caught up");
    });
}

#[test]
fn without_a_voter_quorum_writes_through_the_observer_fail_until_a_voter_returns() {
    let mut e = Ensemble::from_env(3, 1, "");
    let rt = runtime();
    let leader = e.leader().expect("a leader");
    let followers = followers_of(&e, leader);
    let observer = e.observers()[0];
    let o = rt.block_on(async {
        let o = connect_to(&e, observer).await;
        o.create("/q", b"", &open()).await.expect("write through the observer");
        o
    });
    for &f in &followers {
        e.kill(f);
    }
    assert!(e.is_running(observer) && e.is_running(leader));
    // Two of three voters are gone: nothing can commit, whatever the observer and the leader do.
    let write = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(5), o.create("/q/no-quorum", b"", &open())).await });
    assert!(!matches!(write, Ok(Ok(_))), "a write committed without a quorum of voters: {write:?}");
    eprintln!("write through the observer without a quorum: {write:?}");
    let fresh = rt.block_on(async {
        match try_connect(&e.connect_string(observer)).await {
            Ok(c) => tokio::time::timeout(Duration::from_secs(3), c.create("/q/no-quorum-2", b"", &open())).await.ok(),
            Err(_) => None,
        }
    });
    assert!(!matches!(fresh, Some(Ok(_))), "a new session's write committed without a quorum: {fresh:?}");
    assert!(e.is_running(observer), "the observer stays up without a quorum");

    // One voter back: a quorum again, and the observer forwards writes again.
    e.start(followers[0]);
    e.wait_modes(ELECTION);
    rt.block_on(async {
        let c = connect_to(&e, observer).await;
        retry("write through the observer after a voter returned", ELECTION, || create_idempotent(&c, "/q/back")).await;
        c.sync("/q").await.expect("sync");
        assert!(c.check_stat("/q/back").await.expect("exists").is_some());
    });
}

// ---------------------------------------------------------------------------------------------
// g. partition

/// How long a leader cut off from its followers may keep saying it leads: it must notice within
/// about syncLimit × tickTime (5 × 100 ms here); the bound is generous for a loaded machine.
const STEP_DOWN: Duration = Duration::from_secs(5);

/// The voter that leads among `ids` while the others follow it; None otherwise.
fn leader_among(e: &Ensemble, ids: &[u64]) -> Option<u64> {
    let modes: Vec<(u64, Option<String>)> = ids.iter().map(|&id| (id, e.mode(id))).collect();
    let leaders: Vec<u64> = modes.iter().filter(|(_, m)| m.as_deref() == Some("leader")).map(|(id, _)| *id).collect();
    let all_follow = modes.iter().all(|(id, m)| leaders.contains(id) || m.as_deref() == Some("follower"));
    match leaders[..] {
        [one] if all_follow => Some(one),
        _ => None,
    }
}

/// The whole tree under `path` (paths and data) as the member behind `c` has it, after a sync.
async fn synced_tree(c: &zk::Client, path: &str) -> Vec<(String, Vec<u8>)> {
    c.sync(path).await.expect("sync");
    let mut out = Vec::new();
    let mut todo = vec![path.to_string()];
    while let Some(p) = todo.pop() {
        let (data, _) = c.get_data(&p).await.unwrap_or_else(|err| panic!("get {p}: {err}"));
        out.push((p.clone(), data));
        for child in c.list_children(&p).await.unwrap_or_else(|err| panic!("ls {p}: {err}")) {
            todo.push(if p == "/" { format!("/{child}") } else { format!("{p}/{child}") });
        }
    }
    out.sort();
    out
}

#[test]
fn a_leader_cut_off_from_both_followers_steps_down_and_rejoins_with_the_majoritys_history() {
    let e = Ensemble::proxied_from_env(3, 0, "");
    let rt = runtime();
    let old = e.leader().expect("a leader");
    let followers = followers_of(&e, old);
    let on_old = rt.block_on(async {
        let c = connect_to(&e, old).await;
        c.create("/part", b"", &open()).await.expect("create /part");
        c.create("/part/before", b"before", &open()).await.expect("create /part/before");
        c
    });

    e.isolate(old);
    let cut = Instant::now();
    // A write sent to the old leader after the cut, through a client on its own client port
    // (not proxied): no quorum can acknowledge it.
    let minority_write = rt.spawn(async move {
        let r = tokio::time::timeout(Duration::from_secs(5), on_old.create("/part/minority", b"", &open())).await;
        (r.map(|r| r.map(|_| ())), on_old)
    });
    let stepped_down = wait_until(STEP_DOWN, || e.mode(old).as_deref() != Some("leader"));
    let step_down = cut.elapsed();
    assert!(
        stepped_down,
        "the old leader {old} still says it leads {STEP_DOWN:?} after being cut off from both followers; {}",
        e.describe()
    );
    let (write, on_old) = rt.block_on(minority_write).expect("minority write task");
    assert!(!matches!(write, Ok(Ok(()))), "a write to the cut-off old leader succeeded: {write:?}");
    drop(on_old);

    // The two followers elect one of themselves and take writes.
    let mut new_leader = None;
    let elected = wait_until(ELECTION, || {
        new_leader = leader_among(&e, &followers);
        new_leader.is_some()
    });
    let new_leader = match (elected, new_leader) {
        (true, Some(l)) => l,
        _ => panic!("the two followers did not elect a leader among themselves within {ELECTION:?}; {}", e.describe()),
    };
    let elected_after = cut.elapsed();
    rt.block_on(async {
        let c = connect_to(&e, new_leader).await;
        retry("write on the majority side", ELECTION, || create_idempotent(&c, "/part/majority")).await;
        let other = followers.iter().copied().find(|&f| f != new_leader).expect("the other follower");
        let f = connect_to(&e, other).await;
        retry("write through the majority's follower", ELECTION, || create_idempotent(&f, "/part/majority-2")).await;
    });
    assert_ne!(e.mode(old).as_deref(), Some("leader"), "the cut-off old leader leads again; {}", e.describe());
    eprintln!(
        "partition: old leader {old} stopped leading {} ms after the cut; followers elected {new_leader} after {} ms; \
         write to the old leader: {write:?}; connections refused old->others {}, others->old {}",
        step_down.as_millis(),
        elected_after.as_millis(),
        e.refused(old, followers[0]) + e.refused(old, followers[1]),
        e.refused(followers[0], old) + e.refused(followers[1], old),
    );

    e.heal_all();
    let healed = Instant::now();
    let rejoined = wait_until(Duration::from_secs(60), || e.mode(old).as_deref() == Some("follower"));
    assert!(rejoined, "the old leader {old} did not rejoin as a follower within 60 s of the heal; {}", e.describe());
    eprintln!("heal: old leader {old} follows again after {} ms", healed.elapsed().as_millis());
    rt.block_on(async {
        let o = connect_to(&e, old).await;
        let l = connect_to(&e, new_leader).await;
        // The majority's history is on the old leader...
        o.sync("/part").await.expect("sync");
        assert!(o.check_stat("/part/majority").await.expect("exists").is_some(), "the old leader lacks /part/majority");
        assert!(
            o.check_stat("/part/majority-2").await.expect("exists").is_some(),
            "the old leader lacks /part/majority-2"
        );
        // ... and nothing the majority lacks: the write it took alone is gone, and the trees match.
        for (id, c) in [(old, &o), (new_leader, &l)] {
            assert_eq!(c.check_stat("/part/minority").await.expect("exists"), None, "/part/minority on server {id}");
        }
        // (Under /part only: ZooKeeper's /zookeeper/config holds each member's own server lines,
        // which differ here by design.)
        assert_eq!(
            synced_tree(&o, "/part").await,
            synced_tree(&l, "/part").await,
            "the old leader's /part differs from the new leader's"
        );
        assert_eq!(synced_children(&o, "/").await, synced_children(&l, "/").await, "the old leader's / differs");
    });
    print_sync_counters(&e, old, Some(new_leader));
    assert_eq!(leader_among(&e, &e.voters()), Some(new_leader), "{}", e.describe());
}

// ---------------------------------------------------------------------------------------------
// h. read-only mode (tests/python/test_ensemble.py checks the same through kazoo)

#[test]
fn a_voter_without_a_quorum_serves_read_only_sessions_until_the_quorum_returns() {
    // readonlymode.enabled is a zoo.cfg key for Paddock; ZooKeeper reads it only as a system
    // property. ZooKeeper (3.6.2 on, ZOOKEEPER-3864) also serves read-only clients only with
    // local sessions: without localSessionsEnabled its read-only server answers their
    // ConnectRequest with NOTREADONLY. Paddock accepts those two keys and ignores them.
    let mut e = Ensemble::configure(
        target_flavor(),
        3,
        0,
        "readonlymode.enabled=true\nlocalSessionsEnabled=true\nlocalSessionsUpgradingEnabled=true",
    );
    e.set_zookeeper_flags(&["-Dreadonlymode.enabled=true"]);
    for id in e.ids() {
        e.start(id);
    }
    e.wait_modes(START_TIMEOUT);
    let rt = runtime();
    let leader = e.leader().expect("a leader");
    let survivor = followers_of(&e, leader)[0];
    let others: Vec<u64> = e.voters().into_iter().filter(|&id| id != survivor).collect();
    rt.block_on(async {
        let c = connect_to(&e, survivor).await;
        c.create("/ro", b"kept", &open()).await.expect("create /ro");
    });
    for &id in &others {
        e.kill(id);
    }
    let killed = Instant::now();
    // max(2 s, tickTime) without a quorum, once the survivor notices it has none.
    let ro = wait_until(Duration::from_secs(30), || e.four_letter(survivor, "isro").as_deref() == Some("ro"));
    assert!(ro, "isro did not say ro within 30 s of losing the quorum: {:?}", e.four_letter(survivor, "isro"));
    eprintln!("read-only {} ms after the kill", killed.elapsed().as_millis());
    assert_eq!(e.mode(survivor).as_deref(), Some("read-only"), "srvr Mode");
    rt.block_on(async {
        let connector = zk::Client::connector().with_session_timeout(SESSION).with_readonly(true).with_fail_eagerly();
        let c = tokio::time::timeout(Duration::from_secs(10), connector.connect(&e.connect_string(survivor)))
            .await
            .expect("a read-only session within 10 s")
            .expect("a read-only session");
        assert!(c.session().is_readonly(), "the session is not read-only");
        assert_eq!(c.get_data("/ro").await.expect("read on the read-only server").0, b"kept");
        let write = c.create("/ro/w", b"", &open()).await;
        assert!(matches!(write, Err(zk::Error::NotReadOnly)), "write on the read-only server: {write:?}");
        let normal = try_connect(&e.connect_string(survivor)).await;
        assert!(normal.is_err(), "a normal (not read-only) client got a session on the read-only server");
    });

    for &id in &others {
        e.start(id);
    }
    let rw = wait_until(ELECTION, || e.four_letter(survivor, "isro").as_deref() == Some("rw"));
    assert!(rw, "isro did not say rw again within {ELECTION:?} of the quorum's return; {}", e.describe());
    rt.block_on(async {
        let c = connect_to(&e, survivor).await;
        retry("write after the quorum returned", ELECTION, || create_idempotent(&c, "/ro/after")).await;
    });
}
