//! The thread-per-core runtime: one glommio executor per core, one acceptor, the protocol core
//! on core 0, and connections spread over every core.
//!
//! Core 0 owns the tree, the sessions and the watches (`Server`). Every core owns the sockets of
//! its connections: it reads and frames requests, decodes them, and sends them to core 0 over a
//! bounded shared channel; core 0 answers with whole frames that the owning core writes. One
//! channel per core and direction keeps each connection's requests and replies in order.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::poll_fn;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::shared_channel::{self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender};
use glommio::net::{AcceptedTcpStream, TcpListener, TcpStream};
use glommio::{LocalExecutorBuilder, Placement};

use crate::config::Config;
use crate::ensemble::{election_listener, election_sender, peer_main, quorum_listener, Ensemble};
use crate::fourlw;
use crate::http;
use crate::outbox::Outbox;
use crate::persist::{load_or_create_secret, remove_partial_snapshots, Dirs};
use crate::proto::{ConnectRequest, DecodeError, Packet, Reader, ReplyHeader, Writer};
use crate::server::Serving;
use crate::server::{Action, ConnId, Server, ServerSettings};
use crate::tree_core::{fatal, log_task, open_wal, purge_task, TreeCore};

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot start executor for core {core}: {why}")]
    Executor { core: usize, why: String },
    #[error("cannot prepare the data directories: {0}")]
    Storage(std::io::Error),
    #[error(transparent)]
    Recovery(#[from] engine::recovery::RecoveryError),
}

/// Messages from a connection's core to core 0.
pub(crate) enum ToTree {
    Connect {
        conn: ConnId,
        remote: SocketAddr,
        req: ConnectRequest,
    },
    /// `received` is when its frame was read: latency counts from there, as ZooKeeper's does.
    Request {
        conn: ConnId,
        packet: Packet,
        received: Instant,
    },
    FourLetter {
        conn: ConnId,
        cmd: &'static str,
    },
    Closed {
        conn: ConnId,
        remote: IpAddr,
    },
}

/// Messages from core 0 to a connection's core.
pub(crate) enum FromTree {
    Actions(Vec<Action>),
    Accepted { stream: AcceptedTcpStream, conn: ConnId, remote: SocketAddr },
}

/// What a connection's writer is given (client connections and links between servers alike).
pub(crate) enum Out {
    Bytes(Vec<u8>),
    Close,
}

/// Bound of each cross-core channel, in messages.
const CHANNEL_CAPACITY: usize = 4096;
/// Registered-buffer memory per executor: the log does not use it yet, so keep it small and
/// inside the default `ulimit -l`.
const IO_MEMORY_BYTES: usize = 1 << 20;
/// Bytes read from a socket at once, at most; also the buffer capacity a connection keeps
/// between frames (reading and writing) once a larger frame or batch has passed.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Bytes a connection reads at once until a read fills that: an idle connection then holds
/// 4 KiB instead of 64 KiB (2,000 idle connections measured 192 KiB each with every buffer at
/// 64 KiB, as the allocator backs them with huge pages), and a busy one grows to
/// [`READ_CHUNK_BYTES`] after a few full reads.
const READ_CHUNK_BYTES_MIN: usize = 4 * 1024;
/// Requests a client connection may have read and not yet answered on its socket. At the bound
/// its reader stops taking requests until replies go out, so a client that pipelines without
/// reading its replies (or reads them slower than it sends) makes the server hold this many
/// replies, not one per request it manages to send (measured before the bound: about 140 bytes
/// per unread reply, 283 MiB for 2,000,000 exists). ZooKeeper's globalOutstandingLimit has the
/// same default, for all connections together, and does not count replies queued unsent.
const UNANSWERED_MAX: u64 = 1000;

pub(crate) fn wall_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Per-core state every core has.
pub(crate) struct Local {
    core: u32,
    conns: RefCell<HashMap<u64, Rc<Outbox<Out>>>>,
    to_tree: ToTreeLink,
    config: Rc<Config>,
}

/// How a core reaches core 0: a direct call on core 0 itself, a channel elsewhere.
enum ToTreeLink {
    Here(Rc<RefCell<TreeCore>>),
    Channel(ConnectedSender<ToTree>),
}

impl Local {
    async fn to_tree(&self, msg: ToTree) {
        match &self.to_tree {
            ToTreeLink::Here(tree) => tree.borrow_mut().handle(msg),
            ToTreeLink::Channel(tx) => {
                // The receiver only stops when the whole server stops.
                let _ = tx.send(msg).await;
            }
        }
    }

