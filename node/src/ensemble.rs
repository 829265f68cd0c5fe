//! The ensemble's runtime on core 0: it feeds the sans-I/O [`QuorumPeer`] (in `peer`) the
//! election port, the quorum links, the log's progress, epoch files, reloads and its ticks,
//! and carries out the actions it returns. Every protocol decision is the peer's, so the
//! simulator in `paddock-tests`, which drives the same peer, tests what runs here.
//!
//! A server starts LOOKING. Decided, it leads or follows; when that role ends it drops every
//! client connection, reloads its tree (so no txn applied but never committed survives, as
//! ZooKeeper clears its database) and looks again. Learners apply only committed txns; a leader
//! applies at once (that is its view for preparing writes) and releases frames only once a
//! quorum has the txns durable.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use engine::{Txn, TxnHeader};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::task::JoinHandle;

use crate::config::Config;
use crate::election::{ElectionAction, ServerId};
use crate::outbox::Outbox;
use crate::peer::{self, Clock, DiskChange, EpochFile, LinkId, PeerAction, PeerConfig, QuorumPeer};
use crate::persist::Dirs;
use crate::quorum::{self, QuorumPacket};
use crate::runtime::{wall_ms, write_loop, Out};
use crate::server::{Action, Server, Serving};
use crate::tree_core::{fatal, log_task, open_wal, TreeCore};

/// Frames queued for one learner beyond which it is dropped and must resync.
const LEARNER_QUEUE_MAX_FRAMES: usize = 100_000;

/// Why the ensemble cannot start.
#[derive(Debug, thiserror::Error)]
pub enum EnsembleError {
    #[error("{0}")]
    Config(String),
    #[error("cannot read or write {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// An open quorum link: its writer's queue and its socket (to shut it down on `Close`).
struct LinkIo {
    out: Rc<Outbox<Out>>,
    /// Valid while the entry exists: the reader removes it before its half of the socket drops.
    fd: i32,
}

/// The ensemble's fixed facts and the runtime's side of the peer's links, files and reloads.
pub(crate) struct Ensemble {
    me: ServerId,
    peer_config: PeerConfig,
    quorum_addrs: BTreeMap<ServerId, SocketAddr>,
    election_addrs: BTreeMap<ServerId, SocketAddr>,
    config: Rc<Config>,
    dirs: Dirs,
    /// The epochs on disk at start-up.
    epochs: (u64, u64),
    election_out: BTreeMap<ServerId, Rc<Outbox<Vec<u8>>>>,
    links: RefCell<BTreeMap<LinkId, LinkIo>>,
    /// Wakes the ticker early when an event shortened the peer's tick interval.
    tick_wake: Outbox<()>,
    /// Actions that wait on I/O (connects, files, reloads), carried out in order by `peer_main`.
    deferred: Outbox<PeerAction>,
    log_handle: RefCell<Option<JoinHandle<engine::wal::Wal>>>,
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
        let peer_config = PeerConfig {
            me,
            observer,
            voters,
            tick_ms,
            init_limit: u64::from(config.init_limit.max(1)),
            sync_limit: u64::from(config.sync_limit.max(1)),
            heartbeat_ms: config.quorum_heartbeat_ms.unwrap_or((tick_ms / 4).max(5)),
            window_txns: config.sync_window_txns,
            read_only_mode: config.read_only_mode,
            observe_commits: false,
            plant_commit_on_minority: false,
        };
        let epochs = (
            read_epoch(&dirs.snapshots, EpochFile::Accepted.file_name())?,
            read_epoch(&dirs.snapshots, EpochFile::Current.file_name())?,
        );
        Ok(Some(Ensemble {
            me,
            peer_config,
            quorum_addrs,
            election_addrs,
            config,
            dirs: dirs.clone(),
            epochs,
            election_out,
            links: RefCell::new(BTreeMap::new()),
            tick_wake: Outbox::default(),
            deferred: Outbox::default(),
            log_handle: RefCell::new(None),
        }))
    }

    /// This server's id.
    pub(crate) fn me(&self) -> ServerId {
        self.me
    }

    /// The protocol state machine this server starts with, its log durable to `durable_zxid`.
    pub(crate) fn peer(&self, durable_zxid: i64) -> QuorumPeer {
        QuorumPeer::new(self.peer_config.clone(), self.epochs.0, self.epochs.1, durable_zxid)
    }

    /// The other members.
    pub(crate) fn peers(&self) -> Vec<ServerId> {
        self.election_out.keys().copied().collect()
    }

    /// The addresses this server listens on: (quorum, election).
    pub(crate) fn own_addrs(&self) -> (SocketAddr, SocketAddr) {
        (self.quorum_addrs[&self.me], self.election_addrs[&self.me])
    }

    pub(crate) fn set_log_handle(&self, h: JoinHandle<engine::wal::Wal>) {
        *self.log_handle.borrow_mut() = Some(h);
    }

    fn send_election(&self, action: ElectionAction) {
        match action {
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
            ElectionAction::Decided { .. } => {}
        }
    }

