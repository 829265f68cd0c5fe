//! A deterministic simulator of a Paddock ensemble: several servers' protocol cores in one
//! thread, with a simulated network, disk and clock, driven by simulated clients, under faults,
//! all decided by one seed. A failing seed replays exactly.
//!
//! What runs is the real code wherever it is free of I/O: each server's [`Server`] (sessions,
//! watches, request preparation, replies, the learner's forwarding and pipelining), the
//! [`DataTree`], [`Election`] (FastLeaderElection), the ZAB rules of `node::zab` (ack counting,
//! epochs, DIFF/TRUNC/SNAP planning, the quorum liveness check), the quorum and election wire
//! codecs (every message is encoded and decoded), the log's record framing and scan (a crash
//! leaves a torn tail that `engine::log::scan` must find) and the snapshot codec. Above all it
//! runs each server's [`QuorumPeer`], the state machine the server runs (discovery, sync,
//! broadcast, heartbeats, the learner's loop, TRUNC/SNAP, role changes): the simulator does
//! for it what `node::ensemble` does (links, epoch files, reloads, ticks), on a simulated
//! network and disk; see ARCHITECTURE.md ("Simulation").
//!
//! Faults: message delay, duplication and reordering of election messages, connection resets,
//! partitions (links go silent, as a cut cable does), crashes (unsynced log lost, the last write
//! torn), whole-ensemble power loss, pauses (SIGSTOP), and slow fsyncs. Invariants checked as the
//! run goes: one leader per epoch; every server commits the same txn at a zxid; commits go
//! forward; FIFO replies per session; a session's zxids never go back, across reconnects; a watch
//! event arrives before a reply reflecting the change. At the end, with faults healed, the
//! servers' trees must agree, and the clients' history (writes, and reads after `sync`, with the
//! final state read back) must be linearizable.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;

use engine::tree::DataTree;
use engine::txn::{Txn, TxnHeader};
use node::election::{ElectionAction, ServerId};
use node::peer::{
    closes_of_role, tree_after_role, Clock, DiskChange, EpochFile, LinkId, PeerAction, PeerConfig, QuorumPeer, RoleView,
};
use node::proto::{
    op, ConnectRequest, ConnectResponse, Packet, Reader, ReplyHeader, Request, Response, WatcherEvent, Writer,
};
use node::quorum::{self, QuorumPacket};
use node::server::{Action, ConnId, Server, ServerSettings, Serving};

use crate::linearizability::{self, code, Event, Op, Outcome};
use crate::Rng;

/// ZooKeeper's timing knobs, as the ensemble tests set them.
const TICK_MS: u64 = 100;
const INIT_LIMIT: u64 = 10;
const SYNC_LIMIT: u64 = 5;
const HEARTBEAT_MS: u64 = 50;
/// Small, so that learners coming back after a while are synced by SNAP as well as DIFF.
const WINDOW_TXNS: usize = 64;
const SESSION_TIMEOUT_MS: i32 = 2000;
const KEYS: [&str; 3] = ["/k0", "/k1", "/k2"];
/// Time allowed, once faults stop, for the ensemble to settle and clients to finish.
const SETTLE_MS: u64 = 15_000;

/// A deliberate bug, switched on only by tests that show the simulator catches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plant {
    None,
    /// The leader counts only its own ack: it commits without a quorum.
    CommitOnMinority,
    /// Servers count a txn durable (and ack it) when written, before its fsync completes.
    AckBeforeFsync,
}

/// One simulation run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    pub voters: u64,
    pub clients: usize,
    /// Simulated time with faults on, before the settling phase.
    pub run_ms: u64,
    pub faults: bool,
    pub plant: Plant,
}

impl SimConfig {
    /// The configuration CI runs for a seed: 3 or 5 voters, faults on.
    pub fn for_seed(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            voters: if seed % 4 == 3 { 5 } else { 3 },
            clients: 4,
            run_ms: 4000,
            faults: true,
            plant: Plant::None,
        }
    }
}

/// What a run did, for the summary line.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub ops: u64,
    pub acked_writes: u64,
    pub commits: u64,
    pub leaders: u64,
    pub crashes: u64,
    pub partitions: u64,
    pub syncs_snap: u64,
    pub syncs_trunc: u64,
    /// A digest of the clients' whole history and of every commit: equal runs, equal digests.
    pub digest: u64,
}

/// A run that broke an invariant: what, when, and where the history went.
#[derive(Debug, Clone)]
pub struct Failure {
    pub seed: u64,
    pub at_ms: u64,
    pub what: String,
    pub history: Option<PathBuf>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "seed {} at {} ms: {}", self.seed, self.at_ms, self.what)?;
        if let Some(h) = &self.history {
            write!(f, " (history in {})", h.display())?;
        }
        Ok(())
    }
}

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum To {
    Peer(ServerId),
    Client(usize),
}

#[derive(Debug)]
enum Wire {
    /// An election notification, a whole frame.
    Vote(Vec<u8>),
    /// A frame on a quorum connection.
    Quorum {
        conn: u64,
        frame: Vec<u8>,
    },
    /// The other end of a quorum connection closed it (its process died or it hung up), or a
    /// connect failed.
    QuorumClosed {
        conn: u64,
    },
    /// An epoch file a server wrote is durable (lost if it crashed since: another incarnation).
    Persisted {
        file: EpochFile,
        epoch: u64,
        incarnation: u64,
    },
    /// A server's reload is done.
    Reloaded {
        incarnation: u64,
    },
    /// A client's frame to a server (the first is the handshake).
    ToServer {
        conn: ConnId,
        frame: Vec<u8>,
    },
    ToClient {
        conn: ConnId,
        frame: Vec<u8>,
    },
    /// The server closed the client's connection (or died).
    ClientClosed {
        conn: ConnId,
    },
    /// The client hung up.
    ServerSideClosed {
        conn: ConnId,
    },
}

/// A quorum connection: learner to leader.
struct QConn {
    learner: ServerId,
    leader: ServerId,
    /// What the learner's peer calls it.
    learner_link: LinkId,
    /// What the leader's peer calls it, once its first packet arrived.
    leader_link: Option<LinkId>,
    open: bool,
    /// Cut by a partition: whatever is sent is lost, and nobody is told (a silent cable).
    dead: bool,
}

/// A server's disk: snapshots, one log of framed records, the epoch files.
#[derive(Default)]
struct Disk {
    snapshots: Vec<(i64, Vec<u8>)>,
    log: Vec<u8>,
    synced_bytes: usize,
    accepted_epoch: u64,
    current_epoch: u64,
}

impl Disk {
    fn new() -> Disk {
        Disk { log: engine::log::segment_header(1), synced_bytes: engine::log::BLOCK_BYTES, ..Disk::default() }
    }

    /// Cuts the log after `zxid` and drops snapshots beyond it (`recovery::truncate_after`).
    fn truncate_after(&mut self, zxid: i64) -> Result<(), String> {
        let scan = engine::log::scan(&self.log).map_err(|e| format!("log unreadable: {e}"))?;
        let end = scan
            .records
            .iter()
            .take_while(|r| r.zxid <= zxid)
            .last()
            .map_or(engine::log::BLOCK_BYTES, |r| r.payload.end);
        self.log.truncate(end);
        self.synced_bytes = self.synced_bytes.min(end);
        self.snapshots.retain(|(z, _)| *z <= zxid);
        Ok(())
    }