    pub(crate) fn deliver(&self, actions: Vec<Action>) {
        let conns = self.conns.borrow();
        for a in actions {
            match a {
                Action::Send { conn, frame } => {
                    if let Some(o) = conns.get(&conn.id) {
                        o.push(Out::Bytes(frame));
                    }
                }
                Action::Close { conn } => {
                    if let Some(o) = conns.get(&conn.id) {
                        o.push(Out::Close);
                    }
                }
                // Core 0 sends these to the leader before frames reach a connection's core.
                Action::Forward(_) => {}
            }
        }
    }
}

/// Binds the client port without SO_REUSEPORT, so a port in use is an error, not a silent share.
pub(crate) fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, RuntimeError> {
    let err = |source| RuntimeError::Bind { addr, source };
    let domain = if addr.is_ipv4() { socket2::Domain::IPV4 } else { socket2::Domain::IPV6 };
    let s = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP)).map_err(err)?;
    s.set_reuse_address(true).map_err(err)?;
    s.bind(&addr.into()).map_err(err)?;
    s.listen(1024).map_err(err)?;
    s.set_nonblocking(true).map_err(err)?;
    Ok(s.into())
}

/// How long start-up waits for a port held by a process that just died.
const BIND_RETRY: Duration = Duration::from_secs(3);

