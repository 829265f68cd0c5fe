//! Core 0: the protocol core (`Server`), the log it writes through, and the rule that nothing
//! leaves the server before the txns it reflects are durable.
//!
//! Core 0 applies each txn to the tree at once and queues its record for the log. Every frame
//! produced (replies, watch events, reads included) is held with the zxid of the last txn applied
//! when it was produced, and released once the log is durable up to that zxid. So nothing a
//! client sees can be lost by a crash, and since those zxids only grow, holding keeps every
//! connection's order. Group commit falls out: whatever was applied while the previous
//! write + fdatasync was in flight becomes the next batch, with no timer.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use engine::wal::{Wal, WalSettings};

use crate::config::Config;
use crate::fourlw;
use crate::outbox::Outbox;
use crate::peer::QuorumPeer;
use crate::persist::{Dirs, SnapshotJob};
use crate::runtime::{wall_ms, FromTree, Local, ToTree};
use crate::server::{Action, ConnId, Server};

/// The largest batch one log write carries.
const LOG_BATCH_MAX_BYTES: usize = 1 << 20;
/// Paths a snapshot serialises between yields to the rest of core 0.
const SNAPSHOT_CHUNK_NODES: usize = 1024;

/// Durability counters for mntr and metrics.
pub struct LogStats {
    pub fsyncs: u64,
    pub txns: u64,
    pub fsync_latency_us: hdrhistogram::Histogram<u64>,
    pub snapshots: u64,
    pub last_snapshot_zxid: i64,
}

impl Default for LogStats {
    fn default() -> Self {
        LogStats {
            fsyncs: 0,
            txns: 0,
            fsync_latency_us: hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 3)
                .expect("constant histogram bounds are valid"),
            snapshots: 0,
            last_snapshot_zxid: 0,
        }
    }
}

/// Request latency as ZooKeeper's `ServerStats` reports it (kept in microseconds, shown in ms).
#[derive(Debug, Default, Clone, Copy)]
pub struct Latency {
    pub count: u64,
    pub total_us: u64,
    pub min_us: u64,
    pub max_us: u64,
}

impl Latency {
    fn record(&mut self, us: u64) {
        self.min_us = if self.count == 0 { us } else { self.min_us.min(us) };
        self.max_us = self.max_us.max(us);
        self.total_us += us;
        self.count += 1;
    }

    pub fn min_ms(&self) -> u64 {
        self.min_us / 1000
    }

    pub fn max_ms(&self) -> u64 {
        self.max_us / 1000
    }

    pub fn avg_ms(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.total_us as f64 / self.count as f64 / 1000.0
        }
    }
}

/// Which request, received when, a held batch of frames answers: for latency.
type Origin = Option<(ConnId, Instant)>;

/// Core 0's state.
pub(crate) struct TreeCore {
    pub(crate) server: Server,
    started: Instant,
    config: Rc<Config>,
    pub(crate) local: Option<Rc<Local>>,
    pub(crate) remote: Vec<Option<Rc<Outbox<FromTree>>>>,
    per_core_connections: Vec<usize>,
    per_ip_connections: HashMap<IpAddr, usize>,
    next_conn_id: u64,
    /// The log is durable up to here.
    pub(crate) durable_zxid: i64,
    /// Frames waiting for the log (or, on a leader, for the commit), with the zxid they need
    /// and the request they answer.
    pub(crate) held: VecDeque<(i64, Vec<Action>, Origin)>,
    /// This server's part in the ensemble's protocol; None standalone.
    pub(crate) peer: Option<QuorumPeer>,
    /// Set to make the log task write what is pending and end, handing back the log.
    pub(crate) log_closing: bool,
    /// The ensemble this server belongs to, if any.
    pub(crate) ensemble: Option<Rc<crate::ensemble::Ensemble>>,
    pub(crate) latency: Latency,
    pub(crate) conn_latency: HashMap<ConnId, Latency>,
    /// Wakes the log task.
    pub(crate) log_signal: Rc<Outbox<()>>,
    /// Wakes a snapshot waiting for the log to cover what it captured.
    durable_signal: Rc<Outbox<()>>,
    pub(crate) log_stats: LogStats,
    txns_since_snapshot: u64,
    snapshot_threshold: u64,
    pub(crate) snapshot_running: bool,
}