    /// The tree a restart recovers: the newest snapshot, then the log after it.
    fn recover(&mut self) -> Result<DataTree, String> {
        let mut tree = match self.snapshots.last() {
            Some((z, bytes)) => {
                let s = engine::snapshot::decode(bytes, "sim").map_err(|e| format!("snapshot {z:#x}: {e}"))?;
                DataTree::restore(s.nodes, s.sessions, s.zxid)
            }
            None => DataTree::new(),
        };
        let scan = engine::log::scan(&self.log).map_err(|e| format!("log unreadable: {e}"))?;
        for r in &scan.records {
            if r.zxid > tree.last_zxid() {
                let (hdr, txn) = engine::codec::decode_txn(&self.log[r.payload.clone()])
                    .map_err(|e| format!("record {:#x}: {e:?}", r.zxid))?;
                tree.apply(&hdr, &txn);
            }
        }
        // Appends resume where the scan says, as the log's own recovery does: garbage a torn
        // write left is zeroed, and a few bytes of a record's length field (which read as the
        // zeros of padding) are not mistaken for the end of the log.
        match scan.end {
            engine::log::LogEnd::Clean { append_at } => self.log.resize(append_at, 0),
            engine::log::LogEnd::Torn { offset, append_at } => {
                self.log.truncate(offset);
                self.log.resize(append_at, 0);
            }
            engine::log::LogEnd::Corrupt { offset } => return Err(format!("log corrupt at {offset}")),
        }
        self.synced_bytes = self.log.len();
        Ok(tree)
    }
}

struct Peer {
    id: ServerId,
    up: bool,
    paused_until_ms: u64,
    /// What arrived while paused, in order: a stopped process's socket buffers.
    inbox: VecDeque<Wire>,
    /// Bumped by each crash: what a dead process started (an epoch write, a reload) never ends.
    incarnation: u64,
    disk: Disk,
    server: Server,
    peer: QuorumPeer,
    held: VecDeque<(i64, Vec<Action>)>,
    durable_zxid: i64,
    /// An fsync in flight: when it completes, the log length it covers, the zxid it makes durable.
    fsync: Option<(u64, usize, i64)>,
    slow_disk_until_ms: u64,
    /// The protocol core's next tick (every 5 ms).
    next_tick_ms: u64,
    /// The peer's next tick (`QuorumPeer::tick_interval_ms`).
    next_peer_tick_ms: u64,
    /// The last zxid this server committed (for "commits go forward"), since its role began.
    last_commit: i64,
}

/// An op a client waits on.
enum Pending {
    /// A write or a read after sync, for the history (index of its event).
    Checked {
        xid: i32,
        opcode: i32,
        event: usize,
    },
    /// The sync before a checked read.
    Sync {
        xid: i32,
    },
    /// A plain getData with a watch: may be stale, must be monotonic.
    Read {
        xid: i32,
        path: String,
    },
    Ping,
}

struct Client {
    conn: Option<ConnId>,
    handshake: bool,
    session: Option<(i64, Vec<u8>)>,
    /// Session number in the history (a new one each time a session is created).
    history_session: u64,
    last_zxid_seen: i64,
    next_xid: i32,
    pending: VecDeque<Pending>,
    next_op_ms: u64,
    last_sent_ms: u64,
    /// Data watches held: (path, mzxid the read returned).
    watches: Vec<(String, i64)>,
}

/// The whole simulated world.
pub struct Sim {
    cfg: SimConfig,
    rng: Rng,
    now_ms: u64,
    clock_seq: u64,
    peers: Vec<Peer>,
    voters: BTreeSet<ServerId>,
    clients: Vec<Client>,
    queue: BTreeMap<(u64, u64), (To, Wire)>,
    seq: u64,
    /// FIFO channels: the last delivery time per (from, to) stream.
    channel_last: HashMap<(u64, u64, u64), u64>,
    qconns: HashMap<u64, QConn>,
    /// (server, its peer's link) → quorum connection.
    links: HashMap<(ServerId, LinkId), u64>,
    next_qconn: u64,
    next_client_conn: u64,
    client_conns: HashMap<ConnId, (usize, ServerId)>,
    cut: BTreeSet<(ServerId, ServerId)>,
    history: Vec<Event>,
    next_value: u64,
    next_history_session: u64,
    /// zxid → digest of the committed txn, as the first server to commit it saw it.
    committed: BTreeMap<i64, u64>,
    /// path → zxids that changed its data or deleted it (for watch ordering).
    changes: HashMap<String, BTreeSet<i64>>,
    leaders: BTreeMap<u64, ServerId>,
    /// session id → the highest reply zxid seen on it.
    session_zxid: HashMap<i64, i64>,
    /// Client connections whose handshake reached their server.
    handshaken: HashSet<ConnId>,
    failure: Option<String>,
    report: Report,
    faults_on: bool,
    /// `PADDOCK_SIM_TRACE=1`: print what happens, to read a failing seed.
    trace: bool,
    violation: Option<linearizability::Violation>,
}

fn digest(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

fn txn_paths(txn: &Txn, out: &mut Vec<String>) {
    match txn {
        Txn::SetData { path, .. } | Txn::Delete { path } => out.push(path.clone()),
        Txn::Multi(ops) => ops.iter().for_each(|t| txn_paths(t, out)),
        _ => {}
    }
}

fn settings(id: ServerId) -> ServerSettings {
    ServerSettings {
        tick_ms: TICK_MS,
        min_session_timeout_ms: 2 * TICK_MS as i32,
        max_session_timeout_ms: 20 * TICK_MS as i32,
        extended_types: false,
        enforce_quota: false,
        super_digest: None,
        container_check_interval_ms: 60_000,
        container_max_per_minute: 10_000,
        secret: 0x5eed_5eed,
        server_id: id,
    }
}

/// The peer's configuration, as the ensemble tests' zoo.cfg sets it.
fn peer_config(id: ServerId, voters: &BTreeSet<ServerId>, plant: Plant) -> PeerConfig {
    PeerConfig {
        me: id,
        observer: false,
        voters: voters.clone(),
        tick_ms: TICK_MS,
        init_limit: INIT_LIMIT,
        sync_limit: SYNC_LIMIT,
        heartbeat_ms: HEARTBEAT_MS,
        window_txns: WINDOW_TXNS,
        read_only_mode: false,
        observe_commits: true,
        plant_commit_on_minority: plant == Plant::CommitOnMinority,
    }
}

/// Wall-clock time the servers see: fixed origin, simulated progress.
fn wall(now_ms: u64) -> i64 {
    1_700_000_000_000 + now_ms as i64
}

fn client_addr(idx: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 40_000 + idx as u16))
}

impl Sim {
    pub fn new(cfg: SimConfig) -> Sim {
        let voters: BTreeSet<ServerId> = (1..=cfg.voters).collect();
        let peers = voters
            .iter()
            .map(|&id| {
                let mut server = Server::new(settings(id), wall(0));
                server.set_serving(Serving::No);
                Peer {
                    id,
                    up: true,
                    paused_until_ms: 0,
                    inbox: VecDeque::new(),
                    incarnation: 0,
                    disk: Disk::new(),
                    server,
                    peer: QuorumPeer::new(peer_config(id, &voters, cfg.plant), 0, 0, 0),
                    held: VecDeque::new(),
                    durable_zxid: 0,
                    fsync: None,
                    slow_disk_until_ms: 0,
                    next_tick_ms: 0,
                    next_peer_tick_ms: 0,
                    last_commit: 0,
                }
            })
            .collect();
        let clients = (0..cfg.clients)
            .map(|_| Client {
                conn: None,
                handshake: false,
                session: None,
                history_session: 0,
                last_zxid_seen: 0,
                next_xid: 1,
                pending: VecDeque::new(),
                next_op_ms: 0,
                last_sent_ms: 0,
                watches: Vec::new(),
            })
            .collect();
        let seed = cfg.seed;
        let faults_on = cfg.faults;
        Sim {
            cfg,
            rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
            now_ms: 0,
            clock_seq: 0,
            peers,
            voters,
            clients,
            queue: BTreeMap::new(),
            seq: 0,
            channel_last: HashMap::new(),
            qconns: HashMap::new(),
            links: HashMap::new(),
            next_qconn: 1,
            next_client_conn: 1,
            client_conns: HashMap::new(),
            cut: BTreeSet::new(),
            history: Vec::new(),
            next_value: 1,
            next_history_session: 1,
            committed: BTreeMap::new(),
            changes: HashMap::new(),
            leaders: BTreeMap::new(),
            session_zxid: HashMap::new(),
            handshaken: HashSet::new(),
            failure: None,
            report: Report::default(),
            faults_on,
            trace: std::env::var_os("PADDOCK_SIM_TRACE").is_some(),
            violation: None,
        }
    }