/// Binds, waiting up to [`BIND_RETRY`] while the port is in use: after a crash the kernel
/// releases the dead process's listening socket only once its io_uring (holding an accept) is
/// torn down, a moment after the process is gone. A port that stays taken is still an error.
fn bind_retrying(addr: SocketAddr) -> Result<std::net::TcpListener, RuntimeError> {
    let deadline = Instant::now() + BIND_RETRY;
    loop {
        match bind(addr) {
            Err(RuntimeError::Bind { source, .. })
                if source.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// Runs the server on `cores` executors until the process ends.
pub fn run(config: Config, cores: usize) -> Result<(), RuntimeError> {
    let cores = cores.max(1);
    let ip = config.client_port_address.unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let addr = SocketAddr::new(ip, config.client_port);
    let listener = bind_retrying(addr)?;
    tracing::info!(%addr, cores, "paddock listening");
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let listener_fd = listener.into_raw_fd();
    let dirs = Dirs::create(&config).map_err(RuntimeError::Storage)?;
    remove_partial_snapshots(&dirs);
    let secret = load_or_create_secret(&dirs).map_err(RuntimeError::Storage)?;
    let started = Instant::now();
    let recovered = engine::recovery::recover(&dirs.snapshots, &dirs.log)?;
    tracing::info!(
        zxid = format!("{:#x}", recovered.tree.last_zxid()),
        znodes = recovered.tree.node_count(),
        sessions = recovered.tree.sessions().len(),
        replayed = recovered.replayed,
        ms = started.elapsed().as_millis() as u64,
        "recovered"
    );
    let mut recovered = Some(recovered);
    let config = Rc::new(config);
    let allowed = allowed_cpus();

    let mut to_tree_tx: Vec<Option<SharedSender<ToTree>>> = vec![None];
    let mut to_tree_rx: Vec<SharedReceiver<ToTree>> = Vec::new();
    let mut from_tree_tx: Vec<SharedSender<FromTree>> = Vec::new();
    let mut from_tree_rx: Vec<Option<SharedReceiver<FromTree>>> = vec![None];
    for _ in 1..cores {
        let (tx, rx) = shared_channel::new_bounded(CHANNEL_CAPACITY);
        to_tree_tx.push(Some(tx));
        to_tree_rx.push(rx);
        let (tx, rx) = shared_channel::new_bounded(CHANNEL_CAPACITY);
        from_tree_tx.push(tx);
        from_tree_rx.push(Some(rx));
    }

    let mut handles = Vec::new();
    for core in (0..cores).rev() {
        // Pin only when the server owns exactly the CPUs it may run on (one server per machine,
        // or one per `taskset` slice); several servers sharing CPUs would all pin to the first.
        let placement = if cores == allowed.len() { Placement::Fixed(allowed[core]) } else { Placement::Unbound };
        let builder =
            LocalExecutorBuilder::new(placement).name(&format!("paddock-core-{core}")).io_memory(IO_MEMORY_BYTES);
        let cfg = (*config).clone();
        let handle = if core == 0 {
            let rxs = std::mem::take(&mut to_tree_rx);
            let txs = std::mem::take(&mut from_tree_tx);
            let boot = Boot { recovered: recovered.take(), dirs: dirs.clone(), secret };
            builder.spawn(move || async move { core0_main(cfg, cores, listener_fd, rxs, txs, boot).await })
        } else {
            let tx = to_tree_tx[core].take();
            let rx = from_tree_rx[core].take();
            builder.spawn(move || async move {
                if let (Some(tx), Some(rx)) = (tx, rx) {
                    core_main(core as u32, cfg, tx, rx).await
                }
            })
        };
        handles.push(handle.map_err(|e| RuntimeError::Executor { core, why: e.to_string() })?);
    }
    for h in handles {
        let _ = h.join();
    }
    Ok(())
}

/// What core 0 starts from.
struct Boot {
    recovered: Option<engine::recovery::Recovered>,
    dirs: Dirs,
    secret: u64,
}

pub(crate) fn settings(config: &Config, secret: u64, server_id: u64) -> ServerSettings {
    ServerSettings {
        tick_ms: config.tick_time_ms,
        min_session_timeout_ms: config.min_session_timeout(),
        max_session_timeout_ms: config.max_session_timeout(),
        extended_types: config.extended_types,
        enforce_quota: config.enforce_quota,
        super_digest: config.super_digest.clone(),
        container_check_interval_ms: config.container_check_interval_ms,
        container_max_per_minute: config.container_max_per_minute,
        secret,
        server_id,
    }
}

async fn core0_main(
    config: Config,
    cores: usize,
    listener_fd: i32,
    to_tree_rx: Vec<SharedReceiver<ToTree>>,
    from_tree_tx: Vec<SharedSender<FromTree>>,
    boot: Boot,
) {
    let config = Rc::new(config);
    let Some(recovered) = boot.recovered else { return };
    let next_zxid = recovered.tree.last_zxid() + 1;
    let wal = open_wal(&config, &boot.dirs, recovered.log_tail, next_zxid).await;
    let ensemble = match Ensemble::from_config(config.clone(), &boot.dirs) {
        Ok(e) => e.map(Rc::new),
        Err(e) => fatal("cannot start as an ensemble member", e),
    };
    let server_id = ensemble.as_ref().map_or(0, |e| e.me());
    let mut server = Server::with_tree(settings(&config, boot.secret, server_id), recovered.tree, 0, wall_ms());
    if ensemble.is_some() {
        server.set_serving(Serving::No);
    }
    let tree = Rc::new(RefCell::new(TreeCore::new(server, config.clone(), cores)));
    if let Some(e) = &ensemble {
        let mut t = tree.borrow_mut();
        t.peer = Some(e.peer(t.durable_zxid));
        t.ensemble = Some(e.clone());
    }
    let local = Rc::new(Local {
        core: 0,
        conns: RefCell::new(HashMap::new()),
        to_tree: ToTreeLink::Here(tree.clone()),
        config: config.clone(),
    });
    tree.borrow_mut().local = Some(local.clone());
    let log = glommio::spawn_local(log_task(tree.clone(), wal, boot.dirs.clone())).detach();
    if let Some(ens) = &ensemble {
        ens.set_log_handle(log);
        start_ensemble(&tree, ens);
    }
    if config.admin_enable_server {
        match format!("{}:{}", config.admin_server_address, config.admin_server_port).parse() {
            Ok(addr) => {
                glommio::spawn_local(http::serve("AdminServer", addr, tree.clone(), http::admin)).detach();
            }
            Err(_) => {
                tracing::warn!(address = %config.admin_server_address, "admin.serverAddress is not an IP address; AdminServer not started")
            }
        }
    }
    if config.metrics_provider_class.as_deref().is_some_and(|c| c.ends_with("PrometheusMetricsProvider")) {
        let addr = SocketAddr::new(IpAddr::from([0, 0, 0, 0]), config.metrics_http_port);
        glommio::spawn_local(http::serve("Prometheus metrics", addr, tree.clone(), http::metrics)).detach();
    }
    glommio::spawn_local(purge_task(
        boot.dirs.clone(),
        config.autopurge_purge_interval_hours,
        config.autopurge_snap_retain_count,
    ))
    .detach();

    // Senders to every other core: each drains its outbox into the channel in batches.
    for (i, tx) in from_tree_tx.into_iter().enumerate() {
        let core = i + 1;
        let outbox = tree.borrow().remote[core].clone();
        glommio::spawn_local(async move {
            let tx: ConnectedSender<FromTree> = tx.connect().await;
            let Some(outbox) = outbox else { return };
            let mut batch = Vec::new();
            while outbox.drain(&mut batch).await {
                for msg in batch.drain(..) {
                    if tx.send(msg).await.is_err() {
                        return;
                    }
                }
            }
        })
        .detach();
    }
    // Receivers from every other core.
    for rx in to_tree_rx {
        let tree = tree.clone();
        glommio::spawn_local(async move {
            let rx: ConnectedReceiver<ToTree> = rx.connect().await;
            while let Some(msg) = rx.recv().await {
                tree.borrow_mut().handle(msg);
            }
        })
        .detach();
    }
    // Session expiry and the container check run on ticks finer than tickTime, so a bucket
    // expires within a fraction of a tick after its time.
    let period = Duration::from_millis((config.tick_time_ms / 4).clamp(5, 500));
    {
        let tree = tree.clone();
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(period).await;
                tree.borrow_mut().tick();
            }
        })
        .detach();
    }

    // SAFETY: the fd is a bound, listening, non-blocking socket that nothing else owns.
    let listener = unsafe { TcpListener::from_raw_fd(listener_fd) };
    loop {
        let stream = match listener.shared_accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let remote = match stream.peer_addr() {
            Ok(a) => a,
            Err(_) => continue,
        };
        let admitted = tree.borrow_mut().admit(remote.ip());
        let Some(conn) = admitted else {
            drop(stream.bind_to_executor());
            continue;
        };
        if conn.core == 0 {
            glommio::spawn_local(serve(stream.bind_to_executor(), conn, remote, local.clone())).detach();
        } else {
            let t = tree.borrow();
            if let Some(Some(o)) = t.remote.get(conn.core as usize) {
                o.push(FromTree::Accepted { stream, conn, remote });
            }
        }
    }
}