    fn send_link(&self, link: LinkId, frame: Vec<u8>) {
        let links = self.links.borrow();
        let Some(io) = links.get(&link) else { return };
        if io.out.len() > LEARNER_QUEUE_MAX_FRAMES {
            // Too far behind to catch up from the stream: drop it; it resyncs on return.
            tracing::warn!(link, queued = io.out.len(), "quorum link too far behind; dropping it");
            shut(io);
            return;
        }
        io.out.push(Out::Bytes(frame));
    }

    fn close_link(&self, link: LinkId) {
        if let Some(io) = self.links.borrow().get(&link) {
            shut(io);
        }
    }
}

/// Ends a link at once, both ways, so its reader ends even if the peer went silent.
fn shut(io: &LinkIo) {
    io.out.close();
    // SAFETY: the entry exists, so the socket that owns fd is still open (see `LinkIo::fd`).
    unsafe { libc::shutdown(io.fd, libc::SHUT_RDWR) };
}

impl TreeCore {
    /// What srvr, mntr and status show of the ensemble; None standalone.
    pub(crate) fn ensemble_info(&self) -> Option<peer::EnsembleInfo> {
        let mut info = self.peer.as_ref()?.info(&self.server);
        info.last_logged_zxid = self.durable_zxid.max(self.server.tree().last_zxid());
        Some(info)
    }

    /// Feeds the peer one event and carries out what it asks; nothing standalone.
    pub(crate) fn peer_event(&mut self, event: impl FnOnce(&mut QuorumPeer, &mut Server, Clock, &mut Vec<PeerAction>)) {
        let clock = Clock { now_ms: self.now_ms(), wall_ms: wall_ms() };
        let Some(peer) = self.peer.as_mut() else { return };
        let interval_ms = peer.tick_interval_ms();
        let mut actions = Vec::new();
        event(peer, &mut self.server, clock, &mut actions);
        if peer.tick_interval_ms() < interval_ms {
            if let Some(ens) = &self.ensemble {
                ens.tick_wake.push(());
            }
        }
        self.perform(actions);
    }