    fn below(&mut self, n: u64) -> u64 {
        self.rng.next() % n.max(1)
    }

    fn chance(&mut self, per_million: u64) -> bool {
        self.below(1_000_000) < per_million
    }

    fn trace(&self, what: impl FnOnce() -> String) {
        if self.trace {
            eprintln!("{:>6} ms  {}", self.now_ms, what());
        }
    }

    fn fail(&mut self, what: String) {
        if self.failure.is_none() {
            self.failure = Some(what);
        }
    }

    /// A history timestamp: simulated ms, refined by the order of events within it.
    fn stamp(&mut self) -> u64 {
        self.clock_seq += 1;
        self.now_ms * 1_000_000 + self.clock_seq % 1_000_000
    }

    fn peer(&mut self, id: ServerId) -> &mut Peer {
        &mut self.peers[(id - 1) as usize]
    }

    fn is_cut(&self, a: ServerId, b: ServerId) -> bool {
        self.cut.contains(&(a.min(b), a.max(b)))
    }

    /// Queues a message; `stream` keeps FIFO order within a connection (None: may reorder).
    fn send(&mut self, to: To, wire: Wire, stream: Option<(u64, u64, u64)>) {
        let delay = 1 + self.below(if self.faults_on { 8 } else { 3 });
        let mut at = self.now_ms + delay;
        if let Some(key) = stream {
            let last = self.channel_last.entry(key).or_insert(0);
            at = at.max(*last);
            *last = at;
        }
        self.seq += 1;
        self.queue.insert((at, self.seq), (to, wire));
    }

    fn send_quorum(&mut self, conn: u64, from: ServerId, frame: Vec<u8>) {
        let Some(c) = self.qconns.get(&conn) else { return };
        if !c.open || c.dead {
            return;
        }
        let to = if c.learner == from { c.leader } else { c.learner };
        if self.is_cut(from, to) {
            // The cable is cut: this connection is silent from now on, both ways.
            if let Some(c) = self.qconns.get_mut(&conn) {
                c.dead = true;
            }
            return;
        }
        self.send(To::Peer(to), Wire::Quorum { conn, frame }, Some((conn, from, to)));
    }

    /// One side closes a quorum connection; the other learns it shortly (unless cut).
    fn close_quorum(&mut self, conn: u64, by: ServerId) {
        let Some(c) = self.qconns.get_mut(&conn) else { return };
        if !c.open {
            return;
        }
        c.open = false;
        let (dead, other) = (c.dead, if c.learner == by { c.leader } else { c.learner });
        if !dead {
            self.send(To::Peer(other), Wire::QuorumClosed { conn }, Some((conn, by, other)));
        }
    }

    fn broadcast_vote(&mut self, from: ServerId, to: ServerId, frame: Vec<u8>) {
        if to == from || self.is_cut(from, to) {
            return;
        }
        if self.faults_on && self.chance(20_000) {
            return;
        }
        if self.faults_on && self.chance(20_000) {
            self.send(To::Peer(to), Wire::Vote(frame.clone()), None);
        }
        self.send(To::Peer(to), Wire::Vote(frame), None);
    }

    fn perform_election(&mut self, from: ServerId, action: ElectionAction) {
        match action {
            ElectionAction::Broadcast(n) => {
                let frame = quorum::encode_notification(&n);
                let ids: Vec<ServerId> = self.voters.iter().copied().collect();
                for to in ids {
                    self.broadcast_vote(from, to, frame.clone());
                }
            }
            ElectionAction::Send { to, notification } => {
                self.broadcast_vote(from, to, quorum::encode_notification(&notification));
            }
            ElectionAction::Decided { leader, epoch, state } => {
                self.trace(|| format!("server {from} decides: {state:?}, leader {leader} epoch {epoch}"))
            }
        }
    }

    // ---- The peers: each runs `node::peer::QuorumPeer`; the world carries out its actions. ----

    fn clock(&self) -> Clock {
        Clock { now_ms: self.now_ms, wall_ms: wall(self.now_ms) }
    }

    /// Feeds a server's peer one event and carries out what it asks (`TreeCore::peer_event`).
    fn peer_event(
        &mut self,
        id: ServerId,
        event: impl FnOnce(&mut QuorumPeer, &mut Server, Clock, &mut Vec<PeerAction>),
    ) {
        let clock = self.clock();
        let p = self.peer(id);
        let interval_ms = p.peer.tick_interval_ms();
        let mut actions = Vec::new();
        event(&mut p.peer, &mut p.server, clock, &mut actions);
        let shorter = p.peer.tick_interval_ms();
        if shorter < interval_ms {
            // As the runtime's ticker is woken early.
            p.next_peer_tick_ms = p.next_peer_tick_ms.min(clock.now_ms + shorter);
        }
        self.perform(id, actions);
    }

    /// What `node::ensemble` does with each action, with a simulated network and disk. Epoch
    /// files and reloads finish a few ms later (a crash in between loses them), so the peer's
    /// waiting states see other events meanwhile, as they do on a real disk.
    fn perform(&mut self, id: ServerId, actions: Vec<PeerAction>) {
        for action in actions {
            match action {
                PeerAction::Election(e) => self.perform_election(id, e),
                PeerAction::Connect { link, leader } => self.connect(id, link, leader),
                PeerAction::Send { link, frame } => {
                    if let Some(conn) = self.links.get(&(id, link)).copied() {
                        self.send_quorum(conn, id, frame);
                    }
                }
                PeerAction::Close { link } => {
                    if let Some(conn) = self.links.remove(&(id, link)) {
                        self.close_quorum(conn, id);
                    }
                }
                PeerAction::PersistEpoch { file, epoch } => {
                    self.trace(|| format!("server {id} persists {} {epoch}", file.file_name()));
                    let incarnation = self.peer(id).incarnation;
                    self.send(To::Peer(id), Wire::Persisted { file, epoch, incarnation }, Some((0, id, id)));
                }
                // Every simulated server starts with the same secret.
                PeerAction::StoreSecret { .. } => {}
                PeerAction::Route(actions) => self.route(id, actions),
                PeerAction::Release { zxid } => self.release(id, zxid),
                PeerAction::SendNow(actions) => self.deliver_actions(id, actions),
                PeerAction::LogPending => self.kick_log(id),
                PeerAction::Reload { change, logged } => {
                    self.trace(|| format!("server {id} reloads ({change:?})"));
                    self.reload(id, change, logged);
                    let incarnation = self.peer(id).incarnation;
                    self.send(To::Peer(id), Wire::Reloaded { incarnation }, Some((0, id, id)));
                }
                PeerAction::Leading { epoch } => {
                    let last = self.peer(id).server.tree().last_zxid();
                    self.trace(|| format!("server {id} leads epoch {epoch}, history to {last:#x}"));
                    self.report.leaders += 1;
                    if let Some(other) = self.leaders.insert(epoch, id) {
                        if other != id {
                            self.fail(format!("two leaders in epoch {epoch}: {other} and {id}"));
                        }
                    }
                }
                PeerAction::Committed { zxid, payload } => self.record_commit(id, zxid, &payload),
            }
        }
    }

