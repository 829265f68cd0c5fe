//! The ensemble on core 0: election on the election port, ZAB on the quorum port, and the
//! role changes between them. The rules come from the sans-I/O cores (`election`, `zab`);
//! this module moves their packets, persists epochs, and swaps the protocol core's state.
//!
//! A server starts LOOKING. Decided, it leads or follows; when that role ends (the leader is
//! gone, the quorum is lost, the epoch's counter is spent) it drops every client connection,
//! reloads its tree from disk (so no txn applied but never committed survives, as ZooKeeper
//! clears its database) and looks again. Learners apply only committed txns; a leader applies
//! at once (that is its view for preparing writes) and releases frames only once a quorum has
//! the txns durable.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use engine::{Txn, TxnHeader};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::task::JoinHandle;

use crate::config::Config;
use crate::election::{
    Election, ElectionAction, ElectionTiming, History, Membership, Notification, PeerState, ServerId,
};
use crate::outbox::Outbox;
use crate::persist::Dirs;
use crate::proto::op;
use crate::quorum::{self, QuorumPacket};
use crate::runtime::{write_loop, Out};
use crate::server::{Action, ConnId, Forward, Server, Serving};
use crate::tree_core::{fatal, log_task, open_wal, TreeCore};
use crate::zab::{self, AckTracker, SyncPlan, SyncWindow};

/// Frames queued for one learner beyond which it is dropped and must resync.
const LEARNER_QUEUE_MAX_FRAMES: usize = 100_000;

/// Standalone, or this server's part in the ensemble.
pub(crate) enum Role {
    Standalone,
    Looking,
    Leader(Box<LeaderRole>),
    Learner(Box<LearnerRole>),
}

/// A connected learner, as its leader sees it.
pub(crate) struct LearnerLink {
    observer: bool,
    accepted_epoch: u64,
    last_zxid: i64,
    out: Rc<Outbox<Out>>,
    /// Its sync has begun: it gets every proposal and commit from now on.
    broadcast: bool,
    /// The leader's history ended here when its sync began: acked, the learner is level.
    newleader_zxid: i64,
    acked: i64,
    /// It acked since its sync began: it took NEWLEADER (learners ack only after it).
    newleader_acked: bool,
    up_to_date: bool,
    last_heard_ms: u64,
}

/// The leader's state.
pub(crate) struct LeaderRole {
    me: ServerId,
    voters: BTreeSet<ServerId>,
    epoch: Option<u64>,
    acks: AckTracker,
    window: SyncWindow,
    learners: BTreeMap<ServerId, LearnerLink>,
    newleader_zxid: i64,
    /// Forwarded syncs: (zxid to be committed, learner, session, cxid).
    pending_syncs: VecDeque<(i64, ServerId, i64, i32)>,
    wake: Rc<Outbox<()>>,
}

impl LeaderRole {
    /// The highest zxid a quorum has durable.
    pub(crate) fn committed(&self) -> i64 {
        self.acks.committed()
    }
}

/// A learner's state.
pub(crate) struct LearnerRole {
    observer: bool,
    out: Rc<Outbox<Out>>,
    /// Proposals logged (or being logged) and not yet committed.
    pending: VecDeque<(TxnHeader, Txn)>,
    /// It took NEWLEADER (its history agrees with the leader's and the epoch is current): acks
    /// may flow.
    synced: bool,
    /// The last zxid handed to the log; proposals at or below it are already here.
    logged_zxid: i64,
}

/// What the ensemble reports in srvr, mntr and `paddock status`.
#[derive(Debug, Clone, Default)]
pub struct EnsembleInfo {
    /// leader, follower or observer; None while not serving (LOOKING or syncing).
    pub state: Option<&'static str>,
    pub learners: usize,
    pub synced_followers: usize,
    pub synced_observers: usize,
    pub pending_syncs: usize,
    pub sync_diff: u64,
    pub sync_trunc: u64,
    pub sync_snap: u64,
    pub last_logged_zxid: i64,
    pub epoch: u64,
    pub elections: u64,
    /// Serving read-only sessions while cut off from the quorum.
    pub read_only: bool,
}

/// How the disk must change before a reload.
enum DiskChange {
    None,
    Trunc(i64),
    Snap(i64, Vec<u8>),
}

/// Why the ensemble cannot start.
#[derive(Debug, thiserror::Error)]
pub enum EnsembleError {
    #[error("{0}")]
    Config(String),
    #[error("cannot read or write {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// The ensemble's fixed facts and its few pieces of shared runtime state.
pub(crate) struct Ensemble {
    me: ServerId,
    observer: bool,
    voters: BTreeSet<ServerId>,
    quorum_addrs: BTreeMap<ServerId, SocketAddr>,
    election_addrs: BTreeMap<ServerId, SocketAddr>,
    tick_ms: u64,
    init_limit: u64,
    sync_limit: u64,
    heartbeat_ms: u64,
    window_txns: usize,
    config: Rc<Config>,
    dirs: Dirs,
    started: Instant,
    election: RefCell<Option<Election>>,
    election_out: BTreeMap<ServerId, Rc<Outbox<Vec<u8>>>>,
    accepted_epoch: Cell<u64>,
    current_epoch: Cell<u64>,
    round: Cell<u64>,
    log_handle: RefCell<Option<JoinHandle<engine::wal::Wal>>>,
    stats: RefCell<EnsembleInfo>,
}

/// Reads `myid` from dataDir, as ZooKeeper does.
fn read_myid(config: &Config) -> Result<u64, EnsembleError> {
    let path = config.data_dir.join("myid");
    let text = std::fs::read_to_string(&path)
        .map_err(|source| EnsembleError::Io { path: path.display().to_string(), source })?;
    text.trim()
        .parse()
        .map_err(|_| EnsembleError::Config(format!("{}: {:?} is not a server id", path.display(), text.trim())))
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, EnsembleError> {
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| EnsembleError::Config(format!("cannot resolve {host}:{port}")))
}

const ACCEPTED_EPOCH: &str = "acceptedEpoch";
const CURRENT_EPOCH: &str = "currentEpoch";

fn read_epoch(dir: &Path, name: &str) -> Result<u64, EnsembleError> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(t) => t.trim().parse().map_err(|_| EnsembleError::Config(format!("{} is damaged: {:?}", path.display(), t))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(source) => Err(EnsembleError::Io { path: path.display().to_string(), source }),
    }
}