impl TreeCore {
    pub(crate) fn new(server: Server, config: Rc<Config>, cores: usize) -> TreeCore {
        let durable_zxid = server.tree().last_zxid();
        let mut core = TreeCore {
            server,
            started: Instant::now(),
            config,
            local: None,
            remote: (0..cores).map(|c| (c > 0).then(|| Rc::new(Outbox::default()))).collect(),
            per_core_connections: vec![0; cores],
            per_ip_connections: HashMap::new(),
            next_conn_id: 0,
            durable_zxid,
            held: VecDeque::new(),
            peer: None,
            log_closing: false,
            ensemble: None,
            latency: Latency::default(),
            conn_latency: HashMap::new(),
            log_signal: Rc::new(Outbox::default()),
            durable_signal: Rc::new(Outbox::default()),
            log_stats: LogStats::default(),
            txns_since_snapshot: 0,
            snapshot_threshold: 0,
            snapshot_running: false,
        };
        core.roll_snapshot_threshold();
        core
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// ZooKeeper's jitter: a snapshot after snapCount/2 + rand(snapCount/2) txns, so servers of
    /// an ensemble do not all snapshot at once.
    fn roll_snapshot_threshold(&mut self) {
        let half = (self.config.snap_count / 2).max(1);
        let jitter = (wall_ms() as u64 ^ (self.durable_zxid as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)) % half;
        self.snapshot_threshold = half + jitter;
    }

    pub(crate) fn handle(&mut self, msg: ToTree) {
        let mut out = Vec::new();
        let (now, wall) = (self.now_ms(), wall_ms());
        let mut origin = None;
        match msg {
            ToTree::Connect { conn, remote, req } => self.server.connect(conn, remote, &req, now, wall, &mut out),
            ToTree::Request { conn, packet, received } => {
                origin = Some((conn, received));
                self.server.request(conn, packet, now, wall, &mut out)
            }
            ToTree::FourLetter { conn, cmd } => {
                let text = self.four_letter(cmd);
                // Four-letter words carry no data a crash could take back: no need to hold them.
                self.send_now(vec![Action::Send { conn, frame: text.into_bytes() }, Action::Close { conn }]);
                return;
            }
            ToTree::Closed { conn, remote } => {
                self.server.disconnected(conn);
                self.conn_latency.remove(&conn);
                if let Some(n) = self.per_core_connections.get_mut(conn.core as usize) {
                    *n = n.saturating_sub(1);
                }
                if let Some(n) = self.per_ip_connections.get_mut(&remote) {
                    *n -= 1;
                    if *n == 0 {
                        self.per_ip_connections.remove(&remote);
                    }
                }
            }
        }
        self.route(out, origin);
    }

    /// What the runtime knows that the protocol core does not, for reports.
    pub(crate) fn info(&self) -> fourlw::RuntimeInfo<'_> {
        fourlw::RuntimeInfo {
            per_core_connections: &self.per_core_connections,
            uptime_ms: self.now_ms(),
            config: &self.config,
            log: &self.log_stats,
            latency: &self.latency,
            conn_latency: &self.conn_latency,
            outstanding: self.held.len(),
            ensemble: self.ensemble_info(),
        }
    }

    /// `srst`: zeroes latency and packet counters.
    pub(crate) fn reset_server_stats(&mut self) {
        self.latency = Latency::default();
        self.server.reset_counters();
    }

    /// `crst`: zeroes every connection's counters.
    pub(crate) fn reset_connection_stats(&mut self) {
        self.conn_latency.clear();
        self.server.reset_connection_stats();
    }

    fn four_letter(&mut self, cmd: &str) -> String {
        match cmd {
            "srst" => self.reset_server_stats(),
            "crst" => self.reset_connection_stats(),
            _ => {}
        }
        fourlw::run(cmd, &self.server, &self.info())
    }

    pub(crate) fn tick(&mut self) {
        let mut out = Vec::new();
        self.server.tick(self.now_ms(), wall_ms(), &mut out);
        self.route(out, None);
    }

    /// Holds actions until every txn applied so far is durable (standalone) or committed
    /// (leader); a learner applies only committed txns, so its frames go at once. Requests a
    /// learner forwards go to the leader at once.
    pub(crate) fn route(&mut self, mut actions: Vec<Action>, origin: Origin) {
        if self.server.has_pending_log() {
            self.log_signal.push(());
        }
        if actions.iter().any(|a| matches!(a, Action::Forward(_))) {
            let mut rest = Vec::with_capacity(actions.len());
            for a in actions {
                match a {
                    Action::Forward(f) => self.peer_event(|p, _, _, out| p.forward(f, out)),
                    other => rest.push(other),
                }
            }
            actions = rest;
        }
        if actions.is_empty() {
            return;
        }
        let needed = self.server.tree().last_zxid();
        let releasable = match &self.peer {
            None => self.durable_zxid,
            Some(p) => p.releasable(),
        };
        if needed <= releasable && self.held.is_empty() {
            self.answered(origin);
            self.send_now(actions);
        } else {
            self.held.push_back((needed, actions, origin));
        }
    }

