//! One ensemble member's protocol as a state machine with no I/O: looking, leading (discovery,
//! synchronisation, broadcast, heartbeats), following (sync, proposals, commits, pings) and the
//! role changes between them. Events go in (votes, packets, links opening and closing, the log
//! becoming durable, epochs persisted, a reload finished, time), [`PeerAction`]s come out.
//! `ensemble` feeds it sockets, disks and timers; the simulator in `paddock-tests` feeds it a
//! simulated world. Both run this code, so what the simulator checks is what the server does.
//!
//! The rules themselves live in `election` (FastLeaderElection) and `zab` (ack counting, epochs,
//! DIFF/TRUNC/SNAP planning, liveness); this module sequences them. Every wait is a state:
//! an epoch is acted on only once its persistence is reported, and a role's end or a learner's
//! TRUNC/SNAP reloads the tree, during which the peer waits for [`QuorumPeer::on_reloaded`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use engine::{DataTree, Txn, TxnHeader};

use crate::election::{
    Election, ElectionAction, ElectionTiming, History, Membership, Notification, PeerState, ServerId,
};
use crate::proto::op;
use crate::quorum::QuorumPacket;
use crate::server::{Action, Forward, LogBatch, Server, Serving};
use crate::zab::{self, AckTracker, SyncPlan, SyncWindow};

/// A quorum connection, named by the peer: one per learner on a leader, one to the leader on a
/// learner. Events about a link the peer no longer knows are stale and ignored.
pub type LinkId = u64;

/// How long a learner keeps retrying an elected peer that refuses it before electing again.
pub const REFUSED_LOOK_AGAIN_MS: u64 = 1000;

/// How long a learner waits after a refused connection before trying again.
const RETRY_CONNECT_MS: u64 = 10;

/// How often the peer needs the time while anything is in motion: an election (votes resend,
/// the wait for a better vote ends), a leader's phase before it serves, a learner's sync.
pub const BUSY_TICK_MS: u64 = 5;

/// Time as the peer sees it: monotonic ms for every timeout, wall ms for what it stamps.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub now_ms: u64,
    pub wall_ms: i64,
}

/// The ensemble's fixed facts and ZooKeeper's timing knobs, as `zoo.cfg` sets them.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    pub me: ServerId,
    pub observer: bool,
    pub voters: BTreeSet<ServerId>,
    pub tick_ms: u64,
    pub init_limit: u64,
    pub sync_limit: u64,
    /// How often a leader sends its commit point and a learner pings.
    pub heartbeat_ms: u64,
    /// Txns a leader keeps to sync learners by DIFF.
    pub window_txns: usize,
    /// `readOnlyMode.enabled`: serve read-only sessions while cut off from the quorum.
    pub read_only_mode: bool,
    /// Report every txn this server commits as [`PeerAction::Committed`] (the simulator checks
    /// that all servers commit the same txn at each zxid); off in the server.
    pub observe_commits: bool,
    /// A deliberate bug for the simulator's planted-bug test: the leader counts only its own
    /// acks, so it commits on a minority. Never set by the server.
    pub plant_commit_on_minority: bool,
}

/// Which epoch file a [`PeerAction::PersistEpoch`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochFile {
    /// The newest epoch this server agreed to (ZooKeeper's `acceptedEpoch`).
    Accepted,
    /// The epoch of the newest leader whose history this server took (`currentEpoch`).
    Current,
}

impl EpochFile {
    /// The file's name in dataDir, as ZooKeeper names it.
    pub fn file_name(self) -> &'static str {
        match self {
            EpochFile::Accepted => "acceptedEpoch",
            EpochFile::Current => "currentEpoch",
        }
    }
}

/// How a learner's disk changes before its tree is read back.
pub enum DiskChange {
    /// None: the tree in memory plus the logged, uncommitted proposals is what the disk holds.
    None,
    /// TRUNC: cut the log (and any snapshot) after this zxid.
    Trunc(i64),
    /// SNAP: cut after this zxid and install the leader's snapshot, taken at it.
    Snap(i64, Vec<u8>),
}

impl std::fmt::Debug for DiskChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DiskChange::None => write!(f, "None"),
            DiskChange::Trunc(z) => write!(f, "Trunc({z:#x})"),
            DiskChange::Snap(z, bytes) => write!(f, "Snap({z:#x}, {} bytes)", bytes.len()),
        }
    }
}

/// What the peer asks its driver to do, in order.
#[derive(Debug)]
pub enum PeerAction {
    /// Send or broadcast election notifications.
    Election(ElectionAction),
    /// Open a quorum link to `leader`; report [`QuorumPeer::on_link_opened`] or
    /// [`QuorumPeer::on_link_closed`].
    Connect { link: LinkId, leader: ServerId },
    /// Write a framed quorum packet on a link.
    Send { link: LinkId, frame: Vec<u8> },
    /// Close a link (report it closed, or not: the peer has already forgotten it).
    Close { link: LinkId },
    /// Write the epoch durably, then report [`QuorumPeer::on_epoch_persisted`].
    PersistEpoch { file: EpochFile, epoch: u64 },
    /// Store the ensemble's secret (session passwords) durably, before any later persistence.
    StoreSecret { secret: u64 },
    /// The protocol core's actions: route them as its own (held until what they reflect is
    /// durable or committed).
    Route(Vec<Action>),
    /// Release held frames that waited for `zxid` to be committed.
    Release { zxid: i64 },
    /// Send at once, past anything held (closes of clients when a role changes).
    SendNow(Vec<Action>),
    /// The protocol core has records queued for the log.
    LogPending,
    /// End the role: close every client connection, drop held frames but keep their closes
    /// (`closes_of_role`), let the log write what it holds, change the disk, rebuild the
    /// protocol core from the tree (`tree_after_role` without a change), then report
    /// [`QuorumPeer::on_reloaded`]. Always the last action of a batch.
    Reload { change: DiskChange, logged: VecDeque<(TxnHeader, Txn)> },
    /// This server leads `epoch` and serves (for the log and the simulator's one-leader check).
    Leading { epoch: u64 },
    /// A txn this server committed, encoded (only with `observe_commits`).
    Committed { zxid: i64, payload: Vec<u8> },
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

/// A connected learner, as its leader sees it.
struct LearnerLink {
    link: LinkId,
    observer: bool,
    accepted_epoch: u64,
    last_zxid: i64,
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

/// Where a leader is in ZAB's phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a quorum of voters to report their accepted epochs.
    Discovery,
    /// The new epoch is chosen and being written to acceptedEpoch.
    AcceptingEpoch(u64),
    /// Learners are being synced; waiting for a quorum to ack NEWLEADER.
    Syncing(u64),
    /// A quorum has the history; currentEpoch is being written.
    Establishing(u64),
    Serving(u64),
}

impl Phase {
    /// The epoch whose syncs have begun.
    fn syncing_epoch(self) -> Option<u64> {
        match self {
            Phase::Syncing(e) | Phase::Establishing(e) | Phase::Serving(e) => Some(e),
            Phase::Discovery | Phase::AcceptingEpoch(_) => None,
        }
    }
}

struct Leading {
    phase: Phase,
    /// A phase before serving that has not finished by now ends the role (initLimit).
    phase_deadline_ms: u64,
    acks: AckTracker,
    window: SyncWindow,
    learners: BTreeMap<ServerId, LearnerLink>,
    newleader_zxid: i64,
    /// Forwarded syncs: (zxid to be committed, learner, session, cxid).
    pending_syncs: VecDeque<(i64, ServerId, i64, i32)>,
    next_heartbeat_ms: u64,
    /// Commits reported so far (`observe_commits`).
    observed_commit: i64,
}

impl Leading {
    /// Voters (other than the leader) linked now; with `acked`, only those that took NEWLEADER.
    fn voters_linked(&self, voters: &BTreeSet<ServerId>, acked: bool) -> usize {
        let counted =
            |(id, x): &(&ServerId, &LearnerLink)| voters.contains(id) && !x.observer && (!acked || x.newleader_acked);
        self.learners.iter().filter(counted).count()
    }