/// Writes a small file durably: temp file, fsync, rename, fsync of the directory.
fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    std::fs::write(&tmp, bytes)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()
}

impl Ensemble {
    /// The ensemble a config describes, or None for a standalone server. Host names are
    /// resolved here, before any executor runs, so no lookup ever blocks a core.
    pub(crate) fn from_config(config: Rc<Config>, dirs: &Dirs) -> Result<Option<Ensemble>, EnsembleError> {
        // One voting server alone is standalone, as ZooKeeper runs it (standaloneEnabled).
        if config.peers.is_empty() || (config.peers.len() == 1 && !config.peers[0].observer) {
            return Ok(None);
        }
        let me = read_myid(&config)?;
        let mine =
            config.peers.iter().find(|p| p.id == me).ok_or_else(|| {
                EnsembleError::Config(format!("myid is {me} but no server.{me} line names this server"))
            })?;
        let observer = mine.observer || config.peer_type_observer;
        let voters: BTreeSet<ServerId> = config.peers.iter().filter(|p| !p.observer).map(|p| p.id).collect();
        if voters.is_empty() {
            return Err(EnsembleError::Config("no voting server.N lines".into()));
        }
        let mut quorum_addrs = BTreeMap::new();
        let mut election_addrs = BTreeMap::new();
        let mut election_out = BTreeMap::new();
        for p in &config.peers {
            quorum_addrs.insert(p.id, resolve(&p.host, p.quorum_port)?);
            election_addrs.insert(p.id, resolve(&p.host, p.election_port)?);
            if p.id != me {
                election_out.insert(p.id, Rc::new(Outbox::default()));
            }
        }
        let tick_ms = config.tick_time_ms;
        Ok(Some(Ensemble {
            me,
            observer,
            voters,
            quorum_addrs,
            election_addrs,
            tick_ms,
            init_limit: u64::from(config.init_limit.max(1)),
            sync_limit: u64::from(config.sync_limit.max(1)),
            heartbeat_ms: config.quorum_heartbeat_ms.unwrap_or((tick_ms / 4).max(5)),
            window_txns: config.sync_window_txns,
            accepted_epoch: Cell::new(read_epoch(&dirs.snapshots, ACCEPTED_EPOCH)?),
            current_epoch: Cell::new(read_epoch(&dirs.snapshots, CURRENT_EPOCH)?),
            config,
            dirs: dirs.clone(),
            started: Instant::now(),
            election: RefCell::new(None),
            election_out,
            round: Cell::new(0),
            log_handle: RefCell::new(None),
            stats: RefCell::new(EnsembleInfo::default()),
        }))
    }

    /// This server's id.
    pub(crate) fn me(&self) -> ServerId {
        self.me
    }

    /// The other members.
    pub(crate) fn peers(&self) -> Vec<ServerId> {
        self.election_out.keys().copied().collect()
    }

    /// The addresses this server listens on: (quorum, election).
    pub(crate) fn own_addrs(&self) -> (SocketAddr, SocketAddr) {
        (self.quorum_addrs[&self.me], self.election_addrs[&self.me])
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub(crate) fn set_log_handle(&self, h: JoinHandle<engine::wal::Wal>) {
        *self.log_handle.borrow_mut() = Some(h);
    }

    /// Counters and state for the reports.
    pub(crate) fn info(&self) -> EnsembleInfo {
        EnsembleInfo { epoch: self.current_epoch.get(), ..self.stats.borrow().clone() }
    }

    fn perform(&self, actions: Vec<ElectionAction>) {
        for a in actions {
            match a {
                ElectionAction::Broadcast(n) => {
                    let frame = quorum::encode_notification(&n);
                    for o in self.election_out.values() {
                        o.push(frame.clone());
                    }
                }
                ElectionAction::Send { to, notification } => {
                    if let Some(o) = self.election_out.get(&to) {
                        o.push(quorum::encode_notification(&notification));
                    }
                }
                ElectionAction::Decided { leader, epoch, state } => {
                    tracing::info!(leader, epoch, ?state, "election decided");
                }
            }
        }
    }

    /// This server's role established `epoch`: its election answers with it.
    fn established(&self, epoch: u64) {
        if let Some(e) = self.election.borrow_mut().as_mut() {
            e.established(epoch);
        }
    }

    fn on_notification(&self, n: Notification) {
        let mut actions = Vec::new();
        if let Some(e) = self.election.borrow_mut().as_mut() {
            e.on_notification(n, self.now_ms(), &mut actions);
        }
        self.perform(actions);
    }

    async fn persist_epoch(&self, name: &'static str, epoch: u64) {
        let dir = self.dirs.snapshots.clone();
        let r = glommio::executor()
            .spawn_blocking(move || write_durably(&dir, name, format!("{epoch}\n").as_bytes()))
            .await;
        if let Err(e) = r {
            fatal("cannot persist the epoch", e);
        }
        if name == ACCEPTED_EPOCH {
            self.accepted_epoch.set(epoch);
        } else {
            self.current_epoch.set(epoch);
        }
    }
}

/// Waits for a wake-up or `ms`, whichever is first.
async fn wait(signal: &Outbox<()>, ms: u64) {
    let mut buf = Vec::new();
    futures_lite::future::or(
        async {
            signal.drain(&mut buf).await;
        },
        async {
            glommio::timer::sleep(Duration::from_millis(ms)).await;
        },
    )
    .await;
}

async fn read_frame<R: AsyncReadExt + Unpin>(r: &mut R, max_bytes: usize) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let len = usize::try_from(i32::from_be_bytes(len))
        .ok()
        .filter(|l| *l <= max_bytes)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "frame length out of range"))?;
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    Ok(buf)
}

/// Reads one quorum packet, or fails after `ms` of silence.
async fn read_packet<R: AsyncReadExt + Unpin>(r: &mut R, ms: u64) -> std::io::Result<QuorumPacket> {
    let frame = futures_lite::future::or(read_frame(r, quorum::FRAME_MAX_BYTES), async {
        glommio::timer::sleep(Duration::from_millis(ms)).await;
        Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "peer silent"))
    })
    .await?;
    QuorumPacket::decode(&frame).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
}

