//! The standalone server as a deterministic state machine: connections, requests, ticks and
//! disconnections go in (with the time), frames to send and connections to close come out.
//! It owns the tree, the sessions and the watches; the runtime owns sockets and clocks.
//!
//! Its stages are ZooKeeper's: prepare (check, assign zxid), apply (the engine), then reply and
//! fire watches. A request's watch events are emitted before its reply, and replies leave in the
//! order requests arrived, which is what makes ZooKeeper's ordering guarantees hold.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};

use engine::stat::EphemeralKind;
use engine::{code, perms, DataTree, Id, OpResult, Txn, TxnHeader};
use sha1::{Digest, Sha1};

use crate::auth;
use crate::prep::{multi_create_op, Prep, PrepContext};
use crate::proto::{
    event, op, ConnectRequest, ConnectResponse, MultiResult, Packet, ReplyHeader, Request, Response, SetWatches,
    WatcherEvent, Writer,
};
use crate::sessions::SessionTable;
use crate::watches::{Fired, Table, WatchMode, WatchTables};

/// A connection: the core that owns its socket and a number unique on that core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub core: u32,
    pub id: u64,
}

/// What the runtime must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Queue a whole frame (length prefix included) on a connection.
    Send { conn: ConnId, frame: Vec<u8> },
    /// Close a connection once what was queued before has been written.
    Close { conn: ConnId },
    /// A learner hands this to its leader: writes are ordered there.
    Forward(Forward),
}

/// What a learner's leader must order: new sessions, writes, closes and syncs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forward {
    CreateSession { session_id: i64, timeout_ms: i32 },
    Request { session_id: i64, auth: Vec<Id>, packet: Packet },
}

/// How this server takes part: alone, as the leader that orders writes, or as a learner that
/// forwards them; not serving at all while an ensemble member has no leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serving {
    No,
    Standalone,
    Leader {
        epoch: u64,
    },
    Learner,
    /// `readonlymode.enabled`: cut off from its quorum, it serves reads to clients that asked
    /// for a read-only session, with sessions of its own that never reach the log.
    ReadOnly,
}

/// A handshake on a learner, waiting for the leader to commit its session.
struct PendingConnect {
    conn: ConnId,
    remote: SocketAddr,
    read_only: Option<bool>,
}

/// The settings the protocol core needs, already validated.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub tick_ms: u64,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub extended_types: bool,
    /// `enforceQuota`: hard quota limits are enforced.
    pub enforce_quota: bool,
    /// `DigestAuthenticationProvider.superDigest`: `super:<base64 sha1>`.
    pub super_digest: Option<String>,
    pub container_check_interval_ms: u64,
    pub container_max_per_minute: usize,
    /// Seeds session passwords; a restart with another secret invalidates old passwords.
    pub secret: u64,
    /// `myid` (0 standalone): the top byte of the session ids this server hands out, so
    /// servers of an ensemble never hand out the same one.
    pub server_id: u64,
}

struct Conn {
    session_id: i64,
    auth: Vec<Id>,
    stats: ConnStats,
}

/// What `cons` and `stat` show of a connection, ZooKeeper's per-connection counters.
#[derive(Debug, Clone)]
pub struct ConnStats {
    pub remote: SocketAddr,
    pub session_id: i64,
    pub timeout_ms: i32,
    pub established_ms: i64,
    pub received: u64,
    pub sent: u64,
    /// ZooKeeper's four-letter abbreviation of the last request (`lop`).
    pub last_op: &'static str,
    pub last_cxid: i32,
    pub last_zxid: i64,
    pub last_response_ms: i64,
}

/// The abbreviations ZooKeeper's `cons` prints for the last operation of a connection.
fn op_abbreviation(opcode: i32) -> &'static str {
    match opcode {
        op::CREATE | op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => "CREA",
        op::DELETE | op::DELETE_CONTAINER => "DELE",
        op::EXISTS => "EXIS",
        op::GET_DATA => "GETD",
        op::SET_DATA => "SETD",
        op::GET_ACL => "GETA",
        op::SET_ACL => "SETA",
        op::GET_CHILDREN | op::GET_CHILDREN2 => "GETC",
        op::SYNC => "SYNC",
        op::PING => "PING",
        op::CHECK => "CHEC",
        op::MULTI => "MULT",
        op::MULTI_READ => "MLTR",
        op::SET_WATCHES | op::SET_WATCHES2 => "SETW",
        op::ADD_WATCH => "ADDW",
        op::CHECK_WATCHES => "CHKW",
        op::REMOVE_WATCHES => "REMW",
        op::GET_EPHEMERALS => "GETE",
        op::GET_ALL_CHILDREN_NUMBER => "GETACN",
        op::WHO_AM_I => "HOMI",
        op::CLOSE_SESSION => "CLOS",
        op::AUTH => "AUTH",
        op::RECONFIG => "RECO",
        op::SASL => "SASL",
        _ => "NA",
    }
}

/// Txns applied to the tree and not yet handed to the log: framed records, ready to write.
#[derive(Debug, Default)]
struct PendingLog {
    bytes: Vec<u8>,
    /// (end offset in `bytes`, zxid) of each record.
    records: Vec<(usize, i64)>,
    scratch: Vec<u8>,
}

/// A group of log records to write in one go.
#[derive(Debug)]
pub struct LogBatch {
    pub bytes: Vec<u8>,
    /// (end offset in `bytes`, zxid) of each record, in order; never empty.
    pub records: Vec<(usize, i64)>,
}

impl LogBatch {
    pub fn first_zxid(&self) -> i64 {
        self.records.first().map_or(0, |r| r.1)
    }

    pub fn last_zxid(&self) -> i64 {
        self.records.last().map_or(0, |r| r.1)
    }

    /// Each record's framed bytes with its zxid.
    pub fn framed(&self) -> impl Iterator<Item = (i64, &[u8])> {
        let starts = std::iter::once(0).chain(self.records.iter().map(|r| r.0));
        starts.zip(self.records.iter()).map(|(start, (end, zxid))| (*zxid, &self.bytes[start..*end]))
    }
}

/// Counters the four-letter words and metrics report.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    pub packets_received: u64,
    pub packets_sent: u64,
}

/// Whether a learner sends this request to the leader: writes, close and sync.
fn forwarded_to_leader(packet: &Packet) -> bool {
    matches!(packet.request, Request::CloseSession | Request::Sync { .. })
        || (packet.request.is_write(packet.op) && packet.op != op::MULTI_READ)
}