    /// Sends a packet to every learner whose sync has begun (proposals, commits), encoded once.
    fn broadcast(&self, packet: &QuorumPacket, out: &mut Vec<PeerAction>) {
        let frame = packet.encode();
        for x in self.learners.values().filter(|x| x.broadcast) {
            out.push(PeerAction::Send { link: x.link, frame: frame.clone() });
        }
    }
}

struct Following {
    leader: ServerId,
    link: LinkId,
    /// The leader answered at least once.
    linked: bool,
    /// Refused before linked, it retries until here, then elects again.
    attempt_deadline_ms: u64,
    retry_at_ms: Option<u64>,
    /// Proposals logged (or being logged) and not yet committed.
    pending: VecDeque<(TxnHeader, Txn)>,
    /// The last zxid handed to the log; proposals at or below it are already here.
    logged_zxid: i64,
    leader_epoch: u64,
    /// NEWLEADER arrived: once the epochs are durable, acks may flow.
    newleader: bool,
    /// It acks: its history agrees with the leader's and the leader's epoch is durable here.
    synced: bool,
    up_to_date: bool,
    last_heard_ms: u64,
    next_ping_ms: u64,
}

enum Role {
    Looking {
        since_ms: u64,
    },
    Leading(Box<Leading>),
    Following(Box<Following>),
    /// The driver is ending the role or changing the disk. A learner's TRUNC or SNAP resumes
    /// following on the same link at the zxid, with the packets that arrived meanwhile.
    Reloading {
        resume: Option<(Box<Following>, i64)>,
        buffered: VecDeque<QuorumPacket>,
    },
}

/// One ensemble member's protocol state.
pub struct QuorumPeer {
    cfg: PeerConfig,
    /// Durable values: updated when the driver reports them persisted.
    accepted_epoch: u64,
    current_epoch: u64,
    round: u64,
    /// The last election, kept once decided to answer peers still looking.
    election: Option<Election>,
    role: Role,
    durable_zxid: i64,
    next_link: LinkId,
    info: EnsembleInfo,
}

/// The tree a role ends with, when the disk does not change: the tree in memory plus a learner's
/// logged, uncommitted proposals, which is exactly what the disk holds (so no txn applied but
/// never committed survives, and nothing is replayed).
pub fn tree_after_role(server: &mut Server, logged: &VecDeque<(TxnHeader, Txn)>) -> DataTree {
    let mut data = server.take_tree();
    for (hdr, txn) in logged {
        if hdr.zxid > data.last_zxid() {
            data.apply(hdr, txn);
        }
    }
    data
}

/// What a role's end sends: a close for every connection the protocol core knows, and the closes
/// among the frames it held (whose connections it may already have forgotten: a session that
/// expired has left the table, and only its held close would ever end its connection); the rest
/// of what was held is dropped, as nothing a client relies on may come from a role that ended.
pub fn closes_of_role(conns: Vec<crate::server::ConnId>, held: impl IntoIterator<Item = Vec<Action>>) -> Vec<Action> {
    let mut closes: Vec<Action> = conns.into_iter().map(|conn| Action::Close { conn }).collect();
    for actions in held {
        closes.extend(actions.into_iter().filter(|a| matches!(a, Action::Close { .. })));
    }
    closes
}

fn send(out: &mut Vec<PeerAction>, link: LinkId, packet: &QuorumPacket) {
    out.push(PeerAction::Send { link, frame: packet.encode() });
}

/// A peer's role, seen from outside: for the simulator's checks and its failure reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleView {
    Looking,
    Leading { serving: bool, committed: i64 },
    Following { leader: ServerId, up_to_date: bool, uncommitted: usize },
    Reloading,
}

impl QuorumPeer {
    /// A peer that has not started: the epochs are the ones on disk, `durable_zxid` where the
    /// recovered log ends.
    pub fn new(cfg: PeerConfig, accepted_epoch: u64, current_epoch: u64, durable_zxid: i64) -> QuorumPeer {
        QuorumPeer {
            cfg,
            accepted_epoch,
            current_epoch,
            round: 0,
            election: None,
            role: Role::Looking { since_ms: 0 },
            durable_zxid,
            next_link: 1,
            info: EnsembleInfo::default(),
        }
    }

    /// Starts looking for a leader.
    pub fn start(&mut self, clock: Clock, server: &mut Server, out: &mut Vec<PeerAction>) {
        // Rounds restart with the process. Starting them at the wall clock's ms puts this
        // incarnation's rounds above every round an earlier one took part in (rounds grow by one
        // per election, far slower than ms), so peers still FOLLOWING an earlier incarnation's
        // win never answer in a round of this one, and are never taken for a quorum behind it.
        self.round = self.round.max(u64::try_from(clock.wall_ms).unwrap_or(0));
        self.look(clock, server, out);
    }

    /// This server's id.
    pub fn me(&self) -> ServerId {
        self.cfg.me
    }

    /// The epoch durable in acceptedEpoch.
    pub fn accepted_epoch(&self) -> u64 {
        self.accepted_epoch
    }

    /// The epoch durable in currentEpoch.
    pub fn current_epoch(&self) -> u64 {
        self.current_epoch
    }

    /// A name for a link the driver accepted (a learner connecting to this server).
    pub fn new_link(&mut self) -> LinkId {
        self.next_link += 1;
        self.next_link
    }

    /// Up to where frames produced by the protocol core may be sent: a leader's commit point;
    /// a learner applies only committed txns, so anything (`i64::MAX`).
    pub fn releasable(&self) -> i64 {
        match &self.role {
            Role::Leading(l) => l.acks.committed(),
            _ => i64::MAX,
        }
    }

    /// The role, seen from outside.
    pub fn role(&self) -> RoleView {
        match &self.role {
            Role::Looking { .. } => RoleView::Looking,
            Role::Leading(l) => {
                RoleView::Leading { serving: matches!(l.phase, Phase::Serving(_)), committed: l.acks.committed() }
            }
            Role::Following(f) => {
                RoleView::Following { leader: f.leader, up_to_date: f.up_to_date, uncommitted: f.pending.len() }
            }
            Role::Reloading { .. } => RoleView::Reloading,
        }
    }

    /// The last election (kept once decided), for failure reports.
    pub fn election(&self) -> Option<&Election> {
        self.election.as_ref()
    }