/// Reads one quorum packet with no timer of its own: on a link whose silence a `Watchdog` ends.
async fn next_packet<R: AsyncReadExt + Unpin>(r: &mut R) -> std::io::Result<QuorumPacket> {
    let frame = read_frame(r, quorum::FRAME_MAX_BYTES).await?;
    QuorumPacket::decode(&frame).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
}

/// Ends a link that has been silent too long by shutting its socket down, so that its blocked
/// read fails. One timer per quarter of the limit instead of one per packet read: a glommio
/// timer armed and cancelled per packet cost more CPU than the packet itself.
struct Watchdog {
    /// When the link last delivered a packet (ms, `Ensemble::now_ms`).
    heard_ms: Cell<u64>,
    /// Silence allowed, in ms; a learner tightens it from initLimit to syncLimit once synced.
    limit_ms: Cell<u64>,
    /// Set before the socket is dropped, so the watchdog never touches a reused fd.
    stopped: Cell<bool>,
}

impl Watchdog {
    /// Starts watching `fd`.
    fn start(ens: &Rc<Ensemble>, fd: i32, limit_ms: u64) -> Rc<Watchdog> {
        let dog = Rc::new(Watchdog {
            heard_ms: Cell::new(ens.now_ms()),
            limit_ms: Cell::new(limit_ms),
            stopped: Cell::new(false),
        });
        let (watch, ens) = (dog.clone(), ens.clone());
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(Duration::from_millis((watch.limit_ms.get() / 4).max(1))).await;
                if watch.stopped.get() {
                    return;
                }
                if ens.now_ms().saturating_sub(watch.heard_ms.get()) > watch.limit_ms.get() {
                    // SAFETY: not stopped, so the socket that owns fd is still open.
                    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
                    return;
                }
            }
        })
        .detach();
        dog
    }

    /// Whether the link went silent (the read failed because the watchdog shut it).
    fn expired(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.heard_ms.get()) > self.limit_ms.get()
    }
}

/// Queues a packet on a link to a peer.
fn send(out: &Outbox<Out>, packet: QuorumPacket) {
    out.push(Out::Bytes(packet.encode()));
}

impl TreeCore {
    /// What srvr, mntr and status show of the ensemble; None standalone.
    pub(crate) fn ensemble_info(&self) -> Option<EnsembleInfo> {
        let ens = self.ensemble.as_ref()?;
        let mut info = ens.info();
        info.last_logged_zxid = self.durable_zxid.max(self.server.tree().last_zxid());
        let serving = self.server.serving() != Serving::No;
        info.read_only = self.server.serving() == Serving::ReadOnly;
        info.state = match &self.role {
            Role::Leader(l) if serving => {
                info.learners = l.learners.len();
                info.synced_followers = l.learners.values().filter(|x| !x.observer && x.up_to_date).count();
                info.synced_observers = l.learners.values().filter(|x| x.observer && x.up_to_date).count();
                info.pending_syncs = l.pending_syncs.len();
                Some("leader")
            }
            Role::Learner(l) if serving => Some(if l.observer { "observer" } else { "follower" }),
            _ => None,
        };
        Some(info)
    }

    /// A learner's request goes to its leader.
    pub(crate) fn forward(&mut self, f: Forward) {
        let Role::Learner(l) = &self.role else { return };
        let packet = match f {
            Forward::CreateSession { session_id, timeout_ms } => QuorumPacket::CreateSession { session_id, timeout_ms },
            Forward::Request { session_id, auth, packet } => QuorumPacket::Request { session_id, auth, packet },
        };
        send(&l.out, packet);
    }

    /// The local log is durable up to `zxid`: the leader's own ack, or a follower's ack.
    pub(crate) fn ensemble_durable(&mut self, zxid: i64) {
        match &mut self.role {
            Role::Leader(l) => {
                let me = l.me;
                if let Some(c) = l.acks.ack(me, zxid) {
                    self.leader_committed(c);
                }
            }
            Role::Learner(l) if l.synced && !l.observer => send(&l.out, QuorumPacket::Ack { zxid }),
            _ => {}
        }
    }

    /// The log task took a batch: a leader proposes it to every learner being synced or in
    /// step, and keeps it for syncing later ones.
    pub(crate) fn proposed(&mut self, batch: &crate::server::LogBatch) {
        let Role::Leader(l) = &mut self.role else { return };
        // The leader framed these records itself: no need to scan or check them again.
        for (zxid, framed) in batch.framed() {
            l.window.push(zxid, framed.to_vec());
        }
        let frame = QuorumPacket::Proposal { records: batch.bytes.clone() }.encode();
        for link in l.learners.values().filter(|x| x.broadcast) {
            link.out.push(Out::Bytes(frame.clone()));
        }
    }

    fn leader_committed(&mut self, committed: i64) {
        self.release(committed);
        let Role::Leader(l) = &mut self.role else { return };
        let frame = QuorumPacket::Commit { zxid: committed }.encode();
        for link in l.learners.values().filter(|x| x.broadcast) {
            link.out.push(Out::Bytes(frame.clone()));
        }
        while l.pending_syncs.front().is_some_and(|(z, ..)| *z <= committed) {
            if let Some((_, learner, session_id, cxid)) = l.pending_syncs.pop_front() {
                if let Some(link) = l.learners.get(&learner) {
                    send(&link.out, QuorumPacket::SyncDone { session_id, cxid });
                }
            }
        }
        l.wake.push(());
    }

    /// A learner said who it is. False if this server does not lead.
    fn leader_register(&mut self, id: ServerId, info: (u64, i64, bool), out: Rc<Outbox<Out>>, now_ms: u64) -> bool {
        let Role::Leader(l) = &mut self.role else { return false };
        let (accepted_epoch, last_zxid, observer) = info;
        if let Some(old) = l.learners.remove(&id) {
            old.out.close();
            l.acks.remove(id);
        }
        let link = LearnerLink {
            observer,
            accepted_epoch,
            last_zxid,
            out,
            broadcast: false,
            newleader_zxid: 0,
            acked: 0,
            newleader_acked: false,
            up_to_date: false,
            last_heard_ms: now_ms,
        };
        l.learners.insert(id, link);
        l.wake.push(());
        if l.epoch.is_some() {
            self.leader_start_sync(id);
        }
        true
    }