/// Binds the quorum and election ports and starts the ensemble's tasks on a queue of their own
/// with a large share of core 0, so heartbeats and votes get their turn beside bulk work.
fn start_ensemble(tree: &Rc<RefCell<TreeCore>>, ens: &Rc<Ensemble>) {
    let (quorum_addr, election_addr) = ens.own_addrs();
    let bind_any = |a: SocketAddr| SocketAddr::new(IpAddr::from([0, 0, 0, 0]), a.port());
    let quorum = bind_retrying(bind_any(quorum_addr)).unwrap_or_else(|e| fatal("cannot listen on the quorum port", e));
    let election =
        bind_retrying(bind_any(election_addr)).unwrap_or_else(|e| fatal("cannot listen on the election port", e));
    tracing::info!(myid = ens.me(), %quorum_addr, %election_addr, "ensemble member");
    let queue =
        glommio::executor().create_task_queue(glommio::Shares::Static(1000), glommio::Latency::NotImportant, "quorum");
    let spawn = |f: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>| match glommio::spawn_local_into(f, queue)
    {
        Ok(t) => t.detach(),
        Err(e) => fatal("cannot start the ensemble's tasks", e),
    };
    spawn(Box::pin(election_listener(tree.clone(), election.into_raw_fd())));
    for peer in ens.peers() {
        spawn(Box::pin(election_sender(ens.clone(), peer)));
    }
    spawn(Box::pin(quorum_listener(tree.clone(), ens.clone(), quorum.into_raw_fd())));
    spawn(Box::pin(peer_main(tree.clone(), ens.clone())));
}

async fn core_main(core: u32, config: Config, to_tree: SharedSender<ToTree>, from_tree: SharedReceiver<FromTree>) {
    let (to_tree, from_tree) = (to_tree.connect().await, from_tree.connect().await);
    let local = Rc::new(Local {
        core,
        conns: RefCell::new(HashMap::new()),
        to_tree: ToTreeLink::Channel(to_tree),
        config: Rc::new(config),
    });
    while let Some(msg) = from_tree.recv().await {
        match msg {
            FromTree::Actions(actions) => local.deliver(actions),
            FromTree::Accepted { stream, conn, remote } => {
                glommio::spawn_local(serve(stream.bind_to_executor(), conn, remote, local.clone())).detach();
            }
        }
    }
}