    /// How long the driver may wait before the next [`QuorumPeer::tick`]: a heartbeat once
    /// serving (heartbeats, pings and silence checks need no more), [`BUSY_TICK_MS`] otherwise.
    /// When an event shortens it, the driver ticks early.
    pub fn tick_interval_ms(&self) -> u64 {
        match &self.role {
            Role::Leading(l) if matches!(l.phase, Phase::Serving(_)) => self.cfg.heartbeat_ms,
            Role::Following(f) if f.up_to_date => self.cfg.heartbeat_ms,
            _ => BUSY_TICK_MS,
        }
    }

    /// Counters and state for the reports.
    pub fn info(&self, server: &Server) -> EnsembleInfo {
        let mut info = EnsembleInfo { epoch: self.current_epoch, ..self.info.clone() };
        let serving = server.serving() != Serving::No;
        info.read_only = server.serving() == Serving::ReadOnly;
        info.state = match &self.role {
            Role::Leading(l) if serving => {
                info.learners = l.learners.len();
                info.synced_followers = l.learners.values().filter(|x| !x.observer && x.up_to_date).count();
                info.synced_observers = l.learners.values().filter(|x| x.observer && x.up_to_date).count();
                info.pending_syncs = l.pending_syncs.len();
                Some("leader")
            }
            Role::Following(_) if serving => Some(if self.cfg.observer { "observer" } else { "follower" }),
            _ => None,
        };
        info
    }

    fn look(&mut self, clock: Clock, server: &mut Server, out: &mut Vec<PeerAction>) {
        let last_zxid = server.tree().last_zxid();
        let history = History { last_zxid, epoch: self.current_epoch, round: self.round };
        let members = Membership { me: self.cfg.me, voters: self.cfg.voters.clone(), observer: self.cfg.observer };
        let mut actions = Vec::new();
        let election = Election::start(members, history, ElectionTiming::default(), clock.now_ms, &mut actions);
        self.round = election.round();
        self.election = Some(election);
        self.role = Role::Looking { since_ms: clock.now_ms };
        self.info.elections += 1;
        out.extend(actions.into_iter().map(PeerAction::Election));
        tracing::info!(zxid = format!("{last_zxid:#x}"), epoch = self.current_epoch, "LOOKING");
    }

    /// Ends the role: closes its links and reloads; looking follows [`QuorumPeer::on_reloaded`].
    fn end_role(&mut self, why: &str, out: &mut Vec<PeerAction>) {
        tracing::warn!(why, "role ends; looking again");
        // The old election would answer peers with the outcome of a role that is over: a
        // restarted former leader counting this server as FOLLOWING it would lead without the
        // history this server holds. Until the next election starts (after the reload), peers
        // get no answer and resend.
        self.election = None;
        let role = std::mem::replace(&mut self.role, Role::Reloading { resume: None, buffered: VecDeque::new() });
        let logged = match role {
            Role::Leading(l) => {
                out.extend(l.learners.values().map(|x| PeerAction::Close { link: x.link }));
                VecDeque::new()
            }
            Role::Following(f) => {
                out.push(PeerAction::Close { link: f.link });
                f.pending
            }
            Role::Looking { .. } | Role::Reloading { .. } => VecDeque::new(),
        };
        out.push(PeerAction::Reload { change: DiskChange::None, logged });
    }

    /// The driver rebuilt the protocol core (`server`) after a [`PeerAction::Reload`].
    pub fn on_reloaded(&mut self, clock: Clock, server: &mut Server, out: &mut Vec<PeerAction>) {
        self.durable_zxid = server.tree().last_zxid();
        let Role::Reloading { resume, buffered } =
            std::mem::replace(&mut self.role, Role::Looking { since_ms: clock.now_ms })
        else {
            return;
        };
        let Some((mut f, zxid)) = resume else {
            self.look(clock, server, out);
            return;
        };
        let reached = server.tree().last_zxid();
        if reached != zxid {
            // The disk held no state at `zxid`: a snapshot this learner took in from an earlier
            // leader was newer and is gone, and its log stops short. Carrying on would apply the
            // diff to the wrong tree; syncing again from where the disk really ends gets a DIFF
            // or SNAP that fits.
            tracing::warn!(
                zxid = format!("{zxid:#x}"),
                reached = format!("{reached:#x}"),
                "cutting back reached past this learner's snapshot; syncing again"
            );
            out.push(PeerAction::Close { link: f.link });
            self.look(clock, server, out);
            return;
        }
        // Still linked, level at `zxid`, waiting for NEWLEADER.
        f.pending.clear();
        f.logged_zxid = zxid;
        f.newleader = false;
        f.synced = false;
        f.up_to_date = false;
        let link = f.link;
        self.role = Role::Following(f);
        for packet in buffered {
            self.on_packet(link, packet, clock, server, out);
        }
    }

    /// Time passes: elections resend, leaders heartbeat and check their quorum, learners ping
    /// and check their leader, phases time out. The driver calls it every few ms.
    pub fn tick(&mut self, clock: Clock, server: &mut Server, out: &mut Vec<PeerAction>) {
        match &self.role {
            Role::Looking { since_ms } => {
                // ZooKeeper starts its read-only server after max(2 s, tickTime) without a quorum.
                let read_only_at = since_ms + self.cfg.tick_ms.max(2000);
                if self.cfg.read_only_mode && clock.now_ms >= read_only_at && server.serving() == Serving::No {
                    tracing::info!("no quorum: serving read-only sessions");
                    server.set_serving(Serving::ReadOnly);
                }
                let Some(e) = self.election.as_mut() else { return };
                let mut actions = Vec::new();
                e.tick(clock.now_ms, &mut actions);
                out.extend(actions.into_iter().map(PeerAction::Election));
                self.decide(clock, server, out);
            }
            Role::Leading(_) => self.leader_tick(clock, server, out),
            Role::Following(_) => self.learner_tick(clock, server, out),
            Role::Reloading { .. } => {}
        }
    }

    /// An election notification arrived.
    pub fn on_notification(&mut self, n: Notification, clock: Clock, server: &mut Server, out: &mut Vec<PeerAction>) {
        let Some(e) = self.election.as_mut() else { return };
        let mut actions = Vec::new();
        e.on_notification(n, clock.now_ms, &mut actions);
        out.extend(actions.into_iter().map(PeerAction::Election));
        if matches!(self.role, Role::Looking { .. }) {
            self.decide(clock, server, out);
        }
    }

    fn decide(&mut self, clock: Clock, server: &mut Server, out: &mut Vec<PeerAction>) {
        let Some(outcome) = self.election.as_ref().and_then(|e| e.outcome()) else { return };
        let (leader, epoch, state) = outcome;
        tracing::info!(leader, epoch, ?state, "election decided");
        if server.serving() == Serving::ReadOnly {
            let conns = server.all_connections();
            server.set_serving(Serving::No);
            out.push(PeerAction::SendNow(conns.into_iter().map(|conn| Action::Close { conn }).collect()));
        }
        match outcome {
            (_, _, PeerState::Leading) => self.lead(clock, server, out),
            (leader, _, PeerState::Following | PeerState::Observing) if leader != self.cfg.me => {
                self.follow(leader, clock, server, out)
            }
            _ => {}
        }
    }

    // ---- Leading. ----