    fn leader_unregister(&mut self, id: ServerId, out: &Rc<Outbox<Out>>) {
        let Role::Leader(l) = &mut self.role else { return };
        if l.learners.get(&id).is_some_and(|x| Rc::ptr_eq(&x.out, out)) {
            l.learners.remove(&id);
            l.acks.remove(id);
            l.wake.push(());
        }
    }

    /// Brings a learner level: the epoch, then DIFF, TRUNC or SNAP as `zab` plans it, then the
    /// end of the leader's history; from here on it gets every proposal and commit.
    fn leader_start_sync(&mut self, id: ServerId) {
        let secret = self.server.settings().secret;
        let last = self.server.tree().last_zxid();
        let serving = self.leader_serves();
        let Role::Leader(l) = &mut self.role else { return };
        let Some(epoch) = l.epoch else { return };
        let Some(link) = l.learners.get_mut(&id) else { return };
        send(&link.out, QuorumPacket::NewEpoch { epoch, secret });
        let plan = l.window.plan(link.last_zxid);
        let diff_from = match plan {
            SyncPlan::Diff => {
                send(&link.out, QuorumPacket::Diff);
                link.last_zxid
            }
            SyncPlan::Trunc(z) => {
                send(&link.out, QuorumPacket::Trunc { zxid: z });
                z
            }
            SyncPlan::Snap => {
                // The tree as applied: txns still waiting for the log come after, and the
                // learner skips those its snapshot already holds.
                let snapshot = engine::snapshot::SnapshotWriter::whole(self.server.tree(), crate::runtime::wall_ms());
                send(&link.out, QuorumPacket::Snap { zxid: last, snapshot });
                last
            }
        };
        tracing::info!(learner = id, learner_zxid = format!("{:#x}", link.last_zxid), ?plan, "syncing learner");
        let diff = l.window.after(diff_from);
        if !diff.is_empty() {
            send(&link.out, QuorumPacket::Proposal { records: diff });
        }
        send(&link.out, QuorumPacket::NewLeader { zxid: last });
        link.newleader_zxid = last;
        link.broadcast = true;
        if serving {
            send(&link.out, QuorumPacket::Commit { zxid: l.acks.committed() });
            if link.observer {
                link.up_to_date = true;
                send(&link.out, QuorumPacket::UpToDate);
            }
        }
    }

    /// Sends UPTODATE to every learner that is level, once the leader serves.
    fn leader_send_up_to_date(&mut self) {
        if !self.leader_serves() {
            return;
        }
        let Role::Leader(l) = &mut self.role else { return };
        for link in l.learners.values_mut() {
            let level = link.newleader_acked && link.acked >= link.newleader_zxid;
            if link.broadcast && !link.up_to_date && (link.observer || level) {
                link.up_to_date = true;
                send(&link.out, QuorumPacket::UpToDate);
            }
        }
    }

    /// Whether this leader has a quorum behind its epoch and takes clients' writes.
    fn leader_serves(&self) -> bool {
        matches!(self.server.serving(), Serving::Leader { .. })
    }

    fn leader_on_packet(&mut self, id: ServerId, packet: QuorumPacket, now_ms: u64, wall_ms: i64) {
        let serving = self.leader_serves();
        let Role::Leader(l) = &mut self.role else { return };
        let Some(link) = l.learners.get_mut(&id) else { return };
        link.last_heard_ms = now_ms;
        let mut out = Vec::new();
        match packet {
            QuorumPacket::Ack { zxid } => {
                link.acked = link.acked.max(zxid);
                link.newleader_acked |= link.broadcast;
                if let Some(c) = l.acks.ack(id, zxid) {
                    self.leader_committed(c);
                }
                self.leader_send_up_to_date();
                return;
            }
            QuorumPacket::Ping { sessions } => {
                self.server.touch_sessions(&sessions, now_ms);
                return;
            }
            _ if !serving => return,
            QuorumPacket::CreateSession { session_id, timeout_ms } => {
                self.server.forwarded(Forward::CreateSession { session_id, timeout_ms }, now_ms, wall_ms, &mut out);
            }
            QuorumPacket::Request { session_id, packet, .. } if packet.op == op::SYNC => {
                self.server.touch_sessions(&[session_id], now_ms);
                let needed = self.server.tree().last_zxid();
                let Role::Leader(l) = &mut self.role else { return };
                if needed <= l.acks.committed() {
                    if let Some(link) = l.learners.get(&id) {
                        send(&link.out, QuorumPacket::SyncDone { session_id, cxid: packet.xid });
                    }
                } else {
                    l.pending_syncs.push_back((needed, id, session_id, packet.xid));
                }
                return;
            }
            QuorumPacket::Request { session_id, auth, packet } => {
                self.server.forwarded(Forward::Request { session_id, auth, packet }, now_ms, wall_ms, &mut out);
            }
            other => {
                tracing::warn!(learner = id, packet = ?std::mem::discriminant(&other), "unexpected packet from a learner");
                return;
            }
        }
        self.route(out, None);
    }

    /// A learner got proposals: log them; apply them when committed.
    fn learner_on_proposal(&mut self, records: &[u8]) -> Result<(), &'static str> {
        let refs = engine::log::framed_records(records).ok_or("proposal fails its checksums")?;
        let Role::Learner(l) = &mut self.role else { return Ok(()) };
        for r in refs {
            if r.zxid <= l.logged_zxid {
                continue;
            }
            let (hdr, txn) = engine::codec::decode_txn(&records[r.payload.clone()]).map_err(|_| "undecodable txn")?;
            self.server.append_framed(&records[r.offset..r.payload.end], r.zxid);
            l.pending.push_back((hdr, txn));
            l.logged_zxid = r.zxid;
        }
        if self.server.has_pending_log() {
            self.log_signal.push(());
        }
        Ok(())
    }

    fn learner_on_commit(&mut self, zxid: i64) {
        let (now, wall) = (self.now_ms(), crate::runtime::wall_ms());
        let mut out = Vec::new();
        loop {
            let Role::Learner(l) = &mut self.role else { return };
            if l.pending.front().is_none_or(|(h, _)| h.zxid > zxid) {
                break;
            }
            let Some((hdr, txn)) = l.pending.pop_front() else { break };
            self.server.apply_committed(&hdr, &txn, now, wall, &mut out);
        }
        self.route(out, None);
    }
}

