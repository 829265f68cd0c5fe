//! The shell's ZooKeeper session, kept the way the Java client keeps one: a background thread
//! connects (walking the connect string's servers), reads every frame, prints watch events as
//! they arrive, pings when idle, and on a lost connection resumes the session elsewhere with its
//! watches and auth re-sent. The shell's thread sends one request at a time and waits for its
//! reply, which is all zkCli ever has outstanding.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bench::client::{Client, ClientError, FrameReader};
use node::proto::{event, op, xid, ConnectRequest, Packet, ReplyHeader, Request, SetWatches, WatcherEvent};

use super::format::{self, code, state};

/// Where to connect: the servers of a connect string and its chroot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// (host, port) pairs, tried in turn.
    pub hosts: Vec<(String, u16)>,
    /// Prefixed to every path sent and stripped from every path received.
    pub chroot: Option<String>,
}

/// `ConnectStringParser`: `host[:port][,host[:port]...][/chroot]`, port 2181 by default.
pub fn parse_connect_string(s: &str) -> Result<Target, String> {
    let (hosts, chroot) = match s.find('/') {
        Some(off) if s.len() - off == 1 => (&s[..off], None),
        Some(off) => {
            format::validate_path(&s[off..])?;
            (&s[..off], Some(s[off..].to_string()))
        }
        None => (s, None),
    };
    let mut out = Vec::new();
    for h in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
        let (host, port) = if let Some(rest) = h.strip_prefix('[') {
            // [v6]:port
            let (host, tail) =
                rest.split_once(']').ok_or_else(|| format!("{h} starts with '[' but has no matching ']:'"))?;
            match tail.strip_prefix(':') {
                Some(p) => (host, p),
                None => (host, ""),
            }
        } else {
            match h.split_once(':') {
                Some((host, p)) => (host, p),
                None => (h, ""),
            }
        };
        let port = if port.is_empty() { 2181 } else { format::parse_java_int(port)?.clamp(0, 65535) as u16 };
        out.push((host.to_string(), port));
    }
    if out.is_empty() {
        return Err("A HostProvider may not be empty!".into());
    }
    Ok(Target { hosts: out, chroot })
}

/// The client's connection state, named as `ZooKeeper.States` prints in the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not connected yet, or reconnecting after a lost connection.
    Connecting,
    /// A live connection carries the session.
    Connected,
    /// Closed by the shell, or expired: commands print "Not connected".
    Closed,
    /// The server refused an `addauth`; the session is over.
    AuthFailed,
}

impl State {
    /// `States.toString()`.
    pub fn name(self) -> &'static str {
        match self {
            State::Connecting => "CONNECTING",
            State::Connected => "CONNECTED",
            State::Closed => "CLOSED",
            State::AuthFailed => "AUTH_FAILED",
        }
    }

    /// `States.isAlive()`: commands other than the shell's own need this.
    pub fn is_alive(self) -> bool {
        matches!(self, State::Connecting | State::Connected)
    }
}

/// Prints watch events: straight to stdout, or, while the line editor owns the terminal,
/// through it so the prompt is redrawn below the event.
pub struct Printer {
    /// `printwatches on|off`.
    pub on: AtomicBool,
    /// Events for the editor, handed over by a thread of their own: the editor takes them only
    /// between keystrokes, and the session thread must never wait for that.
    editor: Mutex<Option<std::sync::mpsc::Sender<String>>>,
}

impl Printer {
    /// A printer writing to stdout, with printwatches on.
    pub fn new() -> Printer {
        Printer { on: AtomicBool::new(true), editor: Mutex::new(None) }
    }

    /// Routes events through the line editor from now on.
    pub fn use_editor(&self, mut p: impl rustyline::ExternalPrinter + Send + 'static) {
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let spawned = std::thread::Builder::new().name("zk-events".into()).spawn(move || {
            for msg in rx {
                let _ = p.print(msg);
            }
        });
        if spawned.is_ok() {
            if let Ok(mut e) = self.editor.lock() {
                *e = Some(tx);
            }
        }
    }