    fn lead(&mut self, clock: Clock, server: &mut Server, out: &mut Vec<PeerAction>) {
        let last = server.tree().last_zxid();
        let voters = if self.cfg.plant_commit_on_minority { [self.cfg.me].into() } else { self.cfg.voters.clone() };
        let mut acks = AckTracker::new(voters);
        acks.ack(self.cfg.me, self.durable_zxid);
        self.role = Role::Leading(Box::new(Leading {
            phase: Phase::Discovery,
            phase_deadline_ms: clock.now_ms + self.init_ms(),
            acks,
            window: SyncWindow::new(last, self.cfg.window_txns),
            learners: BTreeMap::new(),
            newleader_zxid: last,
            pending_syncs: VecDeque::new(),
            next_heartbeat_ms: clock.now_ms,
            observed_commit: last,
        }));
        self.leader_progress(clock, out);
    }

    fn init_ms(&self) -> u64 {
        self.cfg.init_limit * self.cfg.tick_ms
    }

    fn sync_ms(&self) -> u64 {
        self.cfg.sync_limit * self.cfg.tick_ms
    }

    /// Moves a leader through discovery and synchronisation as learners report and ack.
    fn leader_progress(&mut self, clock: Clock, out: &mut Vec<PeerAction>) {
        let (accepted, current, init_ms) = (self.accepted_epoch, self.current_epoch, self.init_ms());
        let Role::Leading(l) = &mut self.role else { return };
        match l.phase {
            Phase::Discovery => {
                // A quorum of voters (this one included) must report before an epoch is chosen.
                let reported: Vec<u64> = l
                    .learners
                    .iter()
                    .filter(|(id, x)| !x.observer && self.cfg.voters.contains(id))
                    .map(|(_, x)| x.accepted_epoch)
                    .collect();
                if !zab::is_quorum(reported.len() + 1, self.cfg.voters.len()) {
                    return;
                }
                let epoch = zab::new_epoch(reported.into_iter().chain([accepted, current]));
                l.phase = Phase::AcceptingEpoch(epoch);
                l.phase_deadline_ms = clock.now_ms + init_ms;
                out.push(PeerAction::PersistEpoch { file: EpochFile::Accepted, epoch });
            }
            Phase::Syncing(epoch) => {
                // A quorum must ack the leader's history before it serves.
                let acked = l.voters_linked(&self.cfg.voters, true);
                if zab::established(acked, self.cfg.voters.len(), l.acks.committed(), l.newleader_zxid) {
                    l.phase = Phase::Establishing(epoch);
                    out.push(PeerAction::PersistEpoch { file: EpochFile::Current, epoch });
                }
            }
            Phase::AcceptingEpoch(_) | Phase::Establishing(_) | Phase::Serving(_) => {}
        }
    }

    /// The driver wrote an epoch durably.
    pub fn on_epoch_persisted(
        &mut self,
        file: EpochFile,
        epoch: u64,
        clock: Clock,
        server: &mut Server,
        out: &mut Vec<PeerAction>,
    ) {
        match file {
            EpochFile::Accepted => self.accepted_epoch = self.accepted_epoch.max(epoch),
            EpochFile::Current => self.current_epoch = self.current_epoch.max(epoch),
        }
        match &mut self.role {
            Role::Leading(l) if l.phase == Phase::AcceptingEpoch(epoch) && file == EpochFile::Accepted => {
                l.phase = Phase::Syncing(epoch);
                let ids: Vec<ServerId> = l.learners.keys().copied().collect();
                for id in ids {
                    self.leader_start_sync(id, clock, server, out);
                }
                self.leader_progress(clock, out);
            }
            Role::Leading(l) if l.phase == Phase::Establishing(epoch) && file == EpochFile::Current => {
                // Learners that acked may have gone while the epoch was written (their acks and
                // their links' ends arrive together after a pause): serve only with a quorum.
                let acked = l.voters_linked(&self.cfg.voters, true);
                if !zab::established(acked, self.cfg.voters.len(), l.acks.committed(), l.newleader_zxid) {
                    l.phase = Phase::Syncing(epoch);
                    return;
                }
                l.phase = Phase::Serving(epoch);
                l.next_heartbeat_ms = clock.now_ms + self.cfg.heartbeat_ms;
                let committed = l.acks.committed();
                if let Some(e) = self.election.as_mut() {
                    e.established(epoch);
                }
                server.set_serving(Serving::Leader { epoch });
                tracing::info!(epoch, me = self.cfg.me, "LEADING");
                out.push(PeerAction::Leading { epoch });
                self.leader_send_up_to_date(out);
                out.push(PeerAction::Release { zxid: committed });
            }
            Role::Following(_) => self.learner_maybe_synced(out),
            _ => {}
        }
    }

    fn leader_serving(&self) -> bool {
        matches!(&self.role, Role::Leading(l) if matches!(l.phase, Phase::Serving(_)))
    }

    /// Brings a learner level: the epoch, then DIFF, TRUNC or SNAP as `zab` plans it, then the
    /// end of the leader's history; from here on it gets every proposal and commit.
    fn leader_start_sync(&mut self, id: ServerId, clock: Clock, server: &Server, out: &mut Vec<PeerAction>) {
        let serving = self.leader_serving();
        let secret = server.settings().secret;
        let last = server.tree().last_zxid();
        let Role::Leading(l) = &mut self.role else { return };
        let Some(epoch) = l.phase.syncing_epoch() else { return };
        let Some(x) = l.learners.get_mut(&id) else { return };
        let link = x.link;
        send(out, link, &QuorumPacket::NewEpoch { epoch, secret });
        let plan = l.window.plan(x.last_zxid);
        let diff_from = match plan {
            SyncPlan::Diff => {
                send(out, link, &QuorumPacket::Diff);
                x.last_zxid
            }
            SyncPlan::Trunc(z) => {
                send(out, link, &QuorumPacket::Trunc { zxid: z });
                z
            }
            SyncPlan::Snap => {
                // The tree as applied: txns still waiting for the log come after, and the
                // learner skips those its snapshot already holds.
                let snapshot = engine::snapshot::SnapshotWriter::whole(server.tree(), clock.wall_ms);
                send(out, link, &QuorumPacket::Snap { zxid: last, snapshot });
                last
            }
        };
        tracing::info!(learner = id, learner_zxid = format!("{:#x}", x.last_zxid), ?plan, "syncing learner");
        let diff = l.window.after(diff_from);
        if !diff.is_empty() {
            send(out, link, &QuorumPacket::Proposal { records: diff });
        }
        send(out, link, &QuorumPacket::NewLeader { zxid: last });
        x.newleader_zxid = last;
        x.broadcast = true;
        if serving {
            send(out, link, &QuorumPacket::Commit { zxid: l.acks.committed() });
            if x.observer {
                x.up_to_date = true;
                send(out, link, &QuorumPacket::UpToDate);
            }
        }
    }

    /// Sends UPTODATE to every learner that is level, once the leader serves.
    fn leader_send_up_to_date(&mut self, out: &mut Vec<PeerAction>) {
        if !self.leader_serving() {
            return;
        }
        let Role::Leading(l) = &mut self.role else { return };
        for x in l.learners.values_mut() {
            let level = x.newleader_acked && x.acked >= x.newleader_zxid;
            if x.broadcast && !x.up_to_date && (x.observer || level) {
                x.up_to_date = true;
                send(out, x.link, &QuorumPacket::UpToDate);
            }
        }
    }