/// What stands in a learner connection's queue behind its first forwarded request.
#[derive(Debug)]
enum Behind {
    /// A request sent to the leader, not answered yet.
    Forwarded,
    /// A request to run here once every `Forwarded` before it is answered.
    Waiting(Packet),
}

/// The standalone server's protocol core.
pub struct Server {
    settings: ServerSettings,
    tree: DataTree,
    sessions: SessionTable,
    watches: WatchTables,
    conns: HashMap<ConnId, Conn>,
    session_conn: HashMap<i64, ConnId>,
    next_session_id: i64,
    last_container_check_ms: u64,
    counters: Counters,
    log: PendingLog,
    serving: Serving,
    /// The time of the call being handled, for session bookkeeping inside `apply`.
    now_ms: u64,
    /// Learner: requests sent to the leader, by (session, cxid), awaiting their commit.
    forwarded: HashMap<(i64, i32), (ConnId, i32, Request)>,
    /// Learner: handshakes awaiting their session's commit.
    pending_connects: HashMap<i64, PendingConnect>,
    /// Learner: per connection with a forwarded request outstanding, what came after it, in
    /// order (ZooKeeper's CommitProcessor rule): later writes are forwarded at once (pipelined)
    /// and leave a marker; reads wait here until every write ahead of them is answered.
    blocked: HashMap<ConnId, VecDeque<Behind>>,
    /// Learner: sessions active since the last ping to the leader.
    touched: HashSet<i64>,
}

fn frame(header: ReplyHeader, body: Option<&Response>) -> Vec<u8> {
    let mut w = Writer::frame();
    header.encode(&mut w);
    if let Some(b) = body {
        b.encode(&mut w);
    }
    w.finish_frame()
}

impl Server {
    /// A server over an empty tree; `wall_ms` seeds session ids as ZooKeeper seeds them.
    pub fn new(settings: ServerSettings, wall_ms: i64) -> Server {
        Server::with_tree(settings, DataTree::new(), 0, wall_ms)
    }

    /// A server over a tree recovered by the engine; its sessions get a fresh timeout, as after a
    /// ZooKeeper restart, and expire unless their clients come back.
    pub fn with_tree(settings: ServerSettings, tree: DataTree, now_ms: u64, wall_ms: i64) -> Server {
        // SessionTrackerImpl.initializeNextSessionId: time in the middle, server id on top.
        let mut next_session_id = (((wall_ms as u64) << 24 >> 8) | (settings.server_id << 56)) as i64;
        // Past this server's own ids only: the tree also holds other servers' sessions, and
        // continuing from those would hand out ids that are theirs.
        let own = |id: &&i64| ((**id as u64) >> 56) == settings.server_id;
        if let Some(max) = tree.sessions().keys().filter(own).max() {
            next_session_id = next_session_id.max(max + 1);
        }
        if next_session_id == engine::stat::CONTAINER_EPHEMERAL_OWNER || next_session_id == 0 {
            next_session_id += 1;
        }
        let mut sessions = SessionTable::new(settings.tick_ms);
        for (id, timeout_ms) in tree.sessions() {
            sessions.add(*id, *timeout_ms, now_ms);
        }
        Server {
            sessions,
            settings,
            tree,
            watches: WatchTables::default(),
            conns: HashMap::new(),
            session_conn: HashMap::new(),
            next_session_id,
            last_container_check_ms: 0,
            counters: Counters::default(),
            log: PendingLog::default(),
            serving: Serving::Standalone,
            now_ms,
            forwarded: HashMap::new(),
            pending_connects: HashMap::new(),
            blocked: HashMap::new(),
            touched: HashSet::new(),
        }
    }

    /// How this server serves now.
    pub fn serving(&self) -> Serving {
        self.serving
    }

    /// Changes how this server serves (an ensemble member starts with `No`).
    pub fn set_serving(&mut self, serving: Serving) {
        self.serving = serving;
    }

    /// Adopts the leader's secret, so a session's password is the same on every server.
    pub fn set_secret(&mut self, secret: u64) {
        self.settings.secret = secret;
    }

    /// Every connection this server knows, for closing them all when it stops serving.
    pub fn all_connections(&self) -> Vec<ConnId> {
        self.conns.keys().copied().chain(self.pending_connects.values().map(|p| p.conn)).collect()
    }

    /// Learner: the sessions active since the last call, for the ping to the leader.
    pub fn take_touched(&mut self) -> Vec<i64> {
        self.touched.drain().collect()
    }

    /// Takes the tree out, leaving an empty one, for a server over the same tree with fresh
    /// sessions and connections (an ensemble member changing roles while not serving).
    pub fn take_tree(&mut self) -> DataTree {
        std::mem::take(&mut self.tree)
    }

    pub fn tree(&self) -> &DataTree {
        &self.tree
    }

    pub fn watches(&self) -> &WatchTables {
        &self.watches
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn settings(&self) -> &ServerSettings {
        &self.settings
    }

    /// Live sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Connections past the handshake, with their counters, in connection order.
    pub fn connections(&self) -> Vec<(ConnId, &ConnStats)> {
        let mut v: Vec<(ConnId, &ConnStats)> = self.conns.iter().map(|(c, s)| (*c, &s.stats)).collect();
        v.sort_by_key(|(c, _)| *c);
        v
    }

    /// `crst`: zeroes every connection's counters.
    pub fn reset_connection_stats(&mut self) {
        for c in self.conns.values_mut() {
            c.stats.received = 0;
            c.stats.sent = 0;
        }
    }

    /// `srst`: zeroes the server's packet counters.
    pub fn reset_counters(&mut self) {
        self.counters = Counters::default();
    }

    fn password(&self, session_id: i64) -> Vec<u8> {
        let mut h = Sha1::new();
        h.update(self.settings.secret.to_be_bytes());
        h.update(session_id.to_be_bytes());
        h.finalize()[..16].to_vec()
    }

    fn send(&mut self, out: &mut Vec<Action>, conn: ConnId, header: ReplyHeader, body: Option<&Response>) {
        self.counters.packets_sent += 1;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.stats.sent += 1;
            c.stats.last_zxid = header.zxid;
        }
        out.push(Action::Send { conn, frame: frame(header, body) });
    }