    /// Prints one `WATCHER::` block unless printwatches is off.
    pub fn event(&self, keeper_state: i32, event_type: i32, path: Option<&str>) {
        if !self.on.load(Ordering::SeqCst) {
            return;
        }
        let text = format::watcher_block(keeper_state, event_type, path);
        if let Ok(e) = self.editor.lock() {
            if let Some(tx) = e.as_ref() {
                if tx.send(text.clone()).is_ok() {
                    return;
                }
            }
        }
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
}

/// The watches this client holds, by client path, as `ZKWatchManager` keeps them: the shell
/// needs them to answer `removewatches` and to re-arm them after a reconnect.
#[derive(Debug, Default)]
pub struct Watches {
    /// getData, or exists on a node that exists.
    pub data: BTreeSet<String>,
    /// exists on a node that does not exist.
    pub exist: BTreeSet<String>,
    /// getChildren.
    pub child: BTreeSet<String>,
    /// addWatch -m PERSISTENT.
    pub persistent: BTreeSet<String>,
    /// addWatch (PERSISTENT_RECURSIVE).
    pub recursive: BTreeSet<String>,
}

impl Watches {
    /// `ZKWatchManager.materialize`: a one-shot watch is gone once its event fired.
    fn fired(&mut self, event_type: i32, path: &str) {
        match event_type {
            event::NODE_DATA_CHANGED | event::NODE_CREATED => {
                self.data.remove(path);
                self.exist.remove(path);
            }
            event::NODE_CHILDREN_CHANGED => {
                self.child.remove(path);
            }
            event::NODE_DELETED => {
                self.data.remove(path);
                self.exist.remove(path);
                self.child.remove(path);
            }
            _ => {}
        }
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
            && self.exist.is_empty()
            && self.child.is_empty()
            && self.persistent.is_empty()
            && self.recursive.is_empty()
    }
}

/// A reply: its header and undecoded body.
pub type Reply = (ReplyHeader, Vec<u8>);

/// Everything the two threads share, under one lock.
struct Link {
    state: State,
    /// The connection's sending half while connected.
    writer: Option<Client>,
    session_id: i64,
    password: Vec<u8>,
    negotiated_ms: i32,
    last_zxid: i64,
    /// Connect attempts finished (each success, or each failed round of servers).
    attempts: u64,
    /// The xid the shell waits for, and its reply (or the error code that ended the wait).
    waiting: Option<i32>,
    reply: Option<Result<Reply, i32>>,
    /// `addauth`s, re-sent on every reconnect as the Java client does.
    auths: Vec<(String, Option<Vec<u8>>)>,
    last_send: Instant,
    /// The shell is done with this session: the thread ends without another word.
    stopping: bool,
    /// A CloseSession is on its way: the server hanging up is expected, not a disconnect.
    closing: bool,
}

struct Shared {
    target: Target,
    timeout_ms: i32,
    read_only: bool,
    printer: Arc<Printer>,
    link: Mutex<Link>,
    changed: Condvar,
    watches: Mutex<Watches>,
    /// The background thread starts with the first request: a command that fails before
    /// reaching the server never connects (zkCli exits before its connection completes).
    started: std::sync::Once,
}

/// A handle on the session; clones share it (the line editor's completer holds one).
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
}

/// How long the shell waits for one reply before giving the call up as a lost connection: the
/// reader thread fails a call on its own when the connection goes, so this is only a backstop.
const CALL_WAIT_MAX: Duration = Duration::from_secs(120);

impl Session {
    /// A session that connects when first used ([`Session::start`]).
    pub fn open(target: Target, timeout_ms: i32, read_only: bool, printer: Arc<Printer>) -> Session {
        let shared = Arc::new(Shared {
            target,
            timeout_ms,
            read_only,
            printer,
            link: Mutex::new(Link {
                state: State::Connecting,
                writer: None,
                session_id: 0,
                password: vec![0; 16],
                negotiated_ms: timeout_ms.max(1),
                last_zxid: 0,
                attempts: 0,
                waiting: None,
                reply: None,
                auths: Vec::new(),
                last_send: Instant::now(),
                stopping: false,
                closing: false,
            }),
            changed: Condvar::new(),
            watches: Mutex::new(Watches::default()),
            started: std::sync::Once::new(),
        });
        Session { shared }
    }