    /// A learner opens a quorum link: refused at once by a server that is down, timed out
    /// (200 ms, as the runtime's connect) across a cut.
    fn connect(&mut self, id: ServerId, link: LinkId, leader: ServerId) {
        self.trace(|| format!("server {id} connects to {leader}"));
        let conn = self.next_qconn;
        self.next_qconn += 1;
        self.qconns.insert(
            conn,
            QConn { learner: id, leader, learner_link: link, leader_link: None, open: true, dead: false },
        );
        self.links.insert((id, link), conn);
        let up = self.peer(leader).up;
        if !up || self.is_cut(id, leader) {
            if let Some(c) = self.qconns.get_mut(&conn) {
                c.open = false;
            }
            let at = self.now_ms + if up { 200 } else { 1 + self.below(3) };
            self.seq += 1;
            self.queue.insert((at, self.seq), (To::Peer(id), Wire::QuorumClosed { conn }));
            return;
        }
        self.peer_event(id, |p, s, _, out| p.on_link_opened(link, s, out));
    }

    /// Carries out a `Reload` (`ensemble::reload`): clients are dropped, the log drained, and
    /// the tree in memory (with a learner's logged proposals) kept, or, with a disk change,
    /// read back from the cut disk.
    fn reload(&mut self, id: ServerId, change: DiskChange, logged: VecDeque<(TxnHeader, Txn)>) {
        self.flush_log(id);
        let now = self.now_ms;
        let p = self.peer(id);
        let conns = p.server.all_connections();
        p.server.set_serving(Serving::No);
        let mut closes = closes_of_role(conns, p.held.drain(..).map(|(_, actions)| actions));
        closes.sort_by_key(|a| match a {
            Action::Close { conn } => *conn,
            _ => ConnId { core: 0, id: 0 },
        });
        let secret = p.server.settings().secret;
        self.deliver_actions(id, closes);
        let cut = match change {
            DiskChange::None => None,
            DiskChange::Trunc(zxid) => {
                self.report.syncs_trunc += 1;
                Some((zxid, None))
            }
            DiskChange::Snap(zxid, snapshot) => {
                self.report.syncs_snap += 1;
                Some((zxid, Some(snapshot)))
            }
        };
        let tree = match cut {
            None => Ok(tree_after_role(&mut self.peer(id).server, &logged)),
            Some((zxid, snapshot)) => {
                if self.trace {
                    let p = self.peer(id);
                    let scan = engine::log::scan(&p.disk.log).map(|s| {
                        (s.records.first().map(|r| r.zxid), s.records.last().map(|r| r.zxid), s.records.len(), s.end)
                    });
                    let snaps: Vec<i64> = p.disk.snapshots.iter().map(|x| x.0).collect();
                    eprintln!(
                        "{:>6} ms  server {id} cuts its disk after {zxid:#x}: log {scan:x?}, snapshots {snaps:x?}",
                        self.now_ms
                    );
                }
                let p = self.peer(id);
                p.disk.truncate_after(zxid).and_then(|()| {
                    if let Some(bytes) = snapshot {
                        p.disk.snapshots.push((zxid, bytes));
                    }
                    p.disk.recover()
                })
            }
        };
        let tree = match tree {
            Ok(t) => t,
            Err(e) => {
                self.fail(format!("server {id}: {e}"));
                DataTree::new()
            }
        };
        let p = self.peer(id);
        let mut s = settings(id);
        s.secret = secret;
        let mut server = Server::with_tree(s, tree, now, wall(now));
        server.set_serving(Serving::No);
        p.durable_zxid = server.tree().last_zxid();
        p.server = server;
        p.last_commit = 0;
    }

    /// Routes the protocol core's actions (`TreeCore::route`): forwards go to the leader;
    /// replies wait until what they reflect is durable or committed.
    fn route(&mut self, id: ServerId, mut actions: Vec<Action>) {
        // Deterministic order across connections (the core's tables are hash maps); each
        // connection's own order is kept.
        actions.sort_by_key(|a| match a {
            Action::Send { conn, .. } | Action::Close { conn } => (1, *conn),
            Action::Forward(_) => (0, ConnId { core: 0, id: 0 }),
        });
        let mut rest = Vec::with_capacity(actions.len());
        for a in actions {
            match a {
                Action::Forward(f) => self.peer_event(id, |p, _, _, out| p.forward(f, out)),
                other => rest.push(other),
            }
        }
        self.kick_log(id);
        if rest.is_empty() {
            return;
        }
        let p = self.peer(id);
        let needed = p.server.tree().last_zxid();
        if needed <= p.peer.releasable() && p.held.is_empty() {
            self.deliver_actions(id, rest);
        } else {
            p.held.push_back((needed, rest));
        }
    }

    /// Starts a log write if none is in flight (the log task's loop).
    fn kick_log(&mut self, id: ServerId) {
        let now = self.now_ms;
        let slow = self.peer(id).slow_disk_until_ms > now;
        let fsync_ms = if slow { 40 + self.below(120) } else { 1 + self.below(4) };
        let plant = self.cfg.plant;
        let p = self.peer(id);
        if p.fsync.is_some() || !p.up {
            return;
        }
        let Some(batch) = p.server.take_log(1 << 20) else { return };
        p.disk.log.extend_from_slice(&batch.bytes);
        let (end, last) = (p.disk.log.len(), batch.last_zxid());
        p.fsync = Some((now + fsync_ms, end, last));
        // A leader proposes the batch to its learners while writing it.
        self.peer_event(id, |p, _, _, out| p.on_proposed(&batch, out));
        if plant == Plant::AckBeforeFsync {
            self.durable(id, last);
        }
    }

    /// The log is durable up to `zxid` (`TreeCore::durable`).
    fn durable(&mut self, id: ServerId, zxid: i64) {
        let p = self.peer(id);
        if zxid <= p.durable_zxid {
            return;
        }
        p.durable_zxid = zxid;
        self.peer_event(id, |p, _, c, out| p.on_durable(zxid, c, out));
    }

    fn peer_tick(&mut self, id: ServerId) {
        let now = self.now_ms;
        let p = self.peer(id);
        if !p.up || p.paused_until_ms > now {
            return;
        }
        if p.fsync.is_some_and(|(at, ..)| at <= now) {
            self.fsync_done(id);
        }
        let p = self.peer(id);
        if now >= p.next_tick_ms {
            p.next_tick_ms = now + 5;
            let mut out = Vec::new();
            p.server.tick(now, wall(now), &mut out);
            self.route(id, out);
        }
        // The peer's own cadence, as `ensemble`'s ticker keeps it.
        let p = self.peer(id);
        if now >= p.next_peer_tick_ms {
            p.next_peer_tick_ms = now + p.peer.tick_interval_ms();
            self.peer_event(id, |p, s, c, out| p.tick(c, s, out));
        }
    }

    // ---- Message delivery. ----