    fn leader_committed(&mut self, committed: i64, out: &mut Vec<PeerAction>) {
        out.push(PeerAction::Release { zxid: committed });
        let observe = self.cfg.observe_commits;
        let Role::Leading(l) = &mut self.role else { return };
        if observe && committed > l.observed_commit {
            let framed = l.window.after(l.observed_commit);
            for r in engine::log::framed_records(&framed).unwrap_or_default().iter().filter(|r| r.zxid <= committed) {
                out.push(PeerAction::Committed { zxid: r.zxid, payload: framed[r.payload.clone()].to_vec() });
            }
            l.observed_commit = committed;
        }
        l.broadcast(&QuorumPacket::Commit { zxid: committed }, out);
        while l.pending_syncs.front().is_some_and(|(z, ..)| *z <= committed) {
            if let Some((_, learner, session_id, cxid)) = l.pending_syncs.pop_front() {
                if let Some(x) = l.learners.get(&learner) {
                    send(out, x.link, &QuorumPacket::SyncDone { session_id, cxid });
                }
            }
        }
    }

    /// A learner said who it is on a new link.
    fn leader_register(
        &mut self,
        link: LinkId,
        info: (ServerId, u64, i64, bool),
        clock: Clock,
        server: &mut Server,
        out: &mut Vec<PeerAction>,
    ) {
        let Role::Leading(l) = &mut self.role else { return };
        let (id, accepted_epoch, last_zxid, observer) = info;
        if let Some(old) = l.learners.remove(&id) {
            out.push(PeerAction::Close { link: old.link });
            l.acks.remove(id);
        }
        let x = LearnerLink {
            link,
            observer,
            accepted_epoch,
            last_zxid,
            broadcast: false,
            newleader_zxid: 0,
            acked: 0,
            newleader_acked: false,
            up_to_date: false,
            last_heard_ms: clock.now_ms,
        };
        l.learners.insert(id, x);
        if l.phase.syncing_epoch().is_some() {
            self.leader_start_sync(id, clock, server, out);
        }
        self.leader_progress(clock, out);
    }

    fn leader_on_packet(
        &mut self,
        id: ServerId,
        packet: QuorumPacket,
        clock: Clock,
        server: &mut Server,
        out: &mut Vec<PeerAction>,
    ) {
        let serving = self.leader_serving();
        let Role::Leading(l) = &mut self.role else { return };
        let Some(x) = l.learners.get_mut(&id) else { return };
        x.last_heard_ms = clock.now_ms;
        let link = x.link;
        let mut actions = Vec::new();
        match packet {
            QuorumPacket::Ack { zxid } => {
                x.acked = x.acked.max(zxid);
                x.newleader_acked |= x.broadcast;
                if let Some(c) = l.acks.ack(id, zxid) {
                    self.leader_committed(c, out);
                }
                self.leader_progress(clock, out);
                self.leader_send_up_to_date(out);
                return;
            }
            QuorumPacket::Ping { sessions } => {
                server.touch_sessions(&sessions, clock.now_ms);
                return;
            }
            _ if !serving => return,
            QuorumPacket::CreateSession { session_id, timeout_ms } => {
                let f = Forward::CreateSession { session_id, timeout_ms };
                server.forwarded(f, clock.now_ms, clock.wall_ms, &mut actions);
            }
            QuorumPacket::Request { session_id, packet, .. } if packet.op == op::SYNC => {
                server.touch_sessions(&[session_id], clock.now_ms);
                let needed = server.tree().last_zxid();
                if needed <= l.acks.committed() {
                    send(out, link, &QuorumPacket::SyncDone { session_id, cxid: packet.xid });
                } else {
                    l.pending_syncs.push_back((needed, id, session_id, packet.xid));
                }
                return;
            }
            QuorumPacket::Request { session_id, auth, packet } => {
                let f = Forward::Request { session_id, auth, packet };
                server.forwarded(f, clock.now_ms, clock.wall_ms, &mut actions);
            }
            other => {
                tracing::warn!(learner = id, packet = ?std::mem::discriminant(&other), "unexpected packet from a learner");
                return;
            }
        }
        out.push(PeerAction::Route(actions));
    }

    fn leader_tick(&mut self, clock: Clock, server: &mut Server, out: &mut Vec<PeerAction>) {
        let (now, sync_ms, heartbeat_ms) = (clock.now_ms, self.sync_ms(), self.cfg.heartbeat_ms);
        let silence_ms = self.sync_ms().max(self.init_ms());
        let last = server.tree().last_zxid();
        let Role::Leading(l) = &mut self.role else { return };
        // A learner silent too long is dropped; it resyncs when it comes back.
        let silent: Vec<ServerId> = l
            .learners
            .iter()
            .filter(|(_, x)| now.saturating_sub(x.last_heard_ms) > silence_ms)
            .map(|(k, _)| *k)
            .collect();
        for id in silent {
            if let Some(x) = l.learners.remove(&id) {
                tracing::info!(learner = id, "learner silent; dropping it");
                out.push(PeerAction::Close { link: x.link });
                l.acks.remove(id);
            }
        }
        let Phase::Serving(epoch) = l.phase else {
            if now > l.phase_deadline_ms {
                let why = match l.phase {
                    Phase::Discovery => "no quorum of followers connected within initLimit",
                    _ => "no quorum acknowledged the new leader within initLimit",
                };
                self.end_role(why, out);
            }
            return;
        };
        if now < l.next_heartbeat_ms {
            return;
        }
        l.next_heartbeat_ms = now + heartbeat_ms;
        l.broadcast(&QuorumPacket::Commit { zxid: l.acks.committed() }, out);
        let heard: BTreeMap<ServerId, u64> = l.learners.iter().map(|(k, x)| (*k, x.last_heard_ms)).collect();
        if !zab::hears_quorum(&self.cfg.voters, self.cfg.me, &heard, now, sync_ms) {
            tracing::warn!(epoch, "lost the quorum of followers (syncLimit passed)");
            self.end_role("lost the quorum", out);
        } else if zab::must_roll_epoch(last) {
            tracing::info!(epoch, "zxid counter nearly exhausted; stepping down so a new epoch starts");
            self.end_role("zxid counter exhausted", out);
        }
    }

    // ---- Following. ----

    fn follow(&mut self, leader: ServerId, clock: Clock, server: &Server, out: &mut Vec<PeerAction>) {
        // The elected leader may not lead yet (it decides a moment later, or is still stepping
        // down from an old role): keep trying within initLimit, as ZooKeeper's learners do. But
        // a peer that keeps refusing for a second was elected by a vote it has since changed
        // (two members agreed on it before a third, better one showed up): look again rather
        // than wait out initLimit.
        let deadline = clock.now_ms + self.init_ms().min(REFUSED_LOOK_AGAIN_MS);
        self.connect(leader, deadline, clock, server, out);
    }