    /// Assigns the next zxid (of this leader's epoch), logs the txn and applies it.
    fn commit(
        &mut self,
        session_id: i64,
        cxid: i32,
        wall_ms: i64,
        txn: &Txn,
        out: &mut Vec<Action>,
    ) -> (i64, engine::ApplyResult) {
        let epoch = match self.serving {
            Serving::Leader { epoch } => epoch,
            _ => 0,
        };
        let zxid = crate::zab::next_zxid(epoch, self.tree.last_zxid());
        let hdr = TxnHeader { session_id, cxid, zxid, time_ms: wall_ms };
        let log = &mut self.log;
        log.scratch.clear();
        engine::codec::encode_txn(&hdr, txn, &mut log.scratch);
        engine::log::frame_record(zxid, &log.scratch, &mut log.bytes);
        log.records.push((log.bytes.len(), zxid));
        let result = self.apply_txn(&hdr, txn, out);
        (zxid, result)
    }

    /// Applies a txn, keeps the session table in step and fires its watches: the one place
    /// the tree changes, on leaders and learners alike.
    fn apply_txn(&mut self, hdr: &TxnHeader, txn: &Txn, out: &mut Vec<Action>) -> engine::ApplyResult {
        let result = self.tree.apply(hdr, txn);
        let mut fired = Vec::new();
        for t in &result.triggers {
            let before = fired.len();
            self.watches.trigger(&t.path, t.kind, &mut fired);
            // ZooKeeper 3.8 delivers an event only to watchers that may READ the node it is about
            // (the watch is used up all the same).
            let conns = &self.conns;
            let session_conn = &self.session_conn;
            let mut i = before;
            while i < fired.len() {
                let may_read = session_conn
                    .get(&fired[i].session_id)
                    .and_then(|c| conns.get(c))
                    .is_some_and(|c| auth::check(&t.acl, perms::READ, &c.auth).is_ok());
                if may_read {
                    i += 1;
                } else {
                    fired.swap_remove(i);
                }
            }
        }
        self.deliver(fired, out);
        match txn {
            Txn::CreateSession { timeout_ms } => self.sessions.add(hdr.session_id, *timeout_ms, self.now_ms),
            Txn::CloseSession => {
                self.sessions.remove(hdr.session_id);
                self.watches.remove_session(hdr.session_id);
                if let Some(conn) = self.session_conn.remove(&hdr.session_id) {
                    self.conns.remove(&conn);
                }
            }
            _ => {}
        }
        result
    }

    fn deliver(&mut self, fired: Vec<Fired>, out: &mut Vec<Action>) {
        for f in fired {
            let Some(&conn) = self.session_conn.get(&f.session_id) else {
                continue;
            };
            let mut w = Writer::frame();
            ReplyHeader { xid: crate::proto::xid::NOTIFICATION, zxid: -1, err: 0 }.encode(&mut w);
            WatcherEvent { event_type: f.event_type, state: event::STATE_SYNC_CONNECTED, path: f.path }.encode(&mut w);
            self.counters.packets_sent += 1;
            if let Some(c) = self.conns.get_mut(&conn) {
                c.stats.sent += 1;
            }
            out.push(Action::Send { conn, frame: w.finish_frame() });
        }
    }

    /// Whether applied txns wait to be logged.
    pub fn has_pending_log(&self) -> bool {
        !self.log.records.is_empty()
    }

    /// Learner: queues a record the leader proposed (already framed) for the log.
    pub fn append_framed(&mut self, framed: &[u8], zxid: i64) {
        debug_assert!(self.log.records.last().is_none_or(|(_, z)| *z < zxid), "the log goes forward");
        self.log.bytes.extend_from_slice(framed);
        self.log.records.push((self.log.bytes.len(), zxid));
    }

    /// Takes the oldest pending records, up to `max_bytes` (at least one record), to be written
    /// as one batch: everything that arrived while the previous write was in flight.
    pub fn take_log(&mut self, max_bytes: usize) -> Option<LogBatch> {
        let log = &mut self.log;
        log.records.first()?;
        let n = log.records.iter().take_while(|(end, _)| *end <= max_bytes).count().max(1);
        let end = log.records[n - 1].0;
        let bytes = if n == log.records.len() {
            std::mem::take(&mut log.bytes)
        } else {
            let rest = log.bytes.split_off(end);
            std::mem::replace(&mut log.bytes, rest)
        };
        let records: Vec<(usize, i64)> = log.records.drain(..n).collect();
        for r in log.records.iter_mut() {
            r.0 -= end;
        }
        Some(LogBatch { bytes, records })
    }

    /// The handshake (`ZooKeeperServer.processConnectRequest`).
    pub fn connect(
        &mut self,
        conn: ConnId,
        remote: SocketAddr,
        req: &ConnectRequest,
        now_ms: u64,
        wall_ms: i64,
        out: &mut Vec<Action>,
    ) {
        self.counters.packets_received += 1;
        self.now_ms = now_ms;
        let refused = match self.serving {
            Serving::No => true,
            // ZooKeeper's read-only server refuses clients that did not ask for read-only.
            Serving::ReadOnly => req.read_only != Some(true),
            _ => false,
        };
        if refused || req.last_zxid_seen > self.tree.last_zxid() {
            // The client has seen a newer state than ours: it must try another server.
            out.push(Action::Close { conn });
            return;
        }
        let timeout_ms =
            req.timeout_ms.clamp(self.settings.min_session_timeout_ms, self.settings.max_session_timeout_ms);
        let read_only = req.read_only.map(|_| self.serving == Serving::ReadOnly);
        let session_id = if req.session_id == 0 {
            let sid = self.next_session_id;
            self.next_session_id += 1;
            if self.serving == Serving::Learner {
                // The session is ensemble state: it exists once the leader has committed it.
                out.push(Action::Forward(Forward::CreateSession { session_id: sid, timeout_ms }));
                self.pending_connects.insert(sid, PendingConnect { conn, remote, read_only });
                return;
            }
            if self.serving == Serving::ReadOnly {
                // A local session: nothing is logged while cut off from the quorum.
                self.sessions.add(sid, timeout_ms, now_ms);
                self.established(conn, remote, sid, timeout_ms, read_only, wall_ms, out);
                return;
            }
            self.commit(sid, 0, wall_ms, &Txn::CreateSession { timeout_ms }, out);
            tracing::debug!(session = format!("{sid:#x}"), timeout_ms, %remote, "session established");
            sid
        } else {
            let sid = req.session_id;
            // ZooKeeper closes the session's current connection before it checks the password.
            if let Some(old) = self.session_conn.remove(&sid) {
                if old != conn {
                    self.conns.remove(&old);
                    self.watches.remove_session(sid);
                    out.push(Action::Close { conn: old });
                }
            }
            if self.sessions.get(sid).is_none() || req.password != self.password(sid) {
                let expired = ConnectResponse {
                    protocol_version: 0,
                    timeout_ms: 0,
                    session_id: 0,
                    password: vec![0; 16],
                    read_only,
                };
                let mut w = Writer::frame();
                expired.encode(&mut w);
                out.push(Action::Send { conn, frame: w.finish_frame() });
                out.push(Action::Close { conn });
                return;
            }
            self.sessions.add(sid, timeout_ms, now_ms);
            sid
        };
        self.established(conn, remote, session_id, timeout_ms, read_only, wall_ms, out);
    }