/// One client connection: a reader (this task) and a writer task, which share the socket.
async fn serve(stream: TcpStream, conn: ConnId, remote: SocketAddr, local: Rc<Local>) {
    debug_assert_eq!(conn.core, local.core);
    let _ = stream.set_nodelay(true);
    let fd = stream.as_raw_fd();
    let (mut reader, writer) = futures_lite::io::split(stream);
    let outbox: Rc<Outbox<Out>> = Rc::new(Outbox::default());
    let backlog = Rc::new(Backlog::default());
    local.conns.borrow_mut().insert(conn.id, outbox.clone());
    let writer_task = glommio::spawn_local(write_frames(writer, outbox.clone(), fd, Some(backlog.clone())));
    match read_loop(&mut reader, conn, remote, &local, &outbox, &backlog).await {
        // The answer may still be on its way from core 0 (clients such as zktop half-close
        // right after the command): the connection stays registered until it is written.
        Ok(ReadEnd::AwaitingAnswer) => {
            writer_task.await;
            local.conns.borrow_mut().remove(&conn.id);
        }
        end => {
            if let Err(why) = end {
                tracing::debug!(?conn, %remote, why, "closing connection");
            }
            local.conns.borrow_mut().remove(&conn.id);
            outbox.close();
            writer_task.await;
        }
    }
    local.to_tree(ToTree::Closed { conn, remote: remote.ip() }).await;
}

/// A client connection's requests read and not yet answered on its socket: its reader counts
/// requests in and waits at [`UNANSWERED_MAX`], its writer counts replies out and wakes it.
#[derive(Default)]
struct Backlog {
    unanswered: Cell<u64>,
    reader: Cell<Option<Waker>>,
}

impl Backlog {
    /// A request (or the handshake) went to core 0: one more reply is owed.
    fn asked(&self) {
        self.unanswered.set(self.unanswered.get() + 1);
    }

    /// `n` replies were written (0: the writer ended); wakes a reader waiting for room.
    fn answered(&self, n: u64) {
        self.unanswered.set(self.unanswered.get().saturating_sub(n));
        if let Some(w) = self.reader.take() {
            w.wake();
        }
    }