    fn connect(
        &mut self,
        leader: ServerId,
        deadline_ms: u64,
        clock: Clock,
        server: &Server,
        out: &mut Vec<PeerAction>,
    ) {
        let link = self.new_link();
        let last = server.tree().last_zxid();
        self.role = Role::Following(Box::new(Following {
            leader,
            link,
            linked: false,
            attempt_deadline_ms: deadline_ms,
            retry_at_ms: None,
            pending: VecDeque::new(),
            logged_zxid: last,
            leader_epoch: 0,
            newleader: false,
            synced: false,
            up_to_date: false,
            last_heard_ms: clock.now_ms,
            next_ping_ms: clock.now_ms + self.cfg.heartbeat_ms,
        }));
        out.push(PeerAction::Connect { link, leader });
    }

    /// A link this peer asked for is open: it says who it is.
    pub fn on_link_opened(&mut self, link: LinkId, server: &Server, out: &mut Vec<PeerAction>) {
        let Role::Following(f) = &self.role else { return };
        if f.link != link {
            out.push(PeerAction::Close { link });
            return;
        }
        let info = QuorumPacket::LearnerInfo {
            server: self.cfg.me,
            accepted_epoch: self.accepted_epoch,
            last_zxid: server.tree().last_zxid(),
            observer: self.cfg.observer,
        };
        send(out, link, &info);
    }

    /// A link closed (or failed to open).
    pub fn on_link_closed(&mut self, link: LinkId, clock: Clock, out: &mut Vec<PeerAction>) {
        match &mut self.role {
            Role::Leading(l) => {
                let gone = l.learners.iter().find(|(_, x)| x.link == link).map(|(k, _)| *k);
                if let Some(id) = gone {
                    tracing::info!(learner = id, "learner gone");
                    l.learners.remove(&id);
                    l.acks.remove(id);
                }
                // A serving leader that knows it lost its quorum stops at once rather than at
                // the next heartbeat: meanwhile it would answer syncs with a history others
                // may have moved past.
                let linked = l.voters_linked(&self.cfg.voters, false);
                if matches!(l.phase, Phase::Serving(_)) && !zab::is_quorum(linked + 1, self.cfg.voters.len()) {
                    self.end_role("lost the quorum", out);
                }
            }
            Role::Following(f) if f.link == link => {
                if !f.linked && clock.now_ms < f.attempt_deadline_ms {
                    // Refused before it was linked: try again shortly.
                    f.retry_at_ms = Some(clock.now_ms + RETRY_CONNECT_MS);
                } else {
                    tracing::warn!(leader = f.leader, "lost the leader");
                    self.end_role("lost the leader", out);
                }
            }
            Role::Reloading { resume, .. } if resume.as_ref().is_some_and(|(f, _)| f.link == link) => {
                // The TRUNC or SNAP completes, then the peer looks again.
                *resume = None;
            }
            _ => {}
        }
    }

    /// A quorum packet arrived on a link.
    pub fn on_packet(
        &mut self,
        link: LinkId,
        packet: QuorumPacket,
        clock: Clock,
        server: &mut Server,
        out: &mut Vec<PeerAction>,
    ) {
        match &mut self.role {
            Role::Following(f) if f.link == link => return self.learner_on_packet(packet, clock, server, out),
            Role::Reloading { resume: Some((f, _)), buffered } if f.link == link => {
                buffered.push_back(packet);
                return;
            }
            Role::Leading(l) => {
                if let Some(id) = l.learners.iter().find(|(_, x)| x.link == link).map(|(k, _)| *k) {
                    return self.leader_on_packet(id, packet, clock, server, out);
                }
                if let QuorumPacket::LearnerInfo { server: id, accepted_epoch, last_zxid, observer } = packet {
                    return self.leader_register(link, (id, accepted_epoch, last_zxid, observer), clock, server, out);
                }
            }
            _ => {}
        }
        // Not leading, or a link nobody registered: refused.
        out.push(PeerAction::Close { link });
    }

    fn learner_on_packet(
        &mut self,
        packet: QuorumPacket,
        clock: Clock,
        server: &mut Server,
        out: &mut Vec<PeerAction>,
    ) {
        let accepted = self.accepted_epoch;
        let Role::Following(f) = &mut self.role else { return };
        f.linked = true;
        f.last_heard_ms = clock.now_ms;
        let leader = f.leader;
        match packet {
            QuorumPacket::NewEpoch { epoch, secret } => {
                if !zab::may_accept_epoch(accepted, epoch) {
                    tracing::warn!(epoch, accepted, "leader's epoch is older than one accepted");
                    return self.end_role("older epoch", out);
                }
                out.push(PeerAction::StoreSecret { secret });
                if epoch > accepted {
                    out.push(PeerAction::PersistEpoch { file: EpochFile::Accepted, epoch });
                }
                server.set_secret(secret);
                f.leader_epoch = epoch;
            }
            QuorumPacket::Diff => self.info.sync_diff += 1,
            QuorumPacket::Trunc { zxid } => {
                self.info.sync_trunc += 1;
                tracing::info!(zxid = format!("{zxid:#x}"), "TRUNC: cutting history back");
                self.learner_disk_change(DiskChange::Trunc(zxid), zxid, out);
            }
            QuorumPacket::Snap { zxid, snapshot } => {
                self.info.sync_snap += 1;
                tracing::info!(zxid = format!("{zxid:#x}"), bytes = snapshot.len(), "SNAP: taking the leader's tree");
                self.learner_disk_change(DiskChange::Snap(zxid, snapshot), zxid, out);
            }
            QuorumPacket::Proposal { records } => {
                if let Err(why) = learner_log(f, &records, server) {
                    tracing::warn!(leader, why, "bad proposal");
                    return self.end_role("bad proposal", out);
                }
                if server.has_pending_log() {
                    out.push(PeerAction::LogPending);
                }
            }
            QuorumPacket::NewLeader { .. } => {
                f.newleader = true;
                let epoch = f.leader_epoch;
                if epoch > self.current_epoch {
                    out.push(PeerAction::PersistEpoch { file: EpochFile::Current, epoch });
                }
                self.learner_maybe_synced(out);
            }
            QuorumPacket::UpToDate => {
                f.up_to_date = true;
                server.set_serving(Serving::Learner);
                let role = if self.cfg.observer { "OBSERVING" } else { "FOLLOWING" };
                tracing::info!(leader, epoch = f.leader_epoch, "{role}");
            }
            QuorumPacket::Commit { zxid } => {
                let mut actions = Vec::new();
                while f.pending.front().is_some_and(|(h, _)| h.zxid <= zxid) {
                    let Some((hdr, txn)) = f.pending.pop_front() else { break };
                    if self.cfg.observe_commits && hdr.zxid > server.tree().last_zxid() {
                        let mut payload = Vec::new();
                        engine::codec::encode_txn(&hdr, &txn, &mut payload);
                        out.push(PeerAction::Committed { zxid: hdr.zxid, payload });
                    }
                    server.apply_committed(&hdr, &txn, clock.now_ms, clock.wall_ms, &mut actions);
                }
                out.push(PeerAction::Route(actions));
            }
            QuorumPacket::SyncDone { session_id, cxid } => {
                let mut actions = Vec::new();
                server.sync_done(session_id, cxid, clock.now_ms, clock.wall_ms, &mut actions);
                out.push(PeerAction::Route(actions));
            }
            other => {
                tracing::warn!(leader, packet = ?std::mem::discriminant(&other), "unexpected packet from the leader");
                self.end_role("unexpected packet", out);
            }
        }
    }