    /// The handshake's end: the session is live, bound to this connection, and answered.
    #[allow(clippy::too_many_arguments)]
    fn established(
        &mut self,
        conn: ConnId,
        remote: SocketAddr,
        session_id: i64,
        timeout_ms: i32,
        read_only: Option<bool>,
        wall_ms: i64,
        out: &mut Vec<Action>,
    ) {
        if let Some(old) = self.session_conn.insert(session_id, conn) {
            if old != conn {
                // The client moved to a new connection: the old one goes, with its watches.
                self.conns.remove(&old);
                self.watches.remove_session(session_id);
                out.push(Action::Close { conn: old });
            }
        }
        let stats = ConnStats {
            remote,
            session_id,
            timeout_ms,
            established_ms: wall_ms,
            received: 1,
            sent: 0,
            last_op: "SESS",
            last_cxid: 0,
            last_zxid: self.tree.last_zxid(),
            last_response_ms: wall_ms,
        };
        self.conns.insert(conn, Conn { session_id, auth: vec![Id::new("ip", &remote.ip().to_string())], stats });
        let rsp = ConnectResponse {
            protocol_version: 0,
            timeout_ms,
            session_id,
            password: self.password(session_id),
            read_only,
        };
        let mut w = Writer::frame();
        rsp.encode(&mut w);
        self.counters.packets_sent += 1;
        out.push(Action::Send { conn, frame: w.finish_frame() });
    }

    /// The connection is gone (closed by either side); its session lives on until it expires.
    pub fn disconnected(&mut self, conn: ConnId) {
        self.blocked.remove(&conn);
        self.pending_connects.retain(|_, p| p.conn != conn);
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        if self.session_conn.get(&c.session_id) == Some(&conn) {
            self.session_conn.remove(&c.session_id);
            self.watches.remove_session(c.session_id);
        }
    }

    fn end_session(&mut self, session_id: i64, cxid: i32, wall_ms: i64, out: &mut Vec<Action>) -> i64 {
        self.commit(session_id, cxid, wall_ms, &Txn::CloseSession, out).0
    }

    /// Expires sessions whose time has passed and runs the container/TTL check when due.
    pub fn tick(&mut self, now_ms: u64, wall_ms: i64, out: &mut Vec<Action>) {
        self.now_ms = now_ms;
        if !matches!(self.serving, Serving::Standalone | Serving::Leader { .. }) {
            // Sessions expire and containers go by the leader's decision only.
            return;
        }
        for sid in self.sessions.expired(now_ms) {
            let timeout_ms = self.sessions.get(sid).map_or(0, |s| s.timeout_ms);
            tracing::info!(session = format!("{sid:#x}"), timeout_ms, "session expired");
            let conn = self.session_conn.get(&sid).copied();
            self.end_session(sid, 0, wall_ms, out);
            if let Some(conn) = conn {
                out.push(Action::Close { conn });
            }
        }
        if now_ms >= self.last_container_check_ms + self.settings.container_check_interval_ms {
            self.last_container_check_ms = now_ms;
            self.check_containers(wall_ms, out);
        }
    }

    /// `ContainerManager`: deletes emptied containers and expired TTL nodes.
    fn check_containers(&mut self, wall_ms: i64, out: &mut Vec<Action>) {
        let tree = &self.tree;
        let mut candidates: Vec<String> = Vec::new();
        for p in tree.containers() {
            if let Some(n) = tree.get(p) {
                if n.children.is_empty() && n.stat.cversion > 0 {
                    candidates.push(p.clone());
                }
            }
        }
        for p in tree.ttls() {
            if let Some(n) = tree.get(p) {
                if let EphemeralKind::Ttl(ttl) = EphemeralKind::of(n.stat.ephemeral_owner) {
                    if n.children.is_empty() && ttl != 0 && wall_ms - n.stat.mtime > ttl {
                        candidates.push(p.clone());
                    }
                }
            }
        }
        candidates.truncate(self.settings.container_max_per_minute.max(1));
        for p in candidates {
            let req = Request::Delete { path: p, version: -1 };
            let txn = self.prepare(0, &[], op::DELETE_CONTAINER, &req, wall_ms);
            self.commit(0, 0, wall_ms, &txn, out);
        }
    }

    /// The txn a client's write becomes, where it is ordered (standalone or leader).
    fn client_write_txn(&self, session_id: i64, ids: &[Id], opcode: i32, req: &Request, wall_ms: i64) -> Txn {
        let mixed = matches!(req, Request::Multi(ops) if ops.iter().any(|(o, _)| matches!(*o, op::GET_DATA | op::GET_CHILDREN)));
        if mixed {
            // A multi mixing reads into writes does not decode; it still takes a zxid.
            Txn::Error { err: code::MARSHALLING_ERROR }
        } else if opcode == op::DELETE_CONTAINER {
            // The container check's own opcode: ZooKeeper refuses it from clients.
            Txn::Error { err: code::BAD_ARGUMENTS }
        } else {
            self.prepare(session_id, ids, opcode, req, wall_ms)
        }
    }

    /// Leader: orders what a learner forwarded. The learner answers its client once it applies
    /// the commit, so nothing is sent from here.
    pub fn forwarded(&mut self, f: Forward, now_ms: u64, wall_ms: i64, out: &mut Vec<Action>) {
        self.now_ms = now_ms;
        match f {
            Forward::CreateSession { session_id, timeout_ms } => {
                let txn = if self.sessions.get(session_id).is_none() {
                    Txn::CreateSession { timeout_ms }
                } else {
                    // An id already in use: the learner refuses its client.
                    Txn::Error { err: code::SESSION_EXPIRED }
                };
                self.commit(session_id, 0, wall_ms, &txn, out);
            }
            Forward::Request { session_id, auth, packet } => {
                if !self.sessions.touch(session_id, now_ms) {
                    let txn = Txn::Error { err: code::SESSION_EXPIRED };
                    self.commit(session_id, packet.xid, wall_ms, &txn, out);
                } else if packet.op == op::CLOSE_SESSION {
                    self.end_session(session_id, packet.xid, wall_ms, out);
                } else {
                    let txn = self.client_write_txn(session_id, &auth, packet.op, &packet.request, wall_ms);
                    self.commit(session_id, packet.xid, wall_ms, &txn, out);
                }
            }
        }
    }