    fn peer_receives(&mut self, id: ServerId, wire: Wire) {
        let now = self.now_ms;
        match wire {
            Wire::Vote(frame) => {
                let Ok(n) = quorum::decode_notification(&frame[4..]) else {
                    self.fail(format!("server {id}: undecodable notification"));
                    return;
                };
                self.peer_event(id, |p, s, c, out| p.on_notification(n, c, s, out));
            }
            Wire::Quorum { conn, frame } => {
                let packet = match QuorumPacket::decode(&frame[4..]) {
                    Ok(p) => p,
                    Err(e) => {
                        self.fail(format!("server {id}: undecodable quorum packet: {e}"));
                        return;
                    }
                };
                let Some(link) = self.link_of(id, conn) else { return };
                self.peer_event(id, |p, s, c, out| p.on_packet(link, packet, c, s, out));
            }
            Wire::QuorumClosed { conn } => {
                let Some(link) = self.link_of(id, conn) else { return };
                if let Some(c) = self.qconns.get_mut(&conn) {
                    c.open = false;
                }
                self.links.remove(&(id, link));
                self.peer_event(id, |p, _, c, out| p.on_link_closed(link, c, out));
            }
            Wire::Persisted { file, epoch, incarnation } => {
                if incarnation != self.peer(id).incarnation {
                    return;
                }
                let disk = &mut self.peer(id).disk;
                match file {
                    EpochFile::Accepted => disk.accepted_epoch = epoch,
                    EpochFile::Current => disk.current_epoch = epoch,
                }
                self.peer_event(id, |p, s, c, out| p.on_epoch_persisted(file, epoch, c, s, out));
            }
            Wire::Reloaded { incarnation } => {
                if incarnation == self.peer(id).incarnation {
                    self.peer_event(id, |p, s, c, out| p.on_reloaded(c, s, out));
                    let (role, zxid) = (self.peer(id).peer.role(), self.peer(id).server.tree().last_zxid());
                    self.trace(|| format!("server {id} reloaded at {zxid:#x}: {role:?}"));
                }
            }
            Wire::ToServer { conn, frame } => {
                if !self.client_conns.contains_key(&conn) {
                    return;
                }
                let mut out = Vec::new();
                if self.handshaken.contains(&conn) {
                    match Packet::decode(&frame[4..]) {
                        Ok(packet) => self.peer(id).server.request(conn, packet, now, wall(now), &mut out),
                        Err(e) => self.fail(format!("server {id}: undecodable client frame: {e}")),
                    }
                } else {
                    let mut r = Reader::new(&frame[4..]);
                    match ConnectRequest::decode(&mut r) {
                        Ok(req) => {
                            let addr = client_addr(self.client_conns.get(&conn).map_or(0, |c| c.0));
                            self.mark_handshaken(conn);
                            self.peer(id).server.connect(conn, addr, &req, now, wall(now), &mut out);
                        }
                        Err(e) => self.fail(format!("server {id}: undecodable handshake: {e}")),
                    }
                }
                self.route(id, out);
            }
            Wire::ServerSideClosed { conn } => {
                self.peer(id).server.disconnected(conn);
                self.client_conns.remove(&conn);
            }
            Wire::ToClient { .. } | Wire::ClientClosed { .. } => {}
        }
    }

    /// The link a server's peer knows a quorum connection by: on the leader's side, named when
    /// its first packet arrives (as the runtime names an accepted link).
    fn link_of(&mut self, id: ServerId, conn: u64) -> Option<LinkId> {
        let c = self.qconns.get(&conn)?;
        if c.learner == id {
            return Some(c.learner_link);
        }
        if let Some(link) = c.leader_link {
            return Some(link);
        }
        if !c.open {
            return None;
        }
        let link = self.peer(id).peer.new_link();
        self.links.insert((id, link), conn);
        if let Some(c) = self.qconns.get_mut(&conn) {
            c.leader_link = Some(link);
        }
        Some(link)
    }

    fn close_clients(&mut self, id: ServerId, mut conns: Vec<ConnId>) {
        conns.sort();
        for conn in conns {
            if let Some((client, _)) = self.client_conns.remove(&conn) {
                self.send(To::Client(client), Wire::ClientClosed { conn }, Some((conn.id, id, 0)));
            }
        }
    }

    fn release(&mut self, id: ServerId, zxid: i64) {
        loop {
            let p = self.peer(id);
            if p.held.front().is_none_or(|(needed, _)| *needed > zxid) {
                return;
            }
            if let Some((_, actions)) = p.held.pop_front() {
                self.deliver_actions(id, actions);
            }
        }
    }

    fn deliver_actions(&mut self, id: ServerId, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Send { conn, frame } => {
                    if let Some((client, _)) = self.client_conns.get(&conn).copied() {
                        self.send(To::Client(client), Wire::ToClient { conn, frame }, Some((conn.id, id, 0)));
                    }
                }
                Action::Close { conn } => {
                    self.peer(id).server.disconnected(conn);
                    if let Some((client, _)) = self.client_conns.remove(&conn) {
                        self.send(To::Client(client), Wire::ClientClosed { conn }, Some((conn.id, id, 0)));
                    }
                }
                Action::Forward(_) => {}
            }
        }
    }

    fn fsync_done(&mut self, id: ServerId) {
        let p = self.peer(id);
        let Some((_, end, last)) = p.fsync.take() else { return };
        p.disk.synced_bytes = p.disk.synced_bytes.max(end.min(p.disk.log.len()));
        if self.cfg.plant != Plant::AckBeforeFsync {
            self.durable(id, last);
        }
        self.kick_log(id);
    }

    fn record_commit(&mut self, id: ServerId, zxid: i64, payload: &[u8]) {
        if self.trace {
            let txn = engine::codec::decode_txn(payload).map(|(_, t)| t);
            self.trace(|| format!("server {id} commits {zxid:#x} {txn:?}"));
        }
        self.report.commits += 1;
        let d = digest(payload);
        let last = std::mem::replace(&mut self.peer(id).last_commit, zxid);
        if zxid <= last {
            self.fail(format!("server {id} committed {zxid:#x} after {last:#x}"));
        }
        match self.committed.get(&zxid) {
            Some(&known) if known != d => {
                self.fail(format!("server {id} committed a different txn at {zxid:#x} than another server did"))
            }
            Some(_) => {}
            None => {
                self.committed.insert(zxid, d);
                if let Ok((_, txn)) = engine::codec::decode_txn(payload) {
                    let mut paths = Vec::new();
                    txn_paths(&txn, &mut paths);
                    for path in paths {
                        self.changes.entry(path).or_default().insert(zxid);
                    }
                }
            }
        }
    }

    /// Writes what the server has queued for the log, flushing at once, as the log task does
    /// when a role ends.
    fn flush_log(&mut self, id: ServerId) {
        let p = self.peer(id);
        while let Some(batch) = p.server.take_log(usize::MAX) {
            p.disk.log.extend_from_slice(&batch.bytes);
        }
        p.disk.synced_bytes = p.disk.log.len();
        p.fsync = None;
    }

    fn deliver(&mut self, to: To, wire: Wire) {
        match to {
            To::Peer(id) => {
                let now = self.now_ms;
                let p = self.peer(id);
                if !p.up {
                    if let Wire::ToServer { conn, .. } = wire {
                        if let Some((client, _)) = self.client_conns.remove(&conn) {
                            self.send(To::Client(client), Wire::ClientClosed { conn }, None);
                        }
                    }
                    return;
                }
                if p.paused_until_ms > now || !p.inbox.is_empty() {
                    // A stopped process reads nothing; its socket buffers hold what arrives.
                    p.inbox.push_back(wire);
                    return;
                }
                self.peer_receives(id, wire);
            }
            To::Client(idx) => self.client_receives(idx, wire),
        }
    }

    fn mark_handshaken(&mut self, conn: ConnId) {
        self.handshaken.insert(conn);
    }
}

// ---- Clients. ----

/// What a client's next op is.
enum Choice {
    Write(Op),
    /// A multi of check(version) and setData: a conditional set, all or nothing.
    Multi(i32),
    SyncedRead,
    PlainRead,
}

impl Sim {
    fn client_send(&mut self, idx: usize, frame: Vec<u8>) {
        let c = &mut self.clients[idx];
        let Some(conn) = c.conn else { return };
        c.last_sent_ms = self.now_ms;
        let Some(&(_, server)) = self.client_conns.get(&conn) else { return };
        self.send(To::Peer(server), Wire::ToServer { conn, frame }, Some((conn.id, 0, server)));
    }

    fn client_connect(&mut self, idx: usize) {
        let server = 1 + self.below(self.cfg.voters);
        let conn = ConnId { core: 0, id: self.next_client_conn };
        self.next_client_conn += 1;
        self.client_conns.insert(conn, (idx, server));
        self.trace(|| format!("client {idx} connects to server {server} (connection {})", conn.id));
        let c = &mut self.clients[idx];
        c.conn = Some(conn);
        c.handshake = true;
        let req = match &c.session {
            Some((id, password)) => ConnectRequest::resume(*id, password, c.last_zxid_seen, SESSION_TIMEOUT_MS),
            None => {
                let mut r = ConnectRequest::new_session(SESSION_TIMEOUT_MS);
                r.last_zxid_seen = c.last_zxid_seen;
                r
            }
        };
        let mut w = Writer::frame();
        req.encode(&mut w);
        self.client_send(idx, w.finish_frame());
    }