    /// Starts connecting in the background, as `new ZooKeeper(...)` does; idempotent.
    pub fn start(&self) {
        self.shared.started.call_once(|| {
            let worker = self.clone();
            let spawned = std::thread::Builder::new().name("zk-session".into()).spawn(move || worker.run());
            if spawned.is_err() {
                self.lock().state = State::Closed;
            }
        });
    }

    fn lock(&self) -> MutexGuard<'_, Link> {
        self.shared.link.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The watches held, for `removewatches` and completion of its bookkeeping.
    pub fn watches(&self) -> MutexGuard<'_, Watches> {
        self.shared.watches.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The printer of this session's events (commands raise the watch-removed ones).
    pub fn printer(&self) -> &Printer {
        &self.shared.printer
    }

    /// The connection state, for the prompt and the "Not connected" check.
    pub fn state(&self) -> State {
        self.lock().state
    }

    /// The chroot of the connect string, which the client adds to and strips from paths.
    pub fn chroot(&self) -> Option<&str> {
        self.shared.target.chroot.as_deref()
    }

    /// `prependChroot`.
    pub fn server_path(&self, client_path: &str) -> String {
        match self.chroot() {
            None => client_path.to_string(),
            Some(c) if client_path == "/" => c.to_string(),
            Some(c) => format!("{c}{client_path}"),
        }
    }

    /// The inverse of [`Session::server_path`] for paths the server sends back.
    pub fn client_path(&self, server_path: &str) -> String {
        strip_chroot(self.chroot(), server_path)
    }

    /// Waits until the first connect attempt has finished (bounded by the session timeout), so
    /// an interactive shell prints the connection event before it reads its first line.
    pub fn wait_first_attempt(&self) {
        self.start();
        let deadline = Instant::now() + Duration::from_millis(self.shared.timeout_ms.max(1000) as u64);
        let mut link = self.lock();
        while link.attempts == 0 && link.state == State::Connecting {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            link = match self.shared.changed.wait_timeout(link, deadline - now) {
                Ok((l, _)) => l,
                Err(e) => e.into_inner().0,
            };
        }
    }

    /// Sends a request and waits for its reply; Err is a `KeeperException.Code` (ConnectionLoss
    /// when there is no connection to send on, as the Java client fails queued packets).
    pub fn call(&self, opcode: i32, request: Request) -> Result<Reply, i32> {
        self.call_frame(|x| Packet { xid: x, op: opcode, request }.encode())
    }

    /// [`Session::call`] with a frame the caller encodes for the xid it is given: for the
    /// requests that carry a null buffer, which `node::proto` cannot express.
    pub fn call_frame(&self, build: impl FnOnce(i32) -> Vec<u8>) -> Result<Reply, i32> {
        self.call_inner(build, false)
    }

    /// `closing`: the request is CloseSession, after which the server hangs up.
    fn call_inner(&self, build: impl FnOnce(i32) -> Vec<u8>, closing: bool) -> Result<Reply, i32> {
        self.start();
        let mut link = self.lock();
        let seen = link.attempts;
        let deadline = Instant::now() + CALL_WAIT_MAX;
        while link.state == State::Connecting && link.attempts == seen && !link.stopping {
            link = match self.shared.changed.wait_timeout(link, Duration::from_millis(200)) {
                Ok((l, _)) => l,
                Err(e) => e.into_inner().0,
            };
            if Instant::now() >= deadline {
                return Err(code::CONNECTION_LOSS);
            }
        }
        if link.state != State::Connected {
            return Err(code::CONNECTION_LOSS);
        }
        link.closing |= closing;
        let Some(writer) = link.writer.as_mut() else { return Err(code::CONNECTION_LOSS) };
        let x = writer.next_xid();
        if writer.send_raw(&build(x)).is_err() {
            return Err(code::CONNECTION_LOSS);
        }
        link.last_send = Instant::now();
        link.waiting = Some(x);
        link.reply = None;
        loop {
            if let Some(r) = link.reply.take() {
                return r;
            }
            if Instant::now() >= deadline {
                link.waiting = None;
                return Err(code::CONNECTION_LOSS);
            }
            link = match self.shared.changed.wait_timeout(link, Duration::from_millis(500)) {
                Ok((l, _)) => l,
                Err(e) => e.into_inner().0,
            };
        }
    }