    /// Leader: a learner's clients were active.
    pub fn touch_sessions(&mut self, sessions: &[i64], now_ms: u64) {
        for s in sessions {
            self.sessions.touch(*s, now_ms);
        }
    }

    /// Learner: applies a txn the leader committed, and answers the local client whose request
    /// it was (or completes its handshake).
    pub fn apply_committed(&mut self, hdr: &TxnHeader, txn: &Txn, now_ms: u64, wall_ms: i64, out: &mut Vec<Action>) {
        self.now_ms = now_ms;
        if hdr.zxid <= self.tree.last_zxid() {
            // Already in the tree (it came with a snapshot).
            return;
        }
        let session_conn = self.session_conn.get(&hdr.session_id).copied();
        let result = self.apply_txn(hdr, txn, out);
        if let Txn::CreateSession { timeout_ms } = txn {
            if let Some(p) = self.pending_connects.remove(&hdr.session_id) {
                self.established(p.conn, p.remote, hdr.session_id, *timeout_ms, p.read_only, wall_ms, out);
            }
            return;
        }
        if hdr.cxid == 0 && matches!(txn, Txn::Error { .. }) {
            if let Some(p) = self.pending_connects.remove(&hdr.session_id) {
                out.push(Action::Close { conn: p.conn });
                return;
            }
        }
        match self.forwarded.remove(&(hdr.session_id, hdr.cxid)) {
            Some((conn, opcode, req)) => {
                let (err, body) = write_response(opcode, &req, txn, &result);
                self.send(out, conn, ReplyHeader { xid: hdr.cxid, zxid: hdr.zxid, err }, body.as_ref());
                if matches!(txn, Txn::CloseSession) {
                    out.push(Action::Close { conn });
                }
                self.unblock(conn, now_ms, wall_ms, out);
            }
            None => {
                if let (Txn::CloseSession, Some(conn)) = (txn, session_conn) {
                    // Expired by the leader while connected here.
                    out.push(Action::Close { conn });
                }
            }
        }
    }

    /// Learner: the leader has committed every write before this session's `sync`.
    pub fn sync_done(&mut self, session_id: i64, cxid: i32, now_ms: u64, wall_ms: i64, out: &mut Vec<Action>) {
        if let Some((conn, _, Request::Sync { path })) = self.forwarded.remove(&(session_id, cxid)) {
            let h = ReplyHeader { xid: cxid, zxid: self.tree.last_zxid(), err: 0 };
            self.send(out, conn, h, Some(&Response::Path(path)));
            self.unblock(conn, now_ms, wall_ms, out);
        }
    }

    /// The oldest forwarded request of `conn` was answered (the leader answers a session in
    /// order, and commits apply in order): run what waited behind it, in order, up to the next
    /// forwarded one, against a tree that holds that write and none after it.
    fn unblock(&mut self, conn: ConnId, now_ms: u64, wall_ms: i64, out: &mut Vec<Action>) {
        let Some(queue) = self.blocked.get_mut(&conn) else { return };
        let answered = queue.pop_front();
        debug_assert!(matches!(answered, Some(Behind::Forwarded)), "the queue starts with a forwarded request");
        loop {
            let Some(queue) = self.blocked.get_mut(&conn) else { return };
            match queue.front() {
                None => {
                    self.blocked.remove(&conn);
                    return;
                }
                Some(Behind::Forwarded) => return,
                Some(Behind::Waiting(_)) => {
                    let Some(Behind::Waiting(packet)) = queue.pop_front() else { return };
                    self.run_request(conn, packet, now_ms, wall_ms, out);
                }
            }
        }
    }

    fn prepare(&self, session_id: i64, ids: &[Id], opcode: i32, req: &Request, wall_ms: i64) -> Txn {
        let ctx = PrepContext {
            session_id,
            auth: ids,
            zxid: self.tree.last_zxid() + 1,
            time_ms: wall_ms,
            extended_types: self.settings.extended_types,
            enforce_quota: self.settings.enforce_quota,
        };
        Prep::new(&self.tree, ctx).prepare(opcode, req).unwrap_or_else(|err| Txn::Error { err })
    }

    /// One request of an established connection.
    pub fn request(&mut self, conn: ConnId, packet: Packet, now_ms: u64, wall_ms: i64, out: &mut Vec<Action>) {
        self.now_ms = now_ms;
        if let Some(queue) = self.blocked.get_mut(&conn) {
            // Behind a forwarded request: another write goes to the leader at once (the leader
            // keeps the session's order); anything else waits for the writes ahead of it.
            if !(self.serving == Serving::Learner && forwarded_to_leader(&packet)) {
                queue.push_back(Behind::Waiting(packet));
                return;
            }
        }
        self.run_request(conn, packet, now_ms, wall_ms, out);
    }