    /// Acks flow once NEWLEADER arrived and the leader's epoch is durable here; the leader
    /// counts the first ack as the answer to NEWLEADER.
    fn learner_maybe_synced(&mut self, out: &mut Vec<PeerAction>) {
        let (accepted, current, durable) = (self.accepted_epoch, self.current_epoch, self.durable_zxid);
        let Role::Following(f) = &mut self.role else { return };
        if f.synced || !f.newleader || accepted < f.leader_epoch || current < f.leader_epoch {
            return;
        }
        f.synced = true;
        if let Some(e) = self.election.as_mut() {
            e.established(f.leader_epoch);
        }
        if !self.cfg.observer {
            send(out, f.link, &QuorumPacket::Ack { zxid: durable });
        }
    }

    /// TRUNC or SNAP: the disk changes and the tree is read back; the learner stays linked.
    fn learner_disk_change(&mut self, change: DiskChange, zxid: i64, out: &mut Vec<PeerAction>) {
        let role = std::mem::replace(&mut self.role, Role::Reloading { resume: None, buffered: VecDeque::new() });
        let Role::Following(f) = role else {
            self.role = role;
            return;
        };
        self.role = Role::Reloading { resume: Some((f, zxid)), buffered: VecDeque::new() };
        out.push(PeerAction::Reload { change, logged: VecDeque::new() });
    }

    fn learner_tick(&mut self, clock: Clock, server: &mut Server, out: &mut Vec<PeerAction>) {
        let now = clock.now_ms;
        let limit_ms = match &self.role {
            Role::Following(f) if f.up_to_date => self.sync_ms(),
            _ => self.init_ms(),
        };
        let Role::Following(f) = &mut self.role else { return };
        if let Some(at) = f.retry_at_ms {
            if now >= at {
                let (leader, deadline) = (f.leader, f.attempt_deadline_ms);
                if now >= deadline {
                    tracing::warn!(leader, "cannot reach the elected leader");
                    self.end_role("cannot reach the leader", out);
                } else {
                    self.connect(leader, deadline, clock, server, out);
                }
            }
            return;
        }
        if now.saturating_sub(f.last_heard_ms) > limit_ms {
            tracing::warn!(leader = f.leader, silent_ms = now - f.last_heard_ms, "leader silent");
            return self.end_role("leader silent", out);
        }
        if now >= f.next_ping_ms {
            f.next_ping_ms = now + self.cfg.heartbeat_ms;
            let mut sessions = server.take_touched();
            sessions.sort_unstable();
            send(out, f.link, &QuorumPacket::Ping { sessions });
        }
    }

    // ---- Both roles. ----

    /// A request a learner's protocol core sends to its leader.
    pub fn forward(&mut self, f: Forward, out: &mut Vec<PeerAction>) {
        let Role::Following(fl) = &self.role else { return };
        let packet = match f {
            Forward::CreateSession { session_id, timeout_ms } => QuorumPacket::CreateSession { session_id, timeout_ms },
            Forward::Request { session_id, auth, packet } => QuorumPacket::Request { session_id, auth, packet },
        };
        send(out, fl.link, &packet);
    }

    /// The local log is durable up to `zxid`: the leader's own ack, or a learner's ack.
    pub fn on_durable(&mut self, zxid: i64, clock: Clock, out: &mut Vec<PeerAction>) {
        if zxid <= self.durable_zxid {
            return;
        }
        self.durable_zxid = zxid;
        match &mut self.role {
            Role::Leading(l) => {
                if let Some(c) = l.acks.ack(self.cfg.me, zxid) {
                    self.leader_committed(c, out);
                }
                self.leader_progress(clock, out);
            }
            Role::Following(f) if f.synced && !self.cfg.observer => send(out, f.link, &QuorumPacket::Ack { zxid }),
            _ => {}
        }
    }

    /// The log took a batch: a leader proposes it to every learner being synced or in step,
    /// and keeps it for syncing later ones.
    pub fn on_proposed(&mut self, batch: &LogBatch, out: &mut Vec<PeerAction>) {
        let Role::Leading(l) = &mut self.role else { return };
        // The leader framed these records itself: no need to scan or check them again.
        for (zxid, framed) in batch.framed() {
            l.window.push(zxid, framed.to_vec());
        }
        l.broadcast(&QuorumPacket::Proposal { records: batch.bytes.clone() }, out);
    }
}