    /// `addAuthInfo`: sent without waiting (a failure arrives as an AuthFailed event), and
    /// remembered for reconnects.
    pub fn add_auth(&self, scheme: &str, auth: Option<Vec<u8>>) {
        let mut link = self.lock();
        let frame = auth_frame(scheme, auth.as_deref());
        link.auths.push((scheme.to_string(), auth));
        if link.state == State::Connected {
            if let Some(w) = link.writer.as_mut() {
                let _ = w.send_raw(&frame);
            }
            link.last_send = Instant::now();
        }
    }

    /// `ZooKeeper.close()`: ends the session on the server when connected, then prints the
    /// Closed event, as the Java client does; a no-op when already closed.
    pub fn close(&self) {
        if !self.state().is_alive() {
            return;
        }
        // Waits for a connection under way, as the Java client's close does.
        let _ = self
            .call_inner(|x| Packet { xid: x, op: op::CLOSE_SESSION, request: Request::CloseSession }.encode(), true);
        self.stop(State::Closed);
        self.shared.printer.event(state::CLOSED, event::NONE, None);
    }

    /// Drops the connection without ending the session (what zkCli's exit amounts to: the
    /// server expires the session, and its ephemerals, after the timeout).
    pub fn abandon(&self) {
        self.stop(State::Closed);
    }

    fn stop(&self, to: State) {
        let mut link = self.lock();
        link.stopping = true;
        link.state = to;
        if let Some(w) = link.writer.take() {
            w.drop_connection();
        }
        self.shared.changed.notify_all();
    }

    /// The background thread: connect, read until the connection is lost, repeat.
    fn run(self) {
        loop {
            let Some(reader) = self.connect() else { return };
            self.read(reader);
            let mut link = self.lock();
            if link.stopping || link.closing || link.state != State::Connected {
                // Closed by the shell, or the server refused auth and closed: no reconnect.
                if let Some(w) = link.writer.take() {
                    w.drop_connection();
                }
                if link.waiting.take().is_some() {
                    link.reply = Some(Err(code::CONNECTION_LOSS));
                }
                self.shared.changed.notify_all();
                return;
            }
            link.state = State::Connecting;
            if let Some(w) = link.writer.take() {
                w.drop_connection();
            }
            drop(link);
            self.shared.printer.event(state::DISCONNECTED, event::NONE, None);
            let mut link = self.lock();
            if link.waiting.take().is_some() {
                link.reply = Some(Err(code::CONNECTION_LOSS));
            }
            self.shared.changed.notify_all();
        }
    }