    /// A request whose turn it is on its connection.
    fn run_request(&mut self, conn: ConnId, packet: Packet, now_ms: u64, wall_ms: i64, out: &mut Vec<Action>) {
        if self.serving == Serving::No {
            // Between roles (an ensemble member's connections are being closed, and requests
            // already on their way still arrive): answering would apply a write outside any
            // leader's order, with a zxid another txn holds.
            out.push(Action::Close { conn });
            return;
        }
        self.counters.packets_received += 1;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.stats.received += 1;
        c.stats.last_op = op_abbreviation(packet.op);
        c.stats.last_cxid = packet.xid;
        c.stats.last_response_ms = wall_ms;
        let session_id = c.session_id;
        let xid = packet.xid;
        if !self.sessions.touch(session_id, now_ms) {
            let h = ReplyHeader { xid, zxid: self.tree.last_zxid(), err: code::SESSION_EXPIRED };
            self.send(out, conn, h, None);
            out.push(Action::Close { conn });
            return;
        }
        if self.serving == Serving::ReadOnly {
            let refused = matches!(packet.request, Request::Sync { .. })
                || (packet.request.is_write(packet.op) && !matches!(packet.request, Request::CloseSession));
            if refused {
                let h = ReplyHeader { xid, zxid: self.tree.last_zxid(), err: code::NOT_READ_ONLY };
                self.send(out, conn, h, None);
                return;
            }
            if matches!(packet.request, Request::CloseSession) {
                self.sessions.remove(session_id);
                self.watches.remove_session(session_id);
                self.session_conn.remove(&session_id);
                self.conns.remove(&conn);
                self.send(out, conn, ReplyHeader { xid, zxid: self.tree.last_zxid(), err: 0 }, None);
                out.push(Action::Close { conn });
                return;
            }
        }
        if self.serving == Serving::Learner {
            self.touched.insert(session_id);
            if forwarded_to_leader(&packet) {
                let auth = self.conns.get(&conn).map(|c| c.auth.clone()).unwrap_or_default();
                out.push(Action::Forward(Forward::Request { session_id, auth, packet: packet.clone() }));
                self.forwarded.insert((session_id, xid), (conn, packet.op, packet.request));
                self.blocked.entry(conn).or_default().push_back(Behind::Forwarded);
                return;
            }
        }
        let last_zxid = self.tree.last_zxid();
        let ok = |body: Response| (0, Some(body));
        let (err, body): (i32, Option<Response>) = match packet.request {
            Request::Ping => (0, None),
            Request::Auth { scheme, auth: token, .. } => {
                let remote = self.conns.get(&conn).and_then(|c| c.auth.first()).and_then(|i| i.id.parse().ok());
                let remote = remote.unwrap_or(IpAddr::from([127, 0, 0, 1]));
                match auth::authenticate(&scheme, &token, remote, self.settings.super_digest.as_deref()) {
                    Some(ids) => {
                        if let Some(c) = self.conns.get_mut(&conn) {
                            for id in ids {
                                if !c.auth.contains(&id) {
                                    c.auth.push(id);
                                }
                            }
                        }
                        let h = ReplyHeader { xid, zxid: 0, err: 0 };
                        self.send(out, conn, h, None);
                    }
                    None => {
                        let h = ReplyHeader { xid, zxid: 0, err: code::AUTH_FAILED };
                        self.send(out, conn, h, None);
                        out.push(Action::Close { conn });
                    }
                }
                return;
            }
            Request::Sasl { .. } => {
                // No SASL configured: ZooKeeper answers OK with a null token (a -1 length).
                let h = ReplyHeader { xid, zxid: 0, err: 0 };
                self.send(out, conn, h, Some(&Response::Code(-1)));
                return;
            }
            Request::SetWatches(sw) => {
                self.set_watches(session_id, &sw, out);
                (0, None)
            }
            Request::CloseSession => {
                tracing::debug!(session = format!("{session_id:#x}"), "session closed by its client");
                let zxid = self.end_session(session_id, xid, wall_ms, out);
                self.send(out, conn, ReplyHeader { xid, zxid, err: 0 }, None);
                out.push(Action::Close { conn });
                return;
            }
            Request::Multi(ref ops) if packet.op == op::MULTI_READ => {
                if ops.iter().any(|(o, _)| !matches!(*o, op::GET_DATA | op::GET_CHILDREN)) {
                    // Mixing writes into a multiRead does not decode in ZooKeeper.
                    (code::MARSHALLING_ERROR, None)
                } else {
                    let ids = self.conns.get(&conn).map(|c| c.auth.clone()).unwrap_or_default();
                    let results = ops.iter().map(|(o, r)| self.multi_read_op(session_id, &ids, *o, r)).collect();
                    ok(Response::Multi(results))
                }
            }
            ref req if req.is_write(packet.op) => {
                let ids = self.conns.get(&conn).map(|c| c.auth.clone()).unwrap_or_default();
                let txn = self.client_write_txn(session_id, &ids, packet.op, req, wall_ms);
                let (zxid, result) = self.commit(session_id, xid, wall_ms, &txn, out);
                let (err, body) = write_response(packet.op, req, &txn, &result);
                self.send(out, conn, ReplyHeader { xid, zxid, err }, body.as_ref());
                return;
            }
            ref req => {
                let ids = self.conns.get(&conn).map(|c| c.auth.clone()).unwrap_or_default();
                match self.read(session_id, &ids, packet.op, req) {
                    Ok(Response::Empty) => (0, None),
                    Ok(body) => ok(body),
                    Err(err) => (err, None),
                }
            }
        };
        self.send(out, conn, ReplyHeader { xid, zxid: last_zxid, err }, body.as_ref());
    }

    /// Read requests (`FinalRequestProcessor`), with ZooKeeper's order of checks: existence, then
    /// ACL, then the watch is registered.
    /// One op of a multiRead: ZooKeeper ignores its watch flag.
    fn multi_read_op(&mut self, session_id: i64, ids: &[Id], opcode: i32, req: &Request) -> MultiResult {
        let unwatched = match req {
            Request::GetData { path, .. } => Request::GetData { path: path.clone(), watch: false },
            Request::GetChildren { path, .. } => Request::GetChildren { path: path.clone(), watch: false },
            other => other.clone(),
        };
        match self.read(session_id, ids, opcode, &unwatched) {
            Ok(response) => MultiResult { op: opcode, err: 0, response },
            Err(err) => MultiResult { op: op::ERROR, err, response: Response::Empty },
        }
    }