    fn answered(&mut self, origin: Origin) {
        if let Some((conn, received)) = origin {
            let us = received.elapsed().as_micros() as u64;
            self.latency.record(us);
            self.conn_latency.entry(conn).or_default().record(us);
        }
    }

    /// The log is durable up to `zxid`: release what waited for it, or count it as this
    /// server's ack.
    fn durable(&mut self, zxid: i64) {
        debug_assert!(zxid >= self.durable_zxid, "durability went back");
        self.durable_zxid = zxid;
        if self.snapshot_running {
            self.durable_signal.push(());
        }
        if self.peer.is_none() {
            self.release(zxid);
        } else {
            self.peer_event(|p, _, c, out| p.on_durable(zxid, c, out));
        }
    }

    /// Sends what waited for `zxid` (durable, or committed on a leader).
    pub(crate) fn release(&mut self, zxid: i64) {
        while self.held.front().is_some_and(|(needed, _, _)| *needed <= zxid) {
            if let Some((_, actions, origin)) = self.held.pop_front() {
                self.answered(origin);
                self.send_now(actions);
            }
        }
    }

    pub(crate) fn send_now(&self, actions: Vec<Action>) {
        let mut by_core: Vec<Vec<Action>> = (0..self.remote.len()).map(|_| Vec::new()).collect();
        for a in actions {
            let core = match &a {
                Action::Send { conn, .. } | Action::Close { conn } => conn.core as usize,
                Action::Forward(_) => continue,
            };
            if let Some(v) = by_core.get_mut(core) {
                v.push(a);
            }
        }
        for (core, actions) in by_core.into_iter().enumerate() {
            if actions.is_empty() {
                continue;
            }
            if core == 0 {
                if let Some(l) = &self.local {
                    l.deliver(actions);
                }
            } else if let Some(Some(o)) = self.remote.get(core) {
                o.push(FromTree::Actions(actions));
            }
        }
    }

    /// Admits a new connection and picks the core with the fewest (`maxClientCnxns` per address).
    pub(crate) fn admit(&mut self, remote: IpAddr) -> Option<ConnId> {
        let max = self.config.max_client_cnxns;
        let count = self.per_ip_connections.entry(remote).or_insert(0);
        if max > 0 && *count >= max {
            tracing::warn!(%remote, max, "too many connections from this address");
            return None;
        }
        *count += 1;
        let core = (0..self.per_core_connections.len()).min_by_key(|&c| self.per_core_connections[c]).unwrap_or(0);
        self.per_core_connections[core] += 1;
        self.next_conn_id += 1;
        Some(ConnId { core: core as u32, id: self.next_conn_id })
    }
}

/// Stops the process: the tree is ahead of a log that cannot be written, so serving on would
/// acknowledge writes that a restart loses.
pub(crate) fn fatal(what: &str, e: impl std::fmt::Display) -> ! {
    tracing::error!(error = %e, "{what}; stopping, as the log can no longer be trusted");
    eprintln!("paddock: {what}: {e}");
    std::process::exit(1)
}

/// The log task: drains applied txns into group-committed writes until the log is closed
/// (an ensemble member changing role), then hands the log back.
pub(crate) async fn log_task(tree: Rc<RefCell<TreeCore>>, mut wal: Wal, dirs: Dirs) -> Wal {
    let signal = tree.borrow().log_signal.clone();
    // Half a segment at most, so a batch always fits a fresh segment.
    let batch_max_bytes = (wal.segment_bytes() / 2 - engine::log::BLOCK_BYTES).min(LOG_BATCH_MAX_BYTES);
    let mut wake = Vec::new();
    while signal.drain(&mut wake).await {
        wake.clear();
        loop {
            let batch = tree.borrow_mut().server.take_log(batch_max_bytes);
            let Some(batch) = batch else { break };
            tree.borrow_mut().peer_event(|p, _, _, out| p.on_proposed(&batch, out));
            let started = Instant::now();
            if let Err(e) = wal.append(&batch.bytes, batch.first_zxid()).await {
                fatal("cannot write the transaction log", e);
            }
            let snapshot_due = {
                let mut t = tree.borrow_mut();
                let stats = &mut t.log_stats;
                stats.fsyncs += 1;
                stats.txns += batch.records.len() as u64;
                let _ = stats.fsync_latency_us.record(started.elapsed().as_micros().max(1) as u64);
                t.durable(batch.last_zxid());
                t.txns_since_snapshot += batch.records.len() as u64;
                let due = t.txns_since_snapshot >= t.snapshot_threshold && !t.snapshot_running;
                if due {
                    t.snapshot_running = true;
                    t.txns_since_snapshot = 0;
                    t.roll_snapshot_threshold();
                }
                due
            };
            // Spawned with no borrow held: the new task may run before this one resumes.
            if snapshot_due {
                glommio::spawn_local(snapshot_task(tree.clone(), dirs.clone())).detach();
            }
        }
        if tree.borrow().log_closing {
            break;
        }
    }
    wal
}