    /// The connection ended: what was in flight has an unknown outcome; watches are forgotten.
    fn client_disconnected(&mut self, idx: usize) {
        self.trace(|| format!("client {idx} disconnected"));
        let now = self.now_ms;
        let c = &mut self.clients[idx];
        if let Some(conn) = c.conn.take() {
            let still_open = self.client_conns.remove(&conn);
            if let Some((_, server)) = still_open {
                self.send(To::Peer(server), Wire::ServerSideClosed { conn }, Some((conn.id, 0, server)));
            }
        }
        let c = &mut self.clients[idx];
        c.handshake = false;
        c.pending.clear();
        c.watches.clear();
        c.next_op_ms = now + 5 + self.rng.next() % 40;
    }

    fn client_receives(&mut self, idx: usize, wire: Wire) {
        let (conn, frame) = match wire {
            Wire::ToClient { conn, frame } => (conn, frame),
            Wire::ClientClosed { conn } => {
                if self.clients[idx].conn == Some(conn) {
                    self.client_disconnected(idx);
                }
                return;
            }
            _ => return,
        };
        if self.clients[idx].conn != Some(conn) {
            return;
        }
        let mut r = Reader::new(&frame[4..]);
        if self.clients[idx].handshake {
            let Ok(resp) = ConnectResponse::decode(&mut r) else {
                self.fail(format!("client {idx}: undecodable handshake reply"));
                return;
            };
            let c = &mut self.clients[idx];
            c.handshake = false;
            if resp.session_id == 0 || resp.timeout_ms <= 0 {
                // Expired: start a new session (a new one in the history too).
                c.session = None;
                self.client_disconnected(idx);
                return;
            }
            if c.session.as_ref().map(|s| s.0) != Some(resp.session_id) {
                c.history_session = self.next_history_session;
                self.next_history_session += 1;
            }
            c.session = Some((resp.session_id, resp.password));
            let (hs, server) = (c.history_session, self.client_conns.get(&conn).map_or(0, |x| x.1));
            self.trace(|| format!("client {idx} has session {:#x} (history {hs}) on server {server}", resp.session_id));
            return;
        }
        let Ok(h) = ReplyHeader::decode(&mut r) else {
            self.fail(format!("client {idx}: undecodable reply header"));
            return;
        };
        if h.xid == -1 {
            if let Ok(ev) = WatcherEvent::decode(&mut r) {
                self.clients[idx].watches.retain(|(p, _)| *p != ev.path);
            }
            return;
        }
        self.check_session_order(idx, h.zxid);
        let Some(front) = self.clients[idx].pending.pop_front() else {
            self.fail(format!("client {idx}: a reply (xid {}) nobody waits for", h.xid));
            return;
        };
        let now = self.stamp();
        match front {
            Pending::Ping => {
                if h.xid != -2 {
                    self.fail(format!("client {idx}: reply xid {} where the ping's was due", h.xid));
                }
            }
            Pending::Sync { xid } => self.check_xid(idx, xid, h.xid),
            Pending::Read { xid, path } => {
                self.check_xid(idx, xid, h.xid);
                if h.err == 0 {
                    if let Ok(Response::Data(_, stat)) = Response::decode(op::GET_DATA, &mut r) {
                        self.clients[idx].watches.push((path, stat.mzxid));
                    }
                }
            }
            Pending::Checked { xid, opcode, event } => {
                self.check_xid(idx, xid, h.xid);
                let op = self.history[event].op;
                let outcome = match (op, h.err) {
                    (Op::Get, 0) => match Response::decode(opcode, &mut r) {
                        Ok(Response::Data(data, stat)) => {
                            let value = std::str::from_utf8(&data).ok().and_then(|s| s.parse().ok());
                            Some(Outcome { code: 0, value, version: Some(stat.version) })
                        }
                        _ => None,
                    },
                    (Op::Set { .. }, 0) => match Response::decode(opcode, &mut r) {
                        Ok(Response::Stat(stat)) => Some(Outcome { code: 0, value: None, version: Some(stat.version) }),
                        Ok(Response::Multi(results)) => match results.get(1).map(|m| &m.response) {
                            Some(Response::Stat(stat)) => {
                                Some(Outcome { code: 0, value: None, version: Some(stat.version) })
                            }
                            _ => None,
                        },
                        _ => None,
                    },
                    (_, code::OK | code::NO_NODE | code::NODE_EXISTS | code::BAD_VERSION) => {
                        Some(Outcome { code: h.err, value: None, version: None })
                    }
                    // Anything else (session expired, not serving, ...) says nothing certain.
                    _ => None,
                };
                if self.trace {
                    let e = &self.history[event];
                    let line = format!("client {idx} {:?} {} -> err {} zxid {:#x}", e.op, e.path, h.err, h.zxid);
                    self.trace(|| line);
                }
                if let Some(o) = outcome {
                    self.history[event].ret = Some((now, o));
                    if !matches!(op, Op::Get) && o.code == code::OK {
                        self.report.acked_writes += 1;
                    }
                }
                self.report.ops += 1;
            }
        }
        self.check_watch_order(idx, h.zxid);
        if self.clients[idx].pending.is_empty() {
            let now = self.now_ms;
            self.clients[idx].next_op_ms = now + self.rng.next() % 20;
        }
    }

    fn check_xid(&mut self, idx: usize, expected: i32, got: i32) {
        if expected != got {
            self.fail(format!("client {idx}: reply to xid {got} while {expected} was due (FIFO broken)"));
        }
    }

    /// A session's replies never go back in time, whichever server gives them.
    fn check_session_order(&mut self, idx: usize, zxid: i64) {
        let Some((session, _)) = &self.clients[idx].session else { return };
        let session = *session;
        let c = &mut self.clients[idx];
        if zxid > 0 {
            c.last_zxid_seen = c.last_zxid_seen.max(zxid);
        }
        let seen = self.session_zxid.entry(session).or_insert(0);
        let was = *seen;
        *seen = was.max(zxid);
        if zxid > 0 && zxid < was {
            self.fail(format!("session {session:#x} went back in time: zxid {zxid:#x} after {was:#x}"));
        }
    }

    /// A reply reflecting a change to a watched node must come after the watch's event.
    fn check_watch_order(&mut self, idx: usize, zxid: i64) {
        let mut late = None;
        for (path, mzxid) in &self.clients[idx].watches {
            if zxid <= *mzxid {
                continue;
            }
            let changed = self.changes.get(path).and_then(|z| z.range(mzxid + 1..=zxid).next().copied());
            if let Some(c) = changed {
                late = Some((path.clone(), c));
            }
        }
        if let Some((path, c)) = late {
            self.fail(format!(
                "client {idx}: reply at zxid {zxid:#x} before the watch event for {path} (changed at {c:#x})"
            ));
        }
    }