    /// Tries every server until one takes the session; None when the shell stopped the
    /// session or the server declared it expired.
    fn connect(&self) -> Option<FrameReader> {
        let hosts = &self.shared.target.hosts;
        // Java shuffles the servers; starting at a per-process offset spreads shells likewise.
        let offset = std::process::id() as usize % hosts.len();
        loop {
            for i in 0..hosts.len() {
                let (host, port) = &hosts[(offset + i) % hosts.len()];
                let addrs: Vec<SocketAddr> =
                    (host.as_str(), *port).to_socket_addrs().map(|a| a.collect()).unwrap_or_default();
                for addr in addrs {
                    let (req, resuming) = {
                        let link = self.lock();
                        if link.stopping {
                            return None;
                        }
                        let req = ConnectRequest {
                            read_only: Some(self.shared.read_only),
                            ..ConnectRequest::resume(
                                link.session_id,
                                &link.password,
                                link.last_zxid,
                                self.shared.timeout_ms,
                            )
                        };
                        (req, link.session_id != 0)
                    };
                    let connect_timeout =
                        Duration::from_millis((self.shared.timeout_ms.max(1000) as u64) / hosts.len() as u64);
                    match Client::handshake_within(&addr, &req, connect_timeout) {
                        Ok(client) => {
                            if let Some(reader) = self.connected(client) {
                                return Some(reader);
                            }
                            return None;
                        }
                        Err(ClientError::SessionExpired) if resuming => {
                            {
                                let mut link = self.lock();
                                if link.stopping {
                                    return None;
                                }
                                link.state = State::Closed;
                            }
                            self.shared.printer.event(state::EXPIRED, event::NONE, None);
                            let mut link = self.lock();
                            link.attempts += 1;
                            if link.waiting.take().is_some() {
                                link.reply = Some(Err(code::CONNECTION_LOSS));
                            }
                            self.shared.changed.notify_all();
                            return None;
                        }
                        Err(_) => continue,
                    }
                }
            }
            // A whole round failed: fail what waits, as the Java client fails queued packets,
            // then pause before the next round.
            let mut link = self.lock();
            link.attempts += 1;
            if link.waiting.take().is_some() {
                link.reply = Some(Err(code::CONNECTION_LOSS));
            }
            self.shared.changed.notify_all();
            let pause_until = Instant::now() + Duration::from_secs(1);
            while !link.stopping && Instant::now() < pause_until {
                link = match self.shared.changed.wait_timeout(link, pause_until - Instant::now()) {
                    Ok((l, _)) => l,
                    Err(e) => e.into_inner().0,
                };
            }
            if link.stopping {
                return None;
            }
        }
    }

    /// Installs a fresh connection: re-sends auth and watches, prints SyncConnected.
    fn connected(&self, client: Client) -> Option<FrameReader> {
        let reader = match client.reader() {
            Ok(r) => r,
            Err(_) => {
                client.drop_connection();
                return None;
            }
        };
        {
            let mut link = self.lock();
            if link.stopping {
                client.drop_connection();
                return None;
            }
            link.session_id = client.session_id;
            link.password = client.password.clone();
            link.negotiated_ms = client.timeout_ms;
            let mut client = client;
            // The Java client primes a connection with auth first, then the watches.
            for (scheme, auth) in &link.auths {
                let _ = client.send_raw(&auth_frame(scheme, auth.as_deref()));
            }
            let sw = self.set_watches(link.last_zxid);
            if let Some((opcode, sw)) = sw {
                let _ = client.send(xid::SET_WATCHES, opcode, &Request::SetWatches(sw));
            }
            link.writer = Some(client);
            link.state = State::Connected;
            link.last_send = Instant::now();
        }
        self.shared.printer.event(state::SYNC_CONNECTED, event::NONE, None);
        let mut link = self.lock();
        link.attempts += 1;
        self.shared.changed.notify_all();
        Some(reader)
    }

    /// The SetWatches record that re-arms this client's watches on a new connection.
    fn set_watches(&self, last_zxid: i64) -> Option<(i32, SetWatches)> {
        let w = self.watches();
        if w.is_empty() {
            return None;
        }
        let paths = |set: &BTreeSet<String>| set.iter().map(|p| self.server_path(p)).collect::<Vec<_>>();
        let sw = SetWatches {
            relative_zxid: last_zxid,
            data: paths(&w.data),
            exist: paths(&w.exist),
            child: paths(&w.child),
            persistent: paths(&w.persistent),
            persistent_recursive: paths(&w.recursive),
        };
        let opcode = if w.persistent.is_empty() && w.recursive.is_empty() { op::SET_WATCHES } else { op::SET_WATCHES2 };
        Some((opcode, sw))
    }