    fn read(&mut self, session_id: i64, ids: &[Id], opcode: i32, req: &Request) -> Result<Response, i32> {
        // ZooKeeper's node map also holds the root under "", so reads of "" see the root.
        let node_path = |p: &str| -> String {
            if p.is_empty() {
                "/".to_string()
            } else {
                p.to_string()
            }
        };
        match req {
            Request::Exists { path, watch } => {
                if path.contains('\0') {
                    return Err(code::BAD_ARGUMENTS);
                }
                if *watch {
                    self.watches.add(Table::Data, path, session_id, WatchMode::Standard);
                }
                self.tree.get(&node_path(path)).map(|n| Response::Stat(n.client_stat())).ok_or(code::NO_NODE)
            }
            Request::GetData { path, watch } => {
                let n = self.tree.get(&node_path(path)).ok_or(code::NO_NODE)?;
                auth::check(&n.acl, perms::READ, ids)?;
                let rsp = Response::Data(n.data.clone(), n.client_stat());
                if *watch {
                    self.watches.add(Table::Data, path, session_id, WatchMode::Standard);
                }
                Ok(rsp)
            }
            Request::GetChildren { path, watch } => {
                let n = self.tree.get(&node_path(path)).ok_or(code::NO_NODE)?;
                auth::check(&n.acl, perms::READ, ids)?;
                let children: Vec<String> = n.children.iter().map(|c| c.to_string()).collect();
                let rsp = if opcode == op::GET_CHILDREN2 {
                    Response::Children2(children, n.client_stat())
                } else {
                    Response::Children(children)
                };
                if *watch {
                    self.watches.add(Table::Child, path, session_id, WatchMode::Standard);
                }
                Ok(rsp)
            }
            Request::GetAcl { path } => {
                let n = self.tree.get(&node_path(path)).ok_or(code::NO_NODE)?;
                auth::check(&n.acl, auth::GET_ACL_PERMS, ids)?;
                let acl = if auth::check(&n.acl, perms::ADMIN, ids).is_ok() {
                    n.acl.to_vec()
                } else {
                    auth::mask_digests(&n.acl)
                };
                Ok(Response::Acl(acl, n.client_stat()))
            }
            Request::Sync { path } => Ok(Response::Path(path.clone())),
            Request::GetAllChildrenNumber { path } => {
                let n = self.tree.get(&node_path(path)).ok_or(code::NO_NODE)?;
                auth::check(&n.acl, perms::READ, ids)?;
                // ZooKeeper counts the keys below `path + "/"`: for "" that includes "/" itself.
                let extra = usize::from(path.is_empty());
                Ok(Response::Count((self.tree.all_children_number(&node_path(path)) + extra) as i32))
            }
            Request::GetEphemerals { prefix } => {
                let all = prefix.trim().is_empty() || prefix.trim() == "/";
                let paths = self
                    .tree
                    .ephemerals_of(session_id)
                    .filter(|p| all || p.starts_with(prefix.as_str()))
                    .cloned()
                    .collect();
                Ok(Response::Paths(paths))
            }
            Request::WhoAmI => Ok(Response::ClientInfo(
                ids.iter()
                    .map(|i| {
                        let user =
                            if i.scheme == "digest" { i.id.split(':').next().unwrap_or("") } else { i.id.as_str() };
                        (i.scheme.clone(), user.to_string())
                    })
                    .collect(),
            )),
            Request::AddWatch { path, mode } => {
                use crate::proto::add_watch_mode::{PERSISTENT, PERSISTENT_RECURSIVE};
                if !matches!(*mode, PERSISTENT | PERSISTENT_RECURSIVE) {
                    return Err(code::MARSHALLING_ERROR);
                }
                self.watches.add_persistent(path, session_id, *mode == PERSISTENT_RECURSIVE);
                Ok(Response::Code(0))
            }
            Request::Watches { path, watcher_type } => {
                let tables = WatchTables::tables_for(*watcher_type).ok_or(code::MARSHALLING_ERROR)?;
                let present = if opcode == op::REMOVE_WATCHES {
                    self.watches.remove(path, session_id, tables)
                } else {
                    self.watches.contains(path, session_id, tables)
                };
                if present {
                    Ok(Response::Empty)
                } else {
                    Err(code::NO_WATCHER)
                }
            }
            _ => Err(code::UNIMPLEMENTED),
        }
    }

    /// `DataTree.setWatches`: re-arms a reconnecting client's watches, firing at once those whose
    /// change it missed (relative to the last zxid it saw).
    fn set_watches(&mut self, session_id: i64, sw: &SetWatches, out: &mut Vec<Action>) {
        let mut fired = Vec::new();
        let mut fire = |path: &str, event_type| fired.push(Fired { session_id, event_type, path: path.to_string() });
        for p in &sw.data {
            match self.tree.get(p) {
                None => fire(p, event::NODE_DELETED),
                Some(n) if n.stat.mzxid > sw.relative_zxid => fire(p, event::NODE_DATA_CHANGED),
                Some(_) => self.watches.add(Table::Data, p, session_id, WatchMode::Standard),
            }
        }
        for p in &sw.exist {
            match self.tree.get(p) {
                Some(_) => fire(p, event::NODE_CREATED),
                None => self.watches.add(Table::Data, p, session_id, WatchMode::Standard),
            }
        }
        for p in &sw.child {
            match self.tree.get(p) {
                None => fire(p, event::NODE_DELETED),
                Some(n) if n.stat.pzxid > sw.relative_zxid => fire(p, event::NODE_CHILDREN_CHANGED),
                Some(_) => self.watches.add(Table::Child, p, session_id, WatchMode::Standard),
            }
        }
        for p in &sw.persistent {
            self.watches.add_persistent(p, session_id, false);
        }
        for p in &sw.persistent_recursive {
            self.watches.add_persistent(p, session_id, true);
        }
        self.deliver(fired, out);
    }
}

/// The reply to a write, from its request and what applying its txn gave.
fn write_response(opcode: i32, req: &Request, txn: &Txn, result: &engine::ApplyResult) -> (i32, Option<Response>) {
    if let Txn::Error { err } = txn {
        return (*err, None);
    }
    if result.result.err != 0 {
        return (result.result.err, None);
    }
    match req {
        Request::Multi(ops) => {
            let failed = result.multi.iter().any(|r| r.err != 0);
            let results = ops
                .iter()
                .zip(result.multi.iter())
                .map(|((sub_op, sub_req), r)| {
                    if failed {
                        return MultiResult { op: op::ERROR, err: r.err, response: Response::Empty };
                    }
                    let effective = match sub_req {
                        Request::Create { flags, .. } => multi_create_op(*flags),
                        _ => *sub_op,
                    };
                    let (result_op, response) = match effective {
                        op::CREATE => (op::CREATE, Response::Path(path_of(r))),
                        op::CREATE_CONTAINER | op::CREATE_TTL | op::CREATE2 => {
                            (op::CREATE2, Response::PathStat(path_of(r), r.stat.unwrap_or_default()))
                        }
                        op::SET_DATA => (op::SET_DATA, Response::Stat(r.stat.unwrap_or_default())),
                        other => (other, Response::Empty),
                    };
                    MultiResult { op: result_op, err: 0, response }
                })
                .collect();
            (0, Some(Response::Multi(results)))
        }
        _ => {
            let r = &result.result;
            let body = match opcode {
                op::CREATE => Some(Response::Path(path_of(r))),
                op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
                    Some(Response::PathStat(path_of(r), r.stat.unwrap_or_default()))
                }
                op::SET_DATA | op::SET_ACL => Some(Response::Stat(r.stat.unwrap_or_default())),
                _ => None,
            };
            (0, body)
        }
    }
}