    /// Waits until the connection may take another request; false once its writer has ended.
    async fn room(&self, outbox: &Outbox<Out>) -> bool {
        poll_fn(|cx| {
            if outbox.is_closed() {
                Poll::Ready(false)
            } else if self.unanswered.get() < UNANSWERED_MAX {
                Poll::Ready(true)
            } else {
                self.reader.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }
}

/// Whether a frame is a reply to a request: every frame but a watch event (xid -1) answers one.
fn is_reply(frame: &[u8]) -> bool {
    frame.len() >= 8 && frame[4..8] != crate::proto::xid::NOTIFICATION.to_be_bytes()
}

/// Writes an outbox to a socket until an `Out::Close`, a closed outbox or a failed write; then
/// shuts the socket down both ways, so its reader ends too, and closes the outbox.
pub(crate) async fn write_loop(writer: futures_lite::io::WriteHalf<TcpStream>, outbox: Rc<Outbox<Out>>, fd: i32) {
    write_frames(writer, outbox, fd, None).await
}

/// [`write_loop`], counting the replies written into a client connection's [`Backlog`].
async fn write_frames(
    mut writer: futures_lite::io::WriteHalf<TcpStream>,
    outbox: Rc<Outbox<Out>>,
    fd: i32,
    backlog: Option<Rc<Backlog>>,
) {
    let mut batch = Vec::new();
    let mut bytes = Vec::new();
    while outbox.drain(&mut batch).await {
        let mut close = false;
        let mut replies = 0;
        for o in batch.drain(..) {
            match o {
                Out::Bytes(b) => {
                    replies += u64::from(is_reply(&b));
                    bytes.extend_from_slice(&b);
                }
                Out::Close => {
                    close = true;
                    break;
                }
            }
        }
        if !bytes.is_empty() && writer.write_all(&bytes).await.is_err() {
            close = true;
        } else if let Some(b) = &backlog {
            b.answered(replies);
        }
        bytes.clear();
        // A large reply (a 1 MiB getData) must not stay reserved for the connection's life.
        bytes.shrink_to(READ_CHUNK_BYTES);
        if close {
            break;
        }
    }
    outbox.close();
    if let Some(b) = &backlog {
        b.answered(0);
    }
    let _ = writer.flush().await;
    // Both directions: the reader must see the end too, even if the peer never closes.
    // SAFETY: fd belongs to the stream that the reader still holds open.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
}

/// How a connection's reading ended.
enum ReadEnd {
    /// The client closed it.
    Closed,
    /// A four-letter word was read; its answer and a Close are queued or on their way.
    AwaitingAnswer,
}

async fn read_loop(
    reader: &mut futures_lite::io::ReadHalf<TcpStream>,
    conn: ConnId,
    remote: SocketAddr,
    local: &Local,
    outbox: &Outbox<Out>,
    backlog: &Backlog,
) -> Result<ReadEnd, &'static str> {
    let max_frame = local.config.jute_max_buffer_bytes;
    let sessionless_timeout = Duration::from_millis(local.config.sessionless_cnxn_timeout_ms);
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK_BYTES_MIN];
    let mut handshaken = false;
    loop {
        let read = reader.read(&mut chunk);
        let n = if handshaken {
            read.await.map_err(|_| "read error")?
        } else {
            // NIOServerCnxnFactory's sessionless connection timeout: without a session, a
            // connection silent this long is closed; each read restarts the wait, as ZooKeeper
            // touches a connection on every I/O, so a slow but live handshake still completes.
            let silence = async {
                glommio::timer::sleep(sessionless_timeout).await;
                Err(std::io::Error::from(std::io::ErrorKind::TimedOut))
            };
            match futures_lite::future::or(read, silence).await {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return Err("no handshake in time"),
                Err(_) => return Err("read error"),
            }
        };
        if n == 0 {
            return Ok(ReadEnd::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
        if n == chunk.len() && chunk.len() < READ_CHUNK_BYTES {
            chunk.resize(chunk.len() * 2, 0);
        }
        let mut at = 0;
        while buf.len() - at >= 4 {
            let head = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
            if !handshaken {
                if let Some(cmd) = fourlw::parse(head) {
                    if cmd == "ruok" && local.config.four_letter_allowed(cmd) {
                        outbox.push(Out::Bytes(b"imok".to_vec()));
                        outbox.push(Out::Close);
                    } else if local.config.four_letter_allowed(cmd) {
                        local.to_tree(ToTree::FourLetter { conn, cmd }).await;
                    } else {
                        let text = fourlw::not_whitelisted(cmd);
                        outbox.push(Out::Bytes(text.into_bytes()));
                        outbox.push(Out::Close);
                    }
                    // The writer shuts the socket down once the answer (and its Close) is out.
                    return Ok(ReadEnd::AwaitingAnswer);
                }
            }
            let len = i32::from_be_bytes(head);
            if len < 0 || len as usize > max_frame {
                outbox.push(Out::Close);
                return Err("frame length out of range");
            }
            let len = len as usize;
            if buf.len() - at < 4 + len {
                break;
            }
            let frame = &buf[at + 4..at + 4 + len];
            at += 4 + len;
            if !backlog.room(outbox).await {
                return Ok(ReadEnd::Closed);
            }
            if !handshaken {
                let req = ConnectRequest::decode(&mut Reader::new(frame)).map_err(|_| "bad connect request")?;
                handshaken = true;
                backlog.asked();
                local.to_tree(ToTree::Connect { conn, remote, req }).await;
            } else {
                match Packet::decode(frame) {
                    Ok(packet) => {
                        backlog.asked();
                        local.to_tree(ToTree::Request { conn, packet, received: Instant::now() }).await
                    }
                    Err(DecodeError::UnknownOpcode(_)) if frame.len() >= 8 => {
                        // UnimplementedRequestProcessor: answer Unimplemented, then close.
                        let xid = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
                        let mut w = Writer::frame();
                        ReplyHeader { xid, zxid: -1, err: engine::code::UNIMPLEMENTED }.encode(&mut w);
                        outbox.push(Out::Bytes(w.finish_frame()));
                        outbox.push(Out::Close);
                        return Err("unknown opcode");
                    }
                    Err(_) => {
                        outbox.push(Out::Close);
                        return Err("undecodable request");
                    }
                }
            }
        }
        buf.drain(..at);
        // What a frame near jute.maxbuffer needed is not kept once it has been cut (shrinking
        // only when little is left, so a large frame still arriving is not copied back and forth).
        if buf.capacity() > READ_CHUNK_BYTES && buf.len() <= READ_CHUNK_BYTES / 2 {
            buf.shrink_to(READ_CHUNK_BYTES);
        }
    }
}

/// The CPUs this process may run on (its affinity mask, as `taskset` sets it), in order.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity fills it for pid 0 (us).
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    if unsafe { libc::sched_getaffinity(0, size, &mut set) } != 0 {
        return Vec::new();
    }
    // SAFETY: CPU_ISSET only reads the set, for indices below its capacity.
    (0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect()
}