/// Writes a fuzzy snapshot in chunks between other work on core 0. It is published only once the
/// log is durable past every txn it may contain, so a snapshot never holds a txn the log lacks.
async fn snapshot_task(tree: Rc<RefCell<TreeCore>>, dirs: Dirs) {
    let started = Instant::now();
    let result = write_snapshot(&tree, &dirs).await;
    let mut t = tree.borrow_mut();
    t.snapshot_running = false;
    match result {
        Ok((path, zxid)) => {
            t.log_stats.snapshots += 1;
            t.log_stats.last_snapshot_zxid = zxid;
            tracing::info!(snapshot = %path.display(), ms = started.elapsed().as_millis() as u64, "snapshot written");
        }
        Err(e) => tracing::error!(error = %e, "snapshot failed; the log keeps everything, will retry"),
    }
}

async fn write_snapshot(tree: &Rc<RefCell<TreeCore>>, dirs: &Dirs) -> std::io::Result<(std::path::PathBuf, i64)> {
    let (zxid, paths, sessions) = {
        let t = tree.borrow();
        let data = t.server.tree();
        (data.last_zxid(), data.paths(), data.sessions().clone())
    };
    let mut job = SnapshotJob::start(&dirs.snapshots, zxid, wall_ms()).await?;
    for (id, timeout) in sessions {
        job.writer.add_session(id, timeout);
    }
    for chunk in paths.chunks(SNAPSHOT_CHUNK_NODES) {
        {
            let t = tree.borrow();
            let data = t.server.tree();
            for p in chunk {
                if let Some(n) = data.get(p) {
                    job.writer.add_node(p, n);
                }
            }
        }
        job.flush_some().await?;
        glommio::yield_if_needed().await;
    }
    let captured = tree.borrow().server.tree().last_zxid();
    let durable = tree.borrow().durable_signal.clone();
    let mut wake = Vec::new();
    while tree.borrow().durable_zxid < captured {
        // Pushed by `durable` each time the log advances while a snapshot runs.
        durable.drain(&mut wake).await;
        wake.clear();
    }
    let path = job.finish().await?;
    Ok((path, zxid))
}

/// Autopurge: every `autopurge.purgeInterval` hours, keep `snapRetainCount` snapshots.
pub(crate) async fn purge_task(dirs: Dirs, interval_hours: u32, retain: u32) {
    if interval_hours == 0 {
        return;
    }
    loop {
        glommio::timer::sleep(Duration::from_secs(u64::from(interval_hours) * 3600)).await;
        let d = dirs.clone();
        let report = glommio::executor()
            .spawn_blocking(move || engine::purge::purge(&d.snapshots, &d.log, retain as usize))
            .await;
        match report {
            Ok(r) => tracing::info!(snapshots = r.snapshots.len(), segments = r.segments.len(), "autopurge done"),
            Err(e) => tracing::warn!(error = %e, "autopurge failed"),
        }
    }
}

/// Opens the log for the recovered tree, or stops the process.
pub(crate) async fn open_wal(
    config: &Config,
    dirs: &Dirs,
    tail: Option<engine::recovery::LogTail>,
    next_zxid: i64,
) -> Wal {
    // A segment holds at least two of the largest records a client can send.
    let largest_record = config.jute_max_buffer_bytes + 64 * 1024;
    let settings = WalSettings {
        dir: dirs.log.clone(),
        segment_bytes: (config.pre_alloc_size_kb as usize).saturating_mul(1024).max(4 * largest_record),
        force_sync: config.force_sync,
        fsync_delay: Duration::from_millis(config.test_fsync_delay_ms),
    };
    if config.test_fsync_delay_ms > 0 {
        tracing::warn!(
            delay_ms = config.test_fsync_delay_ms,
            "paddock.testFsyncDelayMs: every log write waits before its fdatasync (a fault-test knob)"
        );
    }
    if !config.force_sync {
        tracing::warn!("forceSync=no: writes are acknowledged before they reach the disk; a power loss can lose them");
    }
    match Wal::open(settings, tail, next_zxid).await {
        Ok(w) => w,
        Err(e) => fatal("cannot open the transaction log", e),
    }
}