/// Stops serving and lets the log write what it still holds. With a disk change (a learner's
/// TRUNC or SNAP) the tree is then read back from disk; without one, the tree in memory plus a
/// learner's logged, uncommitted proposals is exactly what the disk holds, so it is kept (as
/// ZooKeeper keeps its database across elections) instead of replaying up to snapCount txns.
/// Either way sessions and connections start afresh, and the server is LOOKING, serving nobody.
async fn reload(tree: &Rc<RefCell<TreeCore>>, ens: &Rc<Ensemble>, change: DiskChange) {
    let logged_uncommitted = {
        let mut t = tree.borrow_mut();
        let conns = t.server.all_connections();
        t.server.set_serving(Serving::No);
        let role = std::mem::replace(&mut t.role, Role::Looking);
        // Frames of a role that ended answer nothing anyone may rely on: drop them, but keep
        // their closes (a session that expired has already left the server's table, and only
        // its held close would ever end its connection).
        let closes = closes_of_role(conns, t.held.drain(..).map(|(_, actions, _)| actions));
        t.send_now(closes);
        match role {
            Role::Learner(l) => l.pending,
            _ => VecDeque::new(),
        }
    };
    while tree.borrow().snapshot_running {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    let mut tail = None;
    let handle = ens.log_handle.borrow_mut().take();
    if let Some(h) = handle {
        let signal = {
            let mut t = tree.borrow_mut();
            t.log_closing = true;
            t.log_signal.clone()
        };
        signal.push(());
        if let Some(wal) = h.await {
            tail = wal.tail();
            wal.close().await;
        }
    }
    let (data, tail) = match change {
        DiskChange::None => {
            let mut data = tree.borrow_mut().server.take_tree();
            for (hdr, txn) in &logged_uncommitted {
                if hdr.zxid > data.last_zxid() {
                    data.apply(hdr, txn);
                }
            }
            (data, tail)
        }
        change => {
            let recovered = read_back(&ens.dirs, change).await;
            (recovered.tree, recovered.log_tail)
        }
    };
    let last = data.last_zxid();
    let wal = open_wal(&ens.config, &ens.dirs, tail, last + 1).await;
    {
        let mut t = tree.borrow_mut();
        let now = t.now_ms();
        // The secret as it stands: a learner may have adopted its leader's since start-up.
        let settings = crate::runtime::settings(&ens.config, t.server.settings().secret, ens.me);
        let mut server = Server::with_tree(settings, data, now, crate::runtime::wall_ms());
        server.set_serving(Serving::No);
        // Connections that arrived while the log drained belong to the server being replaced:
        // closed with it, or their clients would wait for answers nobody sends.
        let stale = std::mem::replace(&mut t.server, server).all_connections();
        t.send_now(stale.into_iter().map(|conn| Action::Close { conn }).collect());
        t.durable_zxid = last;
        t.log_closing = false;
    }
    ens.set_log_handle(glommio::spawn_local(log_task(tree.clone(), wal, ens.dirs.clone())).detach());
}

/// What a role's end sends: a close for every connection the protocol core knows, and the closes
/// among the frames it held (whose connections it may already have forgotten); the rest of what
/// was held is dropped.
pub fn closes_of_role(conns: Vec<ConnId>, held: impl IntoIterator<Item = Vec<Action>>) -> Vec<Action> {
    let mut closes: Vec<Action> = conns.into_iter().map(|conn| Action::Close { conn }).collect();
    for actions in held {
        closes.extend(actions.into_iter().filter(|a| matches!(a, Action::Close { .. })));
    }
    closes
}

/// Applies a learner's TRUNC or SNAP to the disk and recovers the tree from it.
async fn read_back(dirs: &Dirs, change: DiskChange) -> engine::recovery::Recovered {
    let dirs = dirs.clone();
    let recovered = glommio::executor()
        .spawn_blocking(move || -> Result<engine::recovery::Recovered, String> {
            match change {
                DiskChange::None => {}
                DiskChange::Trunc(z) => {
                    engine::recovery::truncate_after(&dirs.snapshots, &dirs.log, z).map_err(|e| e.to_string())?
                }
                DiskChange::Snap(z, bytes) => {
                    engine::recovery::truncate_after(&dirs.snapshots, &dirs.log, z).map_err(|e| e.to_string())?;
                    let name = engine::snapshot::snapshot_name(z);
                    write_durably(&dirs.snapshots, &name, &bytes).map_err(|e| e.to_string())?;
                }
            }
            engine::recovery::recover(&dirs.snapshots, &dirs.log).map_err(|e| e.to_string())
        })
        .await;
    match recovered {
        Ok(r) => r,
        Err(e) => fatal("cannot reload the tree from disk", e),
    }
}

/// The server's life in the ensemble: look, lead or follow, reload, look again.
pub(crate) async fn peer_main(tree: Rc<RefCell<TreeCore>>, ens: Rc<Ensemble>) {
    loop {
        let last_zxid = tree.borrow().server.tree().last_zxid();
        let history = History { last_zxid, epoch: ens.current_epoch.get(), round: ens.round.get() };
        let members = Membership { me: ens.me, voters: ens.voters.clone(), observer: ens.observer };
        let mut actions = Vec::new();
        let election = Election::start(members, history, ElectionTiming::default(), ens.now_ms(), &mut actions);
        ens.round.set(election.round());
        *ens.election.borrow_mut() = Some(election);
        ens.perform(actions);
        ens.stats.borrow_mut().elections += 1;
        tracing::info!(zxid = format!("{last_zxid:#x}"), epoch = ens.current_epoch.get(), "LOOKING");
        let looking_since = ens.now_ms();
        // ZooKeeper starts its read-only server after max(2 s, tickTime) without a quorum.
        let read_only_after = looking_since + ens.tick_ms.max(2000);
        let outcome = loop {
            glommio::timer::sleep(Duration::from_millis(5)).await;
            if ens.config.read_only_mode && ens.now_ms() >= read_only_after {
                let mut t = tree.borrow_mut();
                if t.server.serving() == Serving::No {
                    tracing::info!("no quorum: serving read-only sessions");
                    t.server.set_serving(Serving::ReadOnly);
                }
            }
            let mut actions = Vec::new();
            let outcome = {
                let mut e = ens.election.borrow_mut();
                let Some(e) = e.as_mut() else { break None };
                e.tick(ens.now_ms(), &mut actions);
                e.outcome()
            };
            ens.perform(actions);
            if outcome.is_some() {
                break outcome;
            }
        };
        {
            let mut t = tree.borrow_mut();
            if t.server.serving() == Serving::ReadOnly {
                let conns = t.server.all_connections();
                t.server.set_serving(Serving::No);
                t.send_now(conns.into_iter().map(|conn| Action::Close { conn }).collect());
            }
        }
        match outcome {
            Some((_, _, PeerState::Leading)) => lead(&tree, &ens).await,
            Some((leader, _, PeerState::Following | PeerState::Observing)) => follow(&tree, &ens, leader).await,
            _ => {}
        }
        if let Role::Leader(l) = &tree.borrow().role {
            for link in l.learners.values() {
                link.out.close();
            }
        }
        reload(&tree, &ens, DiskChange::None).await;
    }
}

/// One phase of a leader's start: waits, woken by learners' packets, until `done` gives a
/// value, or initLimit passes (None).
async fn leader_phase<T>(
    tree: &Rc<RefCell<TreeCore>>,
    ens: &Ensemble,
    wake: &Outbox<()>,
    done: impl Fn(&LeaderRole) -> Option<T>,
) -> Option<T> {
    let deadline = ens.now_ms() + ens.init_limit * ens.tick_ms;
    loop {
        if let Role::Leader(l) = &tree.borrow().role {
            if let Some(v) = done(l) {
                return Some(v);
            }
        }
        if ens.now_ms() > deadline {
            return None;
        }
        wait(wake, 20).await;
    }
}

async fn lead(tree: &Rc<RefCell<TreeCore>>, ens: &Rc<Ensemble>) {
    let wake = Rc::new(Outbox::default());
    {
        let mut t = tree.borrow_mut();
        let last = t.server.tree().last_zxid();
        let durable = t.durable_zxid;
        let mut acks = AckTracker::new(ens.voters.clone());
        acks.ack(ens.me, durable);
        t.role = Role::Leader(Box::new(LeaderRole {
            me: ens.me,
            voters: ens.voters.clone(),
            epoch: None,
            acks,
            window: SyncWindow::new(last, ens.window_txns),
            learners: BTreeMap::new(),
            newleader_zxid: last,
            pending_syncs: VecDeque::new(),
            wake: wake.clone(),
        }));
    }
    // Discovery: a quorum of voters (this one included) must report before an epoch is chosen.
    let discovered = leader_phase(tree, ens, &wake, |l| {
        let voters: Vec<u64> = l
            .learners
            .iter()
            .filter(|(id, x)| !x.observer && l.voters.contains(id))
            .map(|(_, x)| x.accepted_epoch)
            .collect();
        zab::is_quorum(voters.len() + 1, l.voters.len()).then_some(voters)
    });
    let Some(accepted) = discovered.await else {
        tracing::warn!("no quorum of followers connected within initLimit; looking again");
        return;
    };
    let epoch = zab::new_epoch(accepted.into_iter().chain([ens.accepted_epoch.get(), ens.current_epoch.get()]));
    ens.persist_epoch(ACCEPTED_EPOCH, epoch).await;
    {
        let mut t = tree.borrow_mut();
        let ids: Vec<ServerId> = match &mut t.role {
            Role::Leader(l) => {
                l.epoch = Some(epoch);
                l.learners.keys().copied().collect()
            }
            _ => return,
        };
        for id in ids {
            t.leader_start_sync(id);
        }
    }
    // Synchronisation: a quorum must ack the leader's history before it serves.
    let synced = leader_phase(tree, ens, &wake, |l| {
        let acks = l.learners.iter().filter(|(id, x)| x.newleader_acked && l.voters.contains(id)).count();
        zab::established(acks, l.voters.len(), l.acks.committed(), l.newleader_zxid).then_some(())
    });
    if synced.await.is_none() {
        tracing::warn!(epoch, "no quorum acknowledged the new leader within initLimit; looking again");
        return;
    }
    ens.persist_epoch(CURRENT_EPOCH, epoch).await;
    ens.established(epoch);
    {
        let mut t = tree.borrow_mut();
        t.server.set_serving(Serving::Leader { epoch });
        t.leader_send_up_to_date();
        let committed = match &t.role {
            Role::Leader(l) => l.acks.committed(),
            _ => 0,
        };
        t.release(committed);
    }
    tracing::info!(epoch, me = ens.me, "LEADING");
    let sync_ms = ens.sync_limit * ens.tick_ms;
    loop {
        glommio::timer::sleep(Duration::from_millis(ens.heartbeat_ms)).await;
        let mut t = tree.borrow_mut();
        let now = ens.now_ms();
        let last = t.server.tree().last_zxid();
        let Role::Leader(l) = &mut t.role else { return };
        let frame = QuorumPacket::Commit { zxid: l.acks.committed() }.encode();
        let mut heard = BTreeMap::new();
        for (id, link) in &l.learners {
            if link.out.len() > LEARNER_QUEUE_MAX_FRAMES {
                // Too far behind to catch up from the stream: drop it; it resyncs on return.
                tracing::warn!(learner = id, queued = link.out.len(), "learner too far behind; dropping it");
                link.out.close();
                continue;
            }
            if link.broadcast {
                link.out.push(Out::Bytes(frame.clone()));
            }
            heard.insert(*id, link.last_heard_ms);
        }
        if !zab::hears_quorum(&l.voters, l.me, &heard, now, sync_ms) {
            tracing::warn!(epoch, "lost the quorum of followers (syncLimit passed); stepping down");
            return;
        }
        if zab::must_roll_epoch(last) {
            tracing::info!(epoch, "zxid counter nearly exhausted; stepping down so a new epoch starts");
            return;
        }
    }
}

/// How long a learner keeps retrying an elected peer that refuses it before electing again.
const REFUSED_LOOK_AGAIN_MS: u64 = 1000;

async fn follow(tree: &Rc<RefCell<TreeCore>>, ens: &Rc<Ensemble>, leader: ServerId) {
    let Some(addr) = ens.quorum_addrs.get(&leader).copied() else { return };
    let init_ms = ens.init_limit * ens.tick_ms;
    let deadline = ens.now_ms() + init_ms;
    let observer = ens.observer;
    let last = tree.borrow().server.tree().last_zxid();
    let info = QuorumPacket::LearnerInfo {
        server: ens.me,
        accepted_epoch: ens.accepted_epoch.get(),
        last_zxid: last,
        observer,
    };
    // The elected leader may not lead yet (it decides a moment later, or is still stepping
    // down from an old role): keep trying within initLimit, as ZooKeeper's learners do. But a
    // peer that keeps refusing for a second was elected by a vote it has since changed (two
    // members agreed on it before a third, better one showed up): look again rather than wait
    // out initLimit.
    let refusals_until = ens.now_ms() + REFUSED_LOOK_AGAIN_MS;
    let (mut reader, writer, fd, first) = loop {
        let attempt = async {
            let stream =
                TcpStream::connect_timeout(addr, Duration::from_millis(200)).await.map_err(|e| e.to_string())?;
            let _ = stream.set_nodelay(true);
            let fd = stream.as_raw_fd();
            let (mut reader, mut writer) = futures_lite::io::split(stream);
            writer.write_all(&info.encode()).await.map_err(|e| e.to_string())?;
            let wait_ms = deadline.saturating_sub(ens.now_ms()).max(1);
            let first = read_packet(&mut reader, wait_ms).await.map_err(|e| e.to_string())?;
            Ok::<_, String>((reader, writer, fd, first))
        };
        match attempt.await {
            Ok(linked) => break linked,
            Err(e) if ens.now_ms() > deadline.min(refusals_until) => {
                tracing::warn!(leader, error = %e, "cannot reach the elected leader; looking again");
                return;
            }
            Err(_) => glommio::timer::sleep(Duration::from_millis(10)).await,
        }
    };
    let out: Rc<Outbox<Out>> = Rc::new(Outbox::default());
    let learner_role = |logged_zxid| {
        Role::Learner(Box::new(LearnerRole {
            observer,
            out: out.clone(),
            pending: VecDeque::new(),
            synced: false,
            logged_zxid,
        }))
    };
    tree.borrow_mut().role = learner_role(last);
    let writer_task = glommio::spawn_local(write_loop(writer, out.clone(), fd)).detach();
    let pinger = {
        let (tree, out, ms) = (tree.clone(), out.clone(), ens.heartbeat_ms);
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(Duration::from_millis(ms)).await;
                if out.is_closed() {
                    return;
                }
                let sessions = tree.borrow_mut().server.take_touched();
                send(&out, QuorumPacket::Ping { sessions });
            }
        })
        .detach()
    };
    let mut leader_epoch = 0;
    let mut up_to_date = false;
    let mut next = Some(first);
    let watchdog = Watchdog::start(ens, fd, init_ms);
    loop {
        if up_to_date {
            watchdog.limit_ms.set(ens.sync_limit * ens.tick_ms);
        }
        let packet = match next.take() {
            Some(p) => p,
            None => match next_packet(&mut reader).await {
                Ok(p) => {
                    watchdog.heard_ms.set(ens.now_ms());
                    p
                }
                Err(e) => {
                    let silent = watchdog.expired(ens.now_ms());
                    tracing::warn!(leader, error = %e, silent, "lost the leader");
                    break;
                }
            },
        };
        match packet {
            QuorumPacket::NewEpoch { epoch, secret } => {
                if !zab::may_accept_epoch(ens.accepted_epoch.get(), epoch) {
                    tracing::warn!(
                        epoch,
                        accepted = ens.accepted_epoch.get(),
                        "leader's epoch is older than one accepted"
                    );
                    break;
                }
                if epoch > ens.accepted_epoch.get() {
                    ens.persist_epoch(ACCEPTED_EPOCH, epoch).await;
                }
                let dirs = ens.dirs.clone();
                let stored = glommio::executor()
                    .spawn_blocking(move || {
                        write_durably(&dirs.snapshots, "secret", format!("{secret:016x}\n").as_bytes())
                    })
                    .await;
                if let Err(e) = stored {
                    fatal("cannot store the ensemble's secret", e);
                }
                tree.borrow_mut().server.set_secret(secret);
                leader_epoch = epoch;
            }
            QuorumPacket::Diff => ens.stats.borrow_mut().sync_diff += 1,
            QuorumPacket::Trunc { zxid } => {
                ens.stats.borrow_mut().sync_trunc += 1;
                tracing::info!(zxid = format!("{zxid:#x}"), "TRUNC: cutting history back");
                reload(tree, ens, DiskChange::Trunc(zxid)).await;
                let reached = tree.borrow().server.tree().last_zxid();
                if reached != zxid {
                    // The disk held no state at `zxid`: a snapshot this learner took in from an
                    // earlier leader was newer and is gone, and its log stops short. Carrying on
                    // would apply the diff to the wrong tree; syncing again from where the disk
                    // really ends gets a DIFF or SNAP that fits.
                    tracing::warn!(
                        zxid = format!("{zxid:#x}"),
                        reached = format!("{reached:#x}"),
                        "TRUNC reached back past this learner's snapshot; syncing again"
                    );
                    break;
                }
                tree.borrow_mut().role = learner_role(zxid);
            }
            QuorumPacket::Snap { zxid, snapshot } => {
                ens.stats.borrow_mut().sync_snap += 1;
                tracing::info!(zxid = format!("{zxid:#x}"), bytes = snapshot.len(), "SNAP: taking the leader's tree");
                reload(tree, ens, DiskChange::Snap(zxid, snapshot)).await;
                tree.borrow_mut().role = learner_role(zxid);
            }
            QuorumPacket::Proposal { records } => {
                if let Err(why) = tree.borrow_mut().learner_on_proposal(&records) {
                    tracing::warn!(leader, why, "bad proposal");
                    break;
                }
            }
            QuorumPacket::NewLeader { .. } => {
                if leader_epoch > ens.current_epoch.get() {
                    ens.persist_epoch(CURRENT_EPOCH, leader_epoch).await;
                }
                ens.established(leader_epoch);
                // Acks flow only from here on, so the leader counts any ack of this learner as
                // its answer to NEWLEADER (its epoch is durable here).
                let mut t = tree.borrow_mut();
                if let Role::Learner(l) = &mut t.role {
                    l.synced = true;
                }
                if !observer {
                    let durable = t.durable_zxid;
                    send(&out, QuorumPacket::Ack { zxid: durable });
                }
            }
            QuorumPacket::UpToDate => {
                up_to_date = true;
                tree.borrow_mut().server.set_serving(Serving::Learner);
                tracing::info!(leader, epoch = leader_epoch, "{}", if observer { "OBSERVING" } else { "FOLLOWING" });
            }
            QuorumPacket::Commit { zxid } => tree.borrow_mut().learner_on_commit(zxid),
            QuorumPacket::SyncDone { session_id, cxid } => {
                let mut t = tree.borrow_mut();
                let (now, wall) = (t.now_ms(), crate::runtime::wall_ms());
                let mut actions = Vec::new();
                t.server.sync_done(session_id, cxid, now, wall, &mut actions);
                t.route(actions, None);
            }
            other => {
                tracing::warn!(leader, packet = ?std::mem::discriminant(&other), "unexpected packet from the leader");
                break;
            }
        }
    }
    watchdog.stopped.set(true);
    out.close();
    let _ = writer_task.await;
    drop(pinger);
}