    fn client_step(&mut self, idx: usize, issuing: bool) {
        let now = self.now_ms;
        let c = &self.clients[idx];
        if c.conn.is_none() {
            if now >= c.next_op_ms {
                self.client_connect(idx);
            }
            return;
        }
        if c.handshake || c.session.is_none() {
            return;
        }
        if !c.pending.is_empty() {
            return;
        }
        if !issuing || now < c.next_op_ms {
            if now.saturating_sub(c.last_sent_ms) >= 300 {
                let frame = Packet { xid: -2, op: op::PING, request: Request::Ping }.encode();
                self.clients[idx].pending.push_back(Pending::Ping);
                self.client_send(idx, frame);
            }
            return;
        }
        let path = KEYS[self.below(KEYS.len() as u64) as usize].to_string();
        let choice = match self.below(100) {
            0..=29 => Choice::Write(Op::Set { value: 0, version: -1 }),
            30..=39 => Choice::Write(Op::Set { value: 0, version: self.below(4) as i32 }),
            40..=47 => Choice::Write(Op::Create { value: 0 }),
            48..=54 => Choice::Multi(self.below(4) as i32),
            55..=64 => Choice::Write(Op::Delete { version: -1 }),
            65..=84 => Choice::SyncedRead,
            _ => Choice::PlainRead,
        };
        let session = self.clients[idx].history_session;
        let call = self.stamp();
        let mut xid = || {
            let c = &mut self.clients[idx];
            c.next_xid += 1;
            c.next_xid
        };
        let (frames, pending): (Vec<Packet>, Vec<Pending>) = match choice {
            Choice::Write(op) => {
                let value = self.next_value;
                self.next_value += 1;
                let (op, opcode, request) = match op {
                    Op::Set { version, .. } => (
                        Op::Set { value, version },
                        op::SET_DATA,
                        Request::SetData { path: path.clone(), data: value.to_string().into_bytes(), version },
                    ),
                    Op::Create { .. } => (
                        Op::Create { value },
                        op::CREATE,
                        Request::Create {
                            path: path.clone(),
                            data: value.to_string().into_bytes(),
                            acl: engine::acl::open_acl_unsafe(),
                            flags: 0,
                            ttl: -1,
                        },
                    ),
                    Op::Delete { version } => {
                        (Op::Delete { version }, op::DELETE, Request::Delete { path: path.clone(), version })
                    }
                    Op::Get => unreachable!("writes only"),
                };
                let x = xid();
                self.history.push(Event { session, path, op, call, ret: None });
                let event = self.history.len() - 1;
                (vec![Packet { xid: x, op: opcode, request }], vec![Pending::Checked { xid: x, opcode, event }])
            }
            Choice::Multi(version) => {
                let value = self.next_value;
                self.next_value += 1;
                let x = xid();
                let ops = vec![
                    (op::CHECK, Request::Check { path: path.clone(), version }),
                    (
                        op::SET_DATA,
                        Request::SetData { path: path.clone(), data: value.to_string().into_bytes(), version: -1 },
                    ),
                ];
                self.history.push(Event { session, path, op: Op::Set { value, version }, call, ret: None });
                let event = self.history.len() - 1;
                (
                    vec![Packet { xid: x, op: op::MULTI, request: Request::Multi(ops) }],
                    vec![Pending::Checked { xid: x, opcode: op::MULTI, event }],
                )
            }
            Choice::SyncedRead => {
                let (s, g) = (xid(), xid());
                self.history.push(Event { session, path: path.clone(), op: Op::Get, call, ret: None });
                let event = self.history.len() - 1;
                (
                    vec![
                        Packet { xid: s, op: op::SYNC, request: Request::Sync { path: path.clone() } },
                        Packet { xid: g, op: op::GET_DATA, request: Request::GetData { path, watch: false } },
                    ],
                    vec![Pending::Sync { xid: s }, Pending::Checked { xid: g, opcode: op::GET_DATA, event }],
                )
            }
            Choice::PlainRead => {
                let x = xid();
                (
                    vec![Packet {
                        xid: x,
                        op: op::GET_DATA,
                        request: Request::GetData { path: path.clone(), watch: true },
                    }],
                    vec![Pending::Read { xid: x, path }],
                )
            }
        };
        self.clients[idx].pending.extend(pending);
        for f in frames {
            self.client_send(idx, f.encode());
        }
    }

    // ---- Faults. ----

    fn crash(&mut self, id: ServerId) {
        self.trace(|| format!("server {id} crashes"));
        self.report.crashes += 1;
        let torn = self.rng.next();
        let p = self.peer(id);
        p.up = false;
        p.inbox.clear();
        p.paused_until_ms = 0;
        // What was not fsynced is lost, but for a torn prefix of it.
        let unsynced = p.disk.log.len() - p.disk.synced_bytes.min(p.disk.log.len());
        let keep = if unsynced > 0 { (torn as usize) % (unsynced + 1) } else { 0 };
        let len = p.disk.synced_bytes + keep;
        p.disk.log.truncate(len);
        p.fsync = None;
        p.held.clear();
        let quorum: Vec<u64> = self
            .qconns
            .iter()
            .filter(|(_, c)| c.open && (c.learner == id || c.leader == id))
            .map(|(k, _)| *k)
            .collect();
        let mut quorum = quorum;
        quorum.sort_unstable();
        for c in quorum {
            self.close_quorum(c, id);
        }
        // The process died: every socket it had closes, whatever its tables knew.
        let all: Vec<ConnId> = self.client_conns.iter().filter(|(_, (_, s))| *s == id).map(|(c, _)| *c).collect();
        self.close_clients(id, all);
        self.links.retain(|(server, _), _| *server != id);
        self.peer(id).incarnation += 1;
    }

    fn restart(&mut self, id: ServerId) {
        self.trace(|| format!("server {id} restarts"));
        let now = self.now_ms;
        let p = self.peer(id);
        let tree = match p.disk.recover() {
            Ok(t) => t,
            Err(e) => {
                self.fail(format!("server {id} cannot recover: {e}"));
                return;
            }
        };
        let cfg = peer_config(id, &self.voters, self.cfg.plant);
        let p = self.peer(id);
        p.up = true;
        p.durable_zxid = tree.last_zxid();
        p.peer = QuorumPeer::new(cfg, p.disk.accepted_epoch, p.disk.current_epoch, p.durable_zxid);
        p.server = Server::with_tree(settings(id), tree, now, wall(now));
        p.server.set_serving(Serving::No);
        p.last_commit = 0;
        self.peer_event(id, |p, s, c, out| p.start(c, s, out));
    }

    fn inject_faults(&mut self) {
        let ids: Vec<ServerId> = self.voters.iter().copied().collect();
        let n = ids.len() as u64;
        let up = self.peers.iter().filter(|p| p.up).count() as u64;
        // Per millisecond, in millionths.
        if self.chance(600) {
            let id = ids[self.below(n) as usize];
            // Never more than a minority down at once, so progress stays possible.
            if self.peer(id).up && up > n / 2 + 1 {
                self.crash(id);
            }
        }
        if self.chance(300) {
            // Crash the leader, the most telling victim.
            let leader =
                self.peers.iter().find(|p| p.up && matches!(p.peer.role(), RoleView::Leading { .. })).map(|p| p.id);
            if let Some(id) = leader {
                if up > n / 2 + 1 || n == 1 {
                    self.crash(id);
                }
            }
        }
        if self.chance(60) {
            // Power loss: everything goes down at once and comes back.
            for id in ids.clone() {
                if self.peer(id).up {
                    self.crash(id);
                }
            }
        }
        if self.chance(1500) {
            let down: Vec<ServerId> = self.peers.iter().filter(|p| !p.up).map(|p| p.id).collect();
            if let Some(&id) = down.first() {
                self.restart(id);
            }
        }
        if self.chance(500) && self.cut.is_empty() {
            // Isolate one server (often the leader) from the rest.
            self.report.partitions += 1;
            let leader = self.peers.iter().find(|p| matches!(p.peer.role(), RoleView::Leading { .. })).map(|p| p.id);
            let victim = match leader {
                Some(l) if self.below(2) == 0 => l,
                _ => ids[self.below(n) as usize],
            };
            self.trace(|| format!("server {victim} is cut off"));
            for &other in &ids {
                if other != victim {
                    self.cut.insert((victim.min(other), victim.max(other)));
                }
            }
        }
        if self.chance(1000) && !self.cut.is_empty() {
            self.trace(|| "partition healed".to_string());
            self.cut.clear();
        }
        if self.chance(400) {
            let id = ids[self.below(n) as usize];
            // Only ever extended: what a stopped process's sockets hold arrives in order.
            let until = self.now_ms + 100 + self.below(900);
            self.trace(|| format!("server {id} pauses until {until} ms"));
            let p = self.peer(id);
            p.paused_until_ms = p.paused_until_ms.max(until);
        }
        if self.chance(400) {
            let id = ids[self.below(n) as usize];
            let until = self.now_ms + 200 + self.below(1000);
            self.peer(id).slow_disk_until_ms = until;
        }
        if self.chance(300) {
            // A client's connection resets.
            let idx = self.below(self.clients.len() as u64) as usize;
            self.client_disconnected(idx);
        }
    }