fn path_of(r: &OpResult) -> String {
    r.path.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Reader;

    fn settings(server_id: u64) -> ServerSettings {
        ServerSettings {
            tick_ms: 100,
            min_session_timeout_ms: 200,
            max_session_timeout_ms: 10_000,
            extended_types: true,
            enforce_quota: false,
            super_digest: None,
            container_check_interval_ms: 60_000,
            container_max_per_minute: 100,
            secret: 7,
            server_id,
        }
    }

    /// Moves what the leader logged since the last call to the learner, as commits.
    fn replicate(leader: &mut Server, learner: &mut Server, out: &mut Vec<Action>) {
        while let Some(batch) = leader.take_log(usize::MAX) {
            for (_, framed) in batch.framed() {
                let r = &engine::log::framed_records(framed).expect("framed")[0];
                let (hdr, txn) = engine::codec::decode_txn(&framed[r.payload.clone()]).expect("txn");
                learner.apply_committed(&hdr, &txn, 0, 0, out);
            }
        }
    }

    fn sends(out: &[Action]) -> Vec<Vec<u8>> {
        out.iter().filter_map(|a| if let Action::Send { frame, .. } = a { Some(frame.clone()) } else { None }).collect()
    }

    fn forwards(out: &mut Vec<Action>) -> Vec<Forward> {
        let mut f = Vec::new();
        out.retain(|a| match a {
            Action::Forward(x) => {
                f.push(x.clone());
                false
            }
            _ => true,
        });
        f
    }

    /// A leader, a learner, and a session on the learner whose creation the leader committed.
    fn learner_with_session(conn: ConnId) -> (Server, Server) {
        let mut leader = Server::new(settings(2), 1_000);
        leader.set_serving(Serving::Leader { epoch: 1 });
        let mut learner = Server::new(settings(1), 1_000);
        learner.set_serving(Serving::Learner);
        let remote: SocketAddr = ([127, 0, 0, 1], 5000).into();
        let mut out = Vec::new();

        // The handshake waits for the leader to commit the session.
        learner.connect(conn, remote, &ConnectRequest::new_session(4000), 0, 0, &mut out);
        let f = forwards(&mut out);
        assert!(out.is_empty() && matches!(f[..], [Forward::CreateSession { .. }]));
        for x in f {
            leader.forwarded(x, 0, 0, &mut Vec::new());
        }
        replicate(&mut leader, &mut learner, &mut out);
        let rsp = sends(&out);
        assert_eq!(rsp.len(), 1);
        let session = ConnectResponse::decode(&mut Reader::new(&rsp[0][4..])).expect("response");
        assert_eq!((session.session_id as u64) >> 56, 1, "the learner's id is in the session id");
        (leader, learner)
    }

    /// (xid, err) of each reply sent, and the data of each getData reply.
    fn replies(out: &[Action]) -> Vec<(i32, i32, Option<Vec<u8>>)> {
        sends(out)
            .iter()
            .map(|f| {
                let mut r = Reader::new(&f[4..]);
                let h = ReplyHeader::decode(&mut r).expect("header");
                let data = (h.xid % 2 == 0).then(|| r.buffer().expect("data"));
                (h.xid, h.err, data)
            })
            .collect()
    }

    #[test]
    fn a_member_between_roles_applies_nothing_and_closes_the_connection() {
        let conn = ConnId { core: 0, id: 1 };
        let (_, mut learner) = learner_with_session(conn);
        // The role ended: connections are being closed, but a write already on its way arrives.
        learner.set_serving(Serving::No);
        let last = learner.tree().last_zxid();
        let mut out = Vec::new();
        let create = Request::Create { path: "/x".into(), data: vec![], acl: vec![], flags: 0, ttl: 0 };
        learner.request(conn, Packet { xid: 1, op: op::CREATE, request: create }, 0, 0, &mut out);
        assert!(matches!(out[..], [Action::Close { conn: c }] if c == conn), "{out:?}");
        assert_eq!(learner.tree().last_zxid(), last, "a write was applied outside any leader's order");
        assert!(!learner.has_pending_log());
    }

    #[test]
    fn a_learner_pipelines_a_connections_writes_and_runs_its_reads_between_them() {
        let conn = ConnId { core: 0, id: 1 };
        let (mut leader, mut learner) = learner_with_session(conn);
        let mut out = Vec::new();
        let set = |xid, data: &[u8]| Packet {
            xid,
            op: op::SET_DATA,
            request: Request::SetData { path: "/".into(), data: data.to_vec(), version: -1 },
        };
        let get = |xid| Packet { xid, op: op::GET_DATA, request: Request::GetData { path: "/".into(), watch: false } };
        // Odd xids write, even xids read: write x, read, write y, read.
        for p in [set(1, b"x"), get(2), set(3, b"y"), get(4)] {
            learner.request(conn, p, 0, 0, &mut out);
        }
        let f = forwards(&mut out);
        assert!(out.is_empty(), "nothing is answered before a commit");
        assert_eq!(f.len(), 2, "both writes went to the leader before either committed");
        let mut f = f.into_iter();
        for expected in [[(1, 0, None), (2, 0, Some(b"x".to_vec()))], [(3, 0, None), (4, 0, Some(b"y".to_vec()))]] {
            leader.forwarded(f.next().expect("forward"), 0, 0, &mut Vec::new());
            replicate(&mut leader, &mut learner, &mut out);
            // Each read sees the write before it and not the one after it.
            assert_eq!(replies(&out), expected);
            out.clear();
        }
    }

    #[test]
    fn a_learner_forwards_writes_and_keeps_each_connection_in_order() {
        let conn = ConnId { core: 0, id: 1 };
        let (mut leader, mut learner) = learner_with_session(conn);
        let mut out = Vec::new();

        // A write, then a read of what it writes: the read waits behind the write.
        let create = Request::Create {
            path: "/a".into(),
            data: b"x".to_vec(),
            acl: engine::acl::open_acl_unsafe(),
            flags: 0,
            ttl: -1,
        };
        learner.request(conn, Packet { xid: 1, op: op::CREATE, request: create }, 0, 0, &mut out);
        let get = Request::GetData { path: "/a".into(), watch: false };
        learner.request(conn, Packet { xid: 2, op: op::GET_DATA, request: get }, 0, 0, &mut out);
        let f = forwards(&mut out);
        assert!(out.is_empty(), "nothing is answered before the commit");
        assert_eq!(f.len(), 1, "only the write goes to the leader");
        for x in f {
            leader.forwarded(x, 0, 0, &mut Vec::new());
        }
        assert_eq!(leader.tree().last_zxid() >> 32, 1, "the leader numbers txns in its epoch");
        replicate(&mut leader, &mut learner, &mut out);
        let replies: Vec<ReplyHeader> =
            sends(&out).iter().map(|f| ReplyHeader::decode(&mut Reader::new(&f[4..])).expect("header")).collect();
        assert_eq!(replies.iter().map(|h| (h.xid, h.err)).collect::<Vec<_>>(), vec![(1, 0), (2, 0)]);
        assert_eq!(replies[0].zxid, leader.tree().last_zxid());
        assert!(learner.tree().get("/a").is_some_and(|n| n.data == b"x"));
    }
}