/// Election port: every notification read goes to the election.
pub(crate) async fn election_listener(ens: Rc<Ensemble>, listener_fd: i32) {
    accept_each(listener_fd, |mut stream| {
        let ens = ens.clone();
        async move {
            while let Ok(frame) = read_frame(&mut stream, quorum::NOTIFICATION_MAX_BYTES).await {
                match quorum::decode_notification(&frame) {
                    Ok(n) => ens.on_notification(n),
                    Err(_) => return,
                }
            }
        }
    })
    .await
}

/// Accepts connections forever, each served by its own task.
async fn accept_each<F: std::future::Future<Output = ()> + 'static>(listener_fd: i32, serve: impl Fn(TcpStream) -> F) {
    // SAFETY: a bound, listening, non-blocking socket that nothing else owns.
    let listener = unsafe { TcpListener::from_raw_fd(listener_fd) };
    loop {
        match listener.accept().await {
            Ok(stream) => {
                glommio::spawn_local(serve(stream)).detach();
            }
            Err(_) => glommio::timer::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// One peer's election messages: connect when needed, drop them while it is unreachable
/// (the election resends).
pub(crate) async fn election_sender(ens: Rc<Ensemble>, peer: ServerId) {
    let (Some(out), Some(addr)) = (ens.election_out.get(&peer).cloned(), ens.election_addrs.get(&peer).copied()) else {
        return;
    };
    let mut stream: Option<TcpStream> = None;
    let mut batch = Vec::new();
    while out.drain(&mut batch).await {
        let bytes: Vec<u8> = batch.drain(..).flatten().collect();
        // Twice at most: a connection the peer closed (it restarted) takes one write without
        // an error, and that notification would be lost; so a closed one is replaced before
        // writing, and a failed write is retried once on a new connection.
        for _ in 0..2 {
            if stream.as_ref().is_some_and(peer_closed) {
                stream = None;
            }
            if stream.is_none() {
                stream = TcpStream::connect_timeout(addr, Duration::from_millis(100)).await.ok();
                if let Some(s) = &stream {
                    let _ = s.set_nodelay(true);
                }
            }
            let Some(s) = stream.as_mut() else { break };
            if s.write_all(&bytes).await.is_ok() {
                break;
            }
            stream = None;
        }
    }
}

/// Whether the peer has closed a connection it never writes to (an election connection): a
/// non-blocking peek sees the end of the stream, or an error.
fn peer_closed(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    // SAFETY: the fd belongs to `stream`, open for this call; MSG_PEEK consumes nothing.
    let n = unsafe { libc::recv(stream.as_raw_fd(), byte.as_mut_ptr().cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
    n == 0 || (n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::WouldBlock)
}

/// Quorum port: learners connect here; only a leader keeps them.
pub(crate) async fn quorum_listener(tree: Rc<RefCell<TreeCore>>, ens: Rc<Ensemble>, listener_fd: i32) {
    accept_each(listener_fd, |stream| serve_learner(tree.clone(), ens.clone(), stream)).await
}

async fn serve_learner(tree: Rc<RefCell<TreeCore>>, ens: Rc<Ensemble>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let fd = stream.as_raw_fd();
    let (mut reader, writer) = futures_lite::io::split(stream);
    let init_ms = ens.init_limit * ens.tick_ms;
    let Ok(QuorumPacket::LearnerInfo { server, accepted_epoch, last_zxid, observer }) =
        read_packet(&mut reader, init_ms).await
    else {
        return;
    };
    let out: Rc<Outbox<Out>> = Rc::new(Outbox::default());
    let now = ens.now_ms();
    if !tree.borrow_mut().leader_register(server, (accepted_epoch, last_zxid, observer), out.clone(), now) {
        return;
    }
    let writer_task = glommio::spawn_local(write_loop(writer, out.clone(), fd)).detach();
    let watchdog = Watchdog::start(&ens, fd, ens.sync_limit.max(ens.init_limit) * ens.tick_ms);
    loop {
        match next_packet(&mut reader).await {
            Ok(p) => {
                let now = ens.now_ms();
                watchdog.heard_ms.set(now);
                tree.borrow_mut().leader_on_packet(server, p, now, crate::runtime::wall_ms());
            }
            Err(e) => {
                let silent = watchdog.expired(ens.now_ms());
                tracing::info!(learner = server, error = %e, silent, "learner gone");
                break;
            }
        }
    }
    watchdog.stopped.set(true);
    tree.borrow_mut().leader_unregister(server, &out);
    out.close();
    let _ = writer_task.await;
}