    fn heal(&mut self) {
        self.faults_on = false;
        self.cut.clear();
        let now = self.now_ms;
        let ids: Vec<ServerId> = self.voters.iter().copied().collect();
        for id in ids {
            let p = self.peer(id);
            p.slow_disk_until_ms = p.slow_disk_until_ms.min(now);
            if !p.up {
                self.restart(id);
            }
        }
    }

    // ---- The run. ----

    fn step(&mut self, issuing: bool) {
        self.now_ms += 1;
        let now = self.now_ms;
        for i in 0..self.peers.len() {
            if self.peers[i].paused_until_ms <= now {
                let id = self.peers[i].id;
                while let Some(wire) = self.peers[i].inbox.pop_front() {
                    if self.peers[i].up {
                        self.peer_receives(id, wire);
                    }
                }
            }
        }
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (to, wire) = entry.remove();
            self.deliver(to, wire);
        }
        let ids: Vec<ServerId> = self.voters.iter().copied().collect();
        for id in ids {
            self.peer_tick(id);
        }
        for idx in 0..self.clients.len() {
            self.client_step(idx, issuing);
        }
    }

    /// Whether every server serves in one established epoch, level with its leader.
    fn settled(&self) -> bool {
        let mut leaders = self.peers.iter().filter(|p| matches!(p.peer.role(), RoleView::Leading { .. }));
        let (Some(leader), None) = (leaders.next(), leaders.next()) else { return false };
        let RoleView::Leading { serving: true, committed } = leader.peer.role() else { return false };
        let last = leader.server.tree().last_zxid();
        committed >= last
            && self.peers.iter().all(|p| {
                p.up && p.held.is_empty()
                    && match p.peer.role() {
                        RoleView::Leading { .. } => true,
                        RoleView::Following { up_to_date, uncommitted, .. } => {
                            up_to_date && uncommitted == 0 && p.server.tree().last_zxid() == last
                        }
                        RoleView::Looking | RoleView::Reloading => false,
                    }
            })
            && self.clients.iter().all(|c| c.pending.iter().all(|x| matches!(x, Pending::Ping)))
    }

    /// Runs to the end and checks the outcome.
    pub fn run(mut self) -> Result<Report, Failure> {
        let ids: Vec<ServerId> = self.voters.iter().copied().collect();
        for id in ids {
            self.peer_event(id, |p, s, c, out| p.start(c, s, out));
        }
        while self.now_ms < self.cfg.run_ms && self.failure.is_none() {
            if self.faults_on {
                self.inject_faults();
            }
            self.step(true);
        }
        self.heal();
        let settle_until = self.now_ms + SETTLE_MS;
        while self.failure.is_none() && !self.settled() {
            if self.now_ms >= settle_until {
                let roles: Vec<String> = self
                    .peers
                    .iter()
                    .map(|p| {
                        let role = p.peer.role();
                        let election = p.peer.election();
                        let (round, vote, outcome) = (
                            election.map(|e| e.round()),
                            election.map(|e| e.proposal()),
                            election.and_then(|e| e.outcome()),
                        );
                        let epochs = (p.disk.accepted_epoch, p.disk.current_epoch);
                        format!(
                            "{}: {role:?} at {:#x}, epochs {epochs:?}, election round {round:?} vote {vote:?} outcome {outcome:?}",
                            p.id,
                            p.server.tree().last_zxid()
                        )
                    })
                    .collect();
                let waiting: Vec<String> = self
                    .clients
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| !c.pending.is_empty())
                    .map(|(i, c)| {
                        format!("client {i} waits on {} replies (connected {})", c.pending.len(), c.conn.is_some())
                    })
                    .collect();
                let held: Vec<String> = self.peers.iter().map(|p| format!("{} holds {}", p.id, p.held.len())).collect();
                self.fail(format!(
                    "no settled ensemble {SETTLE_MS} ms after faults stopped: {}; {}; {}",
                    roles.join("; "),
                    waiting.join(", "),
                    held.join(", ")
                ));
                break;
            }
            self.step(false);
        }
        if self.failure.is_none() {
            self.final_checks();
        }
        let mut report = self.report.clone();
        report.digest = digest(format!("{:?}{:?}", self.history, self.committed).as_bytes());
        match self.failure.take() {
            None => Ok(report),
            Some(what) => {
                let history = self.write_history();
                Err(Failure { seed: self.cfg.seed, at_ms: self.now_ms, what, history })
            }
        }
    }

    /// The servers' trees agree, and the history, with the final state read back, is
    /// linearizable.
    fn final_checks(&mut self) {
        for i in 1..self.peers.len() {
            if let Some(what) = tree_difference(self.peers[0].server.tree(), self.peers[i].server.tree()) {
                let id = self.peers[i].id;
                self.fail(format!("server {id}'s tree differs from server 1's: {what}"));
                return;
            }
        }
        let at = self.stamp();
        let tree = self.peers[0].server.tree();
        let finals: Vec<Event> = KEYS
            .iter()
            .map(|k| {
                let outcome = match tree.get(k) {
                    Some(n) => Outcome {
                        code: code::OK,
                        value: std::str::from_utf8(&n.data).ok().and_then(|s| s.parse().ok()),
                        version: Some(n.stat.version),
                    },
                    None => Outcome { code: code::NO_NODE, value: None, version: None },
                };
                Event { session: 0, path: k.to_string(), op: Op::Get, call: at, ret: Some((at + 1, outcome)) }
            })
            .collect();
        self.history.extend(finals);
        if let Err(v) = linearizability::check(&self.history) {
            self.fail(format!("the history of {} is not linearizable", v.path));
            self.violation = Some(v);
        }
    }

    fn write_history(&self) -> Option<PathBuf> {
        let dir = std::env::temp_dir().join("paddock-sim");
        std::fs::create_dir_all(&dir).ok()?;
        let path = dir.join(format!("seed-{}.history", self.cfg.seed));
        if let Some(v) = &self.violation {
            return v.write_to(&path).ok().map(|()| path);
        }
        let mut text = String::new();
        for e in &self.history {
            text.push_str(&format!("{e:?}\n"));
        }
        std::fs::write(&path, text).ok()?;
        Some(path)
    }
}

/// The first difference between two trees (stats, data, ACLs, children, sessions), if any.
fn tree_difference(a: &DataTree, b: &DataTree) -> Option<String> {
    if a.sessions() != b.sessions() {
        return Some(format!("sessions {:?} vs {:?}", a.sessions(), b.sessions()));
    }
    if a.last_zxid() != b.last_zxid() {
        return Some(format!("last zxid {:#x} vs {:#x}", a.last_zxid(), b.last_zxid()));
    }
    let (mut pa, mut pb) = (a.paths(), b.paths());
    pa.sort();
    pb.sort();
    if pa != pb {
        return Some(format!("paths {pa:?} vs {pb:?}"));
    }
    for p in pa {
        let view = |t: &DataTree| {
            t.get(&p).map(|n| {
                let mut children: Vec<String> = n.children.iter().map(|c| c.to_string()).collect();
                children.sort();
                (n.client_stat(), n.data.clone(), n.acl.to_vec(), children)
            })
        };
        let (x, y) = (view(a), view(b));
        if x != y {
            return Some(format!("{p}: {x:?} vs {y:?}"));
        }
    }
    None
}

/// Runs one seed.
pub fn run(cfg: SimConfig) -> Result<Report, Failure> {
    Sim::new(cfg).run()
}