    /// Reads frames until the connection is lost (or the shell stops the session). Pings
    /// every third of the session timeout when idle, and gives the connection up after two
    /// thirds of it without a frame, as `ClientCnxn` does.
    fn read(&self, mut reader: FrameReader) {
        let negotiated = Duration::from_millis(self.lock().negotiated_ms.max(300) as u64);
        let ping_every = negotiated / 3;
        let silence_max = negotiated * 2 / 3;
        let tick = (negotiated / 6).min(Duration::from_millis(500));
        let mut last_frame = Instant::now();
        loop {
            match reader.next_frame(tick) {
                Ok(Some((header, body))) => {
                    last_frame = Instant::now();
                    if !self.frame(header, &body) {
                        reader.shutdown();
                        return;
                    }
                }
                Ok(None) => {}
                Err(_) => return,
            }
            // The server counts only what the client sends, so ping even while events stream in.
            let mut link = self.lock();
            if link.stopping || link.state != State::Connected || last_frame.elapsed() > silence_max {
                reader.shutdown();
                return;
            }
            if link.last_send.elapsed() >= ping_every {
                if let Some(w) = link.writer.as_mut() {
                    let _ = w.send(xid::PING, op::PING, &Request::Ping);
                }
                link.last_send = Instant::now();
            }
        }
    }

    /// Handles one frame; false when the connection should be dropped.
    fn frame(&self, header: ReplyHeader, body: &[u8]) -> bool {
        match header.xid {
            xid::NOTIFICATION => {
                let Ok(ev) = WatcherEvent::decode(&mut node::proto::Reader::new(body)) else { return false };
                let path = self.client_path(&ev.path);
                self.watches().fired(ev.event_type, &path);
                let path = if ev.event_type == event::NONE { None } else { Some(path.as_str()) };
                self.shared.printer.event(ev.state, ev.event_type, path);
                true
            }
            xid::PING | xid::SET_WATCHES => true,
            xid::AUTH => {
                if header.err != 0 {
                    self.lock().state = State::AuthFailed;
                    self.shared.printer.event(state::AUTH_FAILED, event::NONE, None);
                    let mut link = self.lock();
                    if link.waiting.take().is_some() {
                        link.reply = Some(Err(header.err));
                    }
                    self.shared.changed.notify_all();
                }
                true
            }
            x => {
                let mut link = self.lock();
                if header.zxid > link.last_zxid {
                    link.last_zxid = header.zxid;
                }
                if link.waiting == Some(x) {
                    link.waiting = None;
                    link.reply = Some(Ok((header, body.to_vec())));
                    self.shared.changed.notify_all();
                }
                true
            }
        }
    }
}

/// Strips `chroot` from a path the server sent (`/chroot` itself becomes `/`).
pub fn strip_chroot(chroot: Option<&str>, server_path: &str) -> String {
    match chroot {
        Some(c) if server_path == c => "/".to_string(),
        Some(c) if server_path.starts_with(c) && server_path[c.len()..].starts_with('/') => {
            server_path[c.len()..].to_string()
        }
        _ => server_path.to_string(),
    }
}

/// An AuthPacket frame (xid -4); a missing auth is a null buffer, as `addauth scheme` sends.
fn auth_frame(scheme: &str, auth: Option<&[u8]>) -> Vec<u8> {
    let mut w = node::proto::Writer::frame();
    w.i32(xid::AUTH).i32(op::AUTH).i32(0).string(scheme);
    match auth {
        Some(a) => w.buffer(a),
        None => w.i32(-1),
    };
    w.finish_frame()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_strings_parse_as_the_java_client_parses_them() {
        let t = parse_connect_string("a:1,b/app").expect("parses");
        assert_eq!(t.hosts, vec![("a".to_string(), 1), ("b".to_string(), 2181)]);
        assert_eq!(t.chroot.as_deref(), Some("/app"));
        assert_eq!(parse_connect_string("a:1/").expect("parses").chroot, None);
        assert_eq!(parse_connect_string("[::1]:5").expect("parses").hosts, vec![("::1".to_string(), 5)]);
        assert!(parse_connect_string("a/b/").is_err());
    }

    #[test]
    fn chroot_is_stripped_from_server_paths() {
        assert_eq!(strip_chroot(Some("/app"), "/app"), "/");
        assert_eq!(strip_chroot(Some("/app"), "/app/x"), "/x");
        assert_eq!(strip_chroot(None, "/x"), "/x");
    }
}