/// A learner got proposals: hand the new ones to the log; they are applied when committed.
fn learner_log(f: &mut Following, records: &[u8], server: &mut Server) -> Result<(), &'static str> {
    let refs = engine::log::framed_records(records).ok_or("proposal fails its checksums")?;
    for r in refs {
        if r.zxid <= f.logged_zxid {
            continue;
        }
        let (hdr, txn) = engine::codec::decode_txn(&records[r.payload.clone()]).map_err(|_| "undecodable txn")?;
        server.append_framed(&records[r.offset..r.payload.end], r.zxid);
        f.pending.push_back((hdr, txn));
        f.logged_zxid = r.zxid;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::election::Vote;
    use crate::server::ServerSettings;

    const VOTERS: [ServerId; 3] = [1, 2, 3];

    fn config(me: ServerId) -> PeerConfig {
        PeerConfig {
            me,
            observer: false,
            voters: VOTERS.into(),
            tick_ms: 100,
            init_limit: 10,
            sync_limit: 5,
            heartbeat_ms: 50,
            window_txns: 64,
            read_only_mode: false,
            observe_commits: false,
            plant_commit_on_minority: false,
        }
    }

    fn server(me: ServerId) -> Server {
        let settings = ServerSettings {
            tick_ms: 100,
            min_session_timeout_ms: 200,
            max_session_timeout_ms: 2000,
            extended_types: false,
            enforce_quota: false,
            super_digest: None,
            container_check_interval_ms: 60_000,
            container_max_per_minute: 100,
            secret: 7,
            server_id: me,
        };
        let mut s = Server::new(settings, 0);
        s.set_serving(Serving::No);
        s
    }

    fn at(now_ms: u64) -> Clock {
        Clock { now_ms, wall_ms: now_ms as i64 }
    }

    /// A peer that has decided, from the votes of the two others, that `leader` leads.
    fn decided(me: ServerId, leader: ServerId) -> (QuorumPeer, Server, Vec<PeerAction>) {
        let (mut p, mut s, mut out) = (QuorumPeer::new(config(me), 0, 0, 0), server(me), Vec::new());
        p.start(at(0), &mut s, &mut out);
        let round = p.election().map(|e| e.round()).unwrap_or(0);
        for sender in VOTERS.into_iter().filter(|x| *x != me) {
            let vote = Vote { leader, zxid: 0, epoch: 0 };
            let n = Notification { sender, state: PeerState::Looking, round, vote };
            p.on_notification(n, at(1), &mut s, &mut out);
        }
        p.tick(at(5000), &mut s, &mut out);
        (p, s, out)
    }

    fn packets(out: &[PeerAction]) -> Vec<QuorumPacket> {
        out.iter()
            .filter_map(|a| match a {
                PeerAction::Send { frame, .. } => QuorumPacket::decode(&frame[4..]).ok(),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_leader_syncs_only_once_its_new_epoch_is_durable_and_serves_only_once_its_current_epoch_is() {
        let (mut p, mut s, _) = decided(3, 3);
        assert!(matches!(p.role(), RoleView::Leading { serving: false, .. }));
        let (link, mut out) = (p.new_link(), Vec::new());
        let info = QuorumPacket::LearnerInfo { server: 1, accepted_epoch: 0, last_zxid: 0, observer: false };
        p.on_packet(link, info, at(10), &mut s, &mut out);
        assert!(packets(&out).is_empty(), "nothing goes to a learner before the epoch is durable");
        assert!(matches!(out[..], [PeerAction::PersistEpoch { file: EpochFile::Accepted, epoch: 1 }]));
        out.clear();
        p.on_epoch_persisted(EpochFile::Accepted, 1, at(11), &mut s, &mut out);
        let sent = packets(&out);
        assert!(matches!(sent[0], QuorumPacket::NewEpoch { epoch: 1, .. }));
        assert!(matches!(sent.last(), Some(QuorumPacket::NewLeader { zxid: 0 })));
        out.clear();
        p.on_packet(link, QuorumPacket::Ack { zxid: 0 }, at(12), &mut s, &mut out);
        assert!(matches!(out[..], [PeerAction::PersistEpoch { file: EpochFile::Current, epoch: 1 }]));
        assert_eq!(s.serving(), Serving::No, "no clients before currentEpoch is durable");
        out.clear();
        p.on_epoch_persisted(EpochFile::Current, 1, at(13), &mut s, &mut out);
        assert_eq!(s.serving(), Serving::Leader { epoch: 1 });
        assert!(out.iter().any(|a| matches!(a, PeerAction::Leading { epoch: 1 })));
        assert!(packets(&out).iter().any(|x| matches!(x, QuorumPacket::UpToDate)));
    }

    #[test]
    fn a_leader_whose_acking_follower_left_while_its_epoch_was_written_does_not_serve() {
        let (mut p, mut s, _) = decided(3, 3);
        let (link, mut out) = (p.new_link(), Vec::new());
        let info = QuorumPacket::LearnerInfo { server: 1, accepted_epoch: 0, last_zxid: 0, observer: false };
        p.on_packet(link, info, at(10), &mut s, &mut out);
        p.on_epoch_persisted(EpochFile::Accepted, 1, at(11), &mut s, &mut out);
        p.on_packet(link, QuorumPacket::Ack { zxid: 0 }, at(12), &mut s, &mut out);
        // The follower's link ends (it crashed after acking) before currentEpoch is durable.
        p.on_link_closed(link, at(13), &mut out);
        p.on_epoch_persisted(EpochFile::Current, 1, at(14), &mut s, &mut out);
        assert_eq!(s.serving(), Serving::No, "served without a quorum behind it");
        assert!(matches!(p.role(), RoleView::Leading { serving: false, .. }));
    }

    #[test]
    fn a_serving_leader_that_loses_its_quorums_last_link_steps_down_at_once() {
        let (mut p, mut s, _) = decided(3, 3);
        let (link, mut out) = (p.new_link(), Vec::new());
        let info = QuorumPacket::LearnerInfo { server: 1, accepted_epoch: 0, last_zxid: 0, observer: false };
        p.on_packet(link, info, at(10), &mut s, &mut out);
        p.on_epoch_persisted(EpochFile::Accepted, 1, at(11), &mut s, &mut out);
        p.on_packet(link, QuorumPacket::Ack { zxid: 0 }, at(12), &mut s, &mut out);
        p.on_epoch_persisted(EpochFile::Current, 1, at(13), &mut s, &mut out);
        assert_eq!(s.serving(), Serving::Leader { epoch: 1 });
        out.clear();
        p.on_link_closed(link, at(14), &mut out);
        assert_eq!(p.role(), RoleView::Reloading, "kept leading without a quorum");
        assert!(matches!(out.last(), Some(PeerAction::Reload { .. })));
    }

    /// A follower linked to leader 3 that took NEWEPOCH 1.
    fn following() -> (QuorumPeer, Server, LinkId) {
        let (mut p, mut s, out) = decided(1, 3);
        let Some(&PeerAction::Connect { link, leader: 3 }) =
            out.iter().find(|a| matches!(a, PeerAction::Connect { .. }))
        else {
            panic!("no connect to the leader: {out:?}");
        };
        let mut out = Vec::new();
        p.on_link_opened(link, &s, &mut out);
        assert!(matches!(packets(&out)[..], [QuorumPacket::LearnerInfo { server: 1, .. }]));
        p.on_packet(link, QuorumPacket::NewEpoch { epoch: 1, secret: 9 }, at(20), &mut s, &mut out);
        (p, s, link)
    }

    #[test]
    fn a_follower_that_lost_its_leader_answers_no_votes_until_it_looks_again() {
        let (mut p, mut s, link) = following();
        let mut out = Vec::new();
        p.on_link_closed(link, at(30), &mut out);
        assert!(matches!(out.last(), Some(PeerAction::Reload { change: DiskChange::None, .. })));
        // The old leader restarted and looks: an answer naming it as followed would let it lead
        // without this server's history.
        let vote = Vote { leader: 3, zxid: 0, epoch: 0 };
        let n = Notification { sender: 3, state: PeerState::Looking, round: 1, vote };
        out.clear();
        p.on_notification(n, at(31), &mut s, &mut out);
        assert!(out.is_empty(), "answered while its role was ending: {out:?}");
        p.on_reloaded(at(32), &mut s, &mut out);
        assert_eq!(p.role(), RoleView::Looking);
        out.clear();
        p.on_notification(n, at(33), &mut s, &mut out);
        assert!(!out.is_empty(), "a looking server answers");
    }

    #[test]
    fn packets_arriving_while_a_trunc_reloads_are_taken_in_order_afterwards() {
        let (mut p, mut s, link) = following();
        let mut out = Vec::new();
        p.on_packet(link, QuorumPacket::Trunc { zxid: 0 }, at(30), &mut s, &mut out);
        assert!(matches!(out.last(), Some(PeerAction::Reload { change: DiskChange::Trunc(0), .. })));
        out.clear();
        p.on_packet(link, QuorumPacket::NewLeader { zxid: 0 }, at(31), &mut s, &mut out);
        assert!(out.is_empty() && p.role() == RoleView::Reloading);
        p.on_reloaded(at(32), &mut s, &mut out);
        assert!(matches!(p.role(), RoleView::Following { leader: 3, .. }));
        // NEWLEADER, taken after the reload, makes the leader's epoch current before any ack.
        assert!(out.iter().any(|a| matches!(a, PeerAction::PersistEpoch { file: EpochFile::Current, epoch: 1 })));
        assert!(packets(&out).is_empty(), "no ack before the epochs are durable");
        out.clear();
        p.on_epoch_persisted(EpochFile::Accepted, 1, at(33), &mut s, &mut out);
        p.on_epoch_persisted(EpochFile::Current, 1, at(34), &mut s, &mut out);
        assert!(matches!(packets(&out)[..], [QuorumPacket::Ack { zxid: 0 }]));
    }
}