    fn perform(&mut self, actions: Vec<PeerAction>) {
        let Some(ens) = self.ensemble.clone() else { return };
        for a in actions {
            match a {
                PeerAction::Election(e) => ens.send_election(e),
                PeerAction::Send { link, frame } => ens.send_link(link, frame),
                PeerAction::Close { link } => ens.close_link(link),
                PeerAction::Route(actions) => self.route(actions, None),
                PeerAction::Release { zxid } => self.release(zxid),
                PeerAction::SendNow(actions) => self.send_now(actions),
                PeerAction::LogPending => self.log_signal.push(()),
                PeerAction::Leading { .. } | PeerAction::Committed { .. } => {}
                deferred @ (PeerAction::Connect { .. }
                | PeerAction::PersistEpoch { .. }
                | PeerAction::StoreSecret { .. }
                | PeerAction::Reload { .. }) => ens.deferred.push(deferred),
            }
        }
    }
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

/// The peer's life: started, then told the time every few ms, while its I/O waits are carried
/// out in order.
pub(crate) async fn peer_main(tree: Rc<RefCell<TreeCore>>, ens: Rc<Ensemble>) {
    tree.borrow_mut().peer_event(|p, s, c, out| p.start(c, s, out));
    let (ticker, ticker_ens) = (tree.clone(), ens.clone());
    glommio::spawn_local(async move {
        let mut wake = Vec::new();
        loop {
            let ms = ticker.borrow().peer.as_ref().map_or(peer::BUSY_TICK_MS, QuorumPeer::tick_interval_ms);
            // Serving, the peer needs the time once a heartbeat, not 200 times a second.
            futures_lite::future::or(
                async {
                    ticker_ens.tick_wake.drain(&mut wake).await;
                },
                glommio::timer::sleep(Duration::from_millis(ms)),
            )
            .await;
            wake.clear();
            ticker.borrow_mut().peer_event(|p, s, c, out| p.tick(c, s, out));
        }
    })
    .detach();
    let mut batch = Vec::new();
    while ens.deferred.drain(&mut batch).await {
        for action in std::mem::take(&mut batch) {
            match action {
                PeerAction::Connect { link, leader } => {
                    glommio::spawn_local(connect_link(tree.clone(), ens.clone(), link, leader)).detach();
                }
                PeerAction::StoreSecret { secret } => {
                    store(&ens.dirs, "secret", format!("{secret:016x}\n")).await;
                }
                PeerAction::PersistEpoch { file, epoch } => {
                    store(&ens.dirs, file.file_name(), format!("{epoch}\n")).await;
                    tree.borrow_mut().peer_event(|p, s, c, out| p.on_epoch_persisted(file, epoch, c, s, out));
                }
                PeerAction::Reload { change, logged } => {
                    reload(&tree, &ens, change, logged).await;
                    tree.borrow_mut().peer_event(|p, s, c, out| p.on_reloaded(c, s, out));
                }
                _ => {}
            }
        }
    }
}

/// Writes one of the ensemble's small files durably, or stops the process.
async fn store(dirs: &Dirs, name: &'static str, text: String) {
    let dir = dirs.snapshots.clone();
    let r = glommio::executor().spawn_blocking(move || write_durably(&dir, name, text.as_bytes())).await;
    if let Err(e) = r {
        fatal(&format!("cannot write {name}"), e);
    }
}

/// Stops serving and lets the log write what it still holds. With a disk change (a learner's
/// TRUNC or SNAP) the tree is then read back from disk; without one, the tree in memory plus a
/// learner's logged, uncommitted proposals is exactly what the disk holds, so it is kept (as
/// ZooKeeper keeps its database across elections) instead of replaying up to snapCount txns.
/// Either way sessions and connections start afresh, serving nobody.
async fn reload(
    tree: &Rc<RefCell<TreeCore>>,
    ens: &Rc<Ensemble>,
    change: DiskChange,
    logged: VecDeque<(TxnHeader, Txn)>,
) {
    {
        let mut t = tree.borrow_mut();
        let conns = t.server.all_connections();
        t.server.set_serving(Serving::No);
        let closes = peer::closes_of_role(conns, t.held.drain(..).map(|(_, actions, _)| actions));
        t.send_now(closes);
    }
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
        DiskChange::None => (peer::tree_after_role(&mut tree.borrow_mut().server, &logged), tail),
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
        let mut server = Server::with_tree(settings, data, now, wall_ms());
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

/// Opens the link the peer asked for; a refused or timed-out connect is reported closed.
async fn connect_link(tree: Rc<RefCell<TreeCore>>, ens: Rc<Ensemble>, link: LinkId, leader: ServerId) {
    let stream = match ens.quorum_addrs.get(&leader) {
        Some(addr) => TcpStream::connect_timeout(*addr, Duration::from_millis(200)).await.ok(),
        None => None,
    };
    match stream {
        Some(stream) => run_link(tree, ens, link, stream, None).await,
        None => tree.borrow_mut().peer_event(|p, _, c, out| p.on_link_closed(link, c, out)),
    }
}

/// Carries one quorum link: a writer task drains its queue, and every packet read goes to the
/// peer until the link fails or the peer closes it. `first`: the packet an accepted link opened
/// with; None for a link this server opened (the peer then says who it is).
async fn run_link(
    tree: Rc<RefCell<TreeCore>>,
    ens: Rc<Ensemble>,
    link: LinkId,
    stream: TcpStream,
    first: Option<QuorumPacket>,
) {
    let _ = stream.set_nodelay(true);
    let fd = stream.as_raw_fd();
    let (mut reader, writer) = futures_lite::io::split(stream);
    let out: Rc<Outbox<Out>> = Rc::new(Outbox::default());
    ens.links.borrow_mut().insert(link, LinkIo { out: out.clone(), fd });
    let writer_task = glommio::spawn_local(write_loop(writer, out.clone(), fd)).detach();
    match first {
        None => tree.borrow_mut().peer_event(|p, s, _, o| p.on_link_opened(link, s, o)),
        Some(packet) => tree.borrow_mut().peer_event(|p, s, c, o| p.on_packet(link, packet, c, s, o)),
    }
    // No timer here: the peer watches each link's silence and closes it (`Close`).
    loop {
        match next_packet(&mut reader).await {
            Ok(packet) => tree.borrow_mut().peer_event(|p, s, c, o| p.on_packet(link, packet, c, s, o)),
            Err(e) => {
                tracing::debug!(link, error = %e, "quorum link ends");
                break;
            }
        }
    }
    ens.links.borrow_mut().remove(&link);
    out.close();
    tree.borrow_mut().peer_event(|p, _, c, o| p.on_link_closed(link, c, o));
    let _ = writer_task.await;
}

/// Election port: every notification read goes to the election.
pub(crate) async fn election_listener(tree: Rc<RefCell<TreeCore>>, listener_fd: i32) {
    accept_each(listener_fd, |mut stream| {
        let tree = tree.clone();
        async move {
            while let Ok(frame) = read_frame(&mut stream, quorum::NOTIFICATION_MAX_BYTES).await {
                match quorum::decode_notification(&frame) {
                    Ok(n) => tree.borrow_mut().peer_event(|p, s, c, out| p.on_notification(n, c, s, out)),
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

/// Quorum port: learners connect here; whoever leads keeps them, others refuse them.
pub(crate) async fn quorum_listener(tree: Rc<RefCell<TreeCore>>, ens: Rc<Ensemble>, listener_fd: i32) {
    accept_each(listener_fd, |mut stream| {
        let (tree, ens) = (tree.clone(), ens.clone());
        async move {
            // A link names itself within initLimit or is dropped before the peer hears of it.
            let init_ms = ens.peer_config.init_limit * ens.peer_config.tick_ms;
            let Ok(first) = read_packet(&mut stream, init_ms).await else { return };
            let Some(link) = tree.borrow_mut().peer.as_mut().map(QuorumPeer::new_link) else { return };
            run_link(tree, ens, link, stream, Some(first)).await
        }
    })
    .await
}
