//! Harness for ensemble tests: starts an ensemble of real server processes (Paddock, or Apache
//! ZooKeeper 3.8 as the reference) on 127.0.0.1, each member with its own temp directory,
//! `zoo.cfg`, `myid` and free ports; crashes (SIGKILL), pauses (SIGSTOP/SIGCONT) and restarts
//! members; reads their role and state through the four-letter words; and kills every process
//! on drop, whether the test passed or not (printing the logs when it did not).
//!
//! Every wait has a deadline ([`wait_until`]); nothing sleeps to synchronise. A failing test
//! keeps the ensemble's directory and prints the tail of each member's log
//! (`PADDOCK_ENSEMBLE_LOG_LINES`, default 200); `PADDOCK_KEEP_TMP=1` keeps passing ones too.
//!
//! Members are numbered as ZooKeeper numbers them: voters are `1..=voters`, observers the ids
//! after. The same `zoo.cfg` text serves both flavours.
//!
//! A *proxied* ensemble ([`Ensemble::proxied`]) puts a fault-injecting TCP proxy ([`LinkProxy`])
//! on every server-to-server link, so that a test can cut links and heal them ([`Ensemble::cut`],
//! [`Ensemble::isolate`], [`Ensemble::heal_all`]): a partition, not a crash or a pause. A cut
//! closes connections, which both ends notice at once; a *stall* ([`Ensemble::stall`],
//! [`Ensemble::isolate_silently`]) drops the traffic instead, as a partitioned network does, so
//! each end finds out only by its own timeouts.
//!
//! Ensembles in one test binary run one at a time (each holds a process-wide lock while it
//! lives): four JVMs or four servers per test on a 2-core machine are already enough, and
//! timing-sensitive failover tests should not compete with each other for the CPU. So a test
//! must not build two ensembles at once.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::{free_port, paddock_bin, repo_root, wait_until, Flavor};

/// The flavour the ensemble tests run against: `PADDOCK_TARGET=zookeeper` selects Apache
/// ZooKeeper 3.8 (as `tests/python` does); anything else, Paddock.
pub fn target_flavor() -> Flavor {
    match std::env::var("PADDOCK_TARGET") {
        Ok(t) if t.eq_ignore_ascii_case("zookeeper") => Flavor::ZooKeeper,
        _ => Flavor::Paddock,
    }
}

/// How long a member gets to start, join and serve (a JVM on a loaded 2-core machine is slow).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a four-letter word may take to connect and to answer.
const FOUR_LETTER_TIMEOUT: Duration = Duration::from_secs(2);

/// What `srvr` answers while the member is not serving (electing, syncing, starting).
pub const NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests";

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// One member of the ensemble.
pub struct Member {
    pub id: u64,
    pub observer: bool,
    pub dir: PathBuf,
    pub client_port: u16,
    pub quorum_port: u16,
    pub election_port: u16,
    child: Option<Child>,
    stopped: bool,
    /// How many times the process was started (the log marks each run).
    runs: usize,
}

impl Member {
    pub fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.client_port).into()
    }
}

/// An ensemble of server processes.
pub struct Ensemble {
    pub flavor: Flavor,
    /// The directory holding every member's directory.
    pub root: PathBuf,
    members: Vec<Member>,
    /// A proxied ensemble's proxies, by (from, to, port kind); empty otherwise.
    links: HashMap<(u64, u64, PortKind), LinkProxy>,
    /// Extra JVM flags for the ZooKeeper flavour (e.g. `-Dreadonlymode.enabled=true`, which
    /// ZooKeeper reads only as a system property); ignored for Paddock.
    zookeeper_flags: Vec<String>,
    _turn: MutexGuard<'static, ()>,
}

/// The zoo.cfg of one member, the same for both flavours. Voters and observers share
/// everything but `peerType`.
///
/// `maxSessionTimeout` is raised from its default of 20 ticks (2 s at tickTime=100), so that a
/// client asking for a 4 s session gets one.
fn member_config(m: &Member, servers: &str, extra: &str) -> String {
    let dir = m.dir.display();
    let mut cfg = format!(
        "tickTime=100\ninitLimit=10\nsyncLimit=5\ndataDir={dir}/data\ndataLogDir={dir}/log\n\
         clientPort={}\nclientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\nadmin.enableServer=false\n\
         maxClientCnxns=0\npreAllocSize=4096\nmaxSessionTimeout=10000\n{servers}",
        m.client_port
    );
    if m.observer {
        cfg.push_str("peerType=observer\n");
    }
    cfg.push_str(extra);
    cfg.push('\n');
    cfg
}

/// A port nobody listens on now and that this ensemble has not handed out yet.
fn unique_port(taken: &mut HashSet<u16>) -> u16 {
    loop {
        let p = free_port();
        if taken.insert(p) {
            return p;
        }
    }
}

/// Whether every thread of `pid` is in the stopped state ('T' in /proc/<pid>/task/*/stat).
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return false };
    tasks.filter_map(Result::ok).all(|t| {
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        // "tid (comm) S ...": the state follows the last ')' (comm may hold spaces and parens).
        stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next()) == Some('T')
    })
}

/// Sends a four-letter word with short timeouts; None when the member does not answer.
pub fn four_letter(addr: SocketAddr, cmd: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, FOUR_LETTER_TIMEOUT).ok()?;
    s.set_read_timeout(Some(FOUR_LETTER_TIMEOUT)).ok()?;
    s.set_write_timeout(Some(FOUR_LETTER_TIMEOUT)).ok()?;
    s.write_all(cmd.as_bytes()).ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// The `Mode:` of a `srvr` answer; None when the server is not serving.
pub fn parse_mode(srvr: &str) -> Option<String> {
    srvr.lines().find_map(|l| l.strip_prefix("Mode:")).map(|m| m.trim().to_string())
}

/// The `Zxid:` of a `srvr` answer.
pub fn parse_zxid(srvr: &str) -> Option<i64> {
    let hex = srvr.lines().find_map(|l| l.strip_prefix("Zxid:"))?.trim();
    let hex = hex.strip_prefix("0x").unwrap_or(hex);
    u64::from_str_radix(hex, 16).ok().map(|z| z as i64)
}

/// `mntr`'s `key<TAB>value` lines.
pub fn parse_mntr(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once('\t').or_else(|| l.split_once(char::is_whitespace))?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Fault injection: one TCP proxy per directed link and port kind

/// Which server-to-server port a [`LinkProxy`] stands in front of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortKind {
    Quorum,
    Election,
}

/// How long a proxy gives the real port to accept a forwarded connection.
const PROXY_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// ZooKeeper's election-port handshake versions (QuorumCnxManager PROTOCOL_VERSION_V1/V2): the
/// connecting server's first 8 bytes, followed by its sid, then the length and text of its own
/// election address(es).
const ZK_ELECTION_PROTOCOL_VERSIONS: [i64; 2] = [-65536, -65535];

struct ProxyConns {
    cut: bool,
    /// Forward nothing (bytes, new connections, closes) until healed: see [`LinkProxy::stall`].
    stalled: bool,
    next: u64,
    /// Both sockets of every forwarded connection (clones), to close them on a cut.
    open: HashMap<u64, [TcpStream; 2]>,
}

struct ProxyShared {
    target: SocketAddr,
    /// For an election proxy: the address the connecting member is advertised at in ZooKeeper's
    /// handshake (the proxy of the reverse direction); see [`LinkProxy`].
    advertise: Option<String>,
    conns: Mutex<ProxyConns>,
    /// Signalled when a stall ends (healed, cut or closing).
    unstalled: Condvar,
    closing: AtomicBool,
    refused: AtomicUsize,
}

impl ProxyShared {
    fn lock(&self) -> MutexGuard<'_, ProxyConns> {
        self.conns.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Blocks while the link is stalled; true if the traffic may go on, false if the link was
    /// cut or the proxy is closing meanwhile (the connection is to be dropped).
    fn pass(&self) -> bool {
        let mut c = self.lock();
        while c.stalled && !c.cut && !self.closing.load(Ordering::SeqCst) {
            c = self.unstalled.wait(c).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        !c.cut && !self.closing.load(Ordering::SeqCst)
    }
}

/// A loopback TCP proxy from one member to one port of another, on std threads, that the test
/// can cut (close the connections it forwards, and accept and close new ones at once), stall
/// (hold every byte, close and new connection until healed) and heal.
///
/// ZooKeeper's election port needs one protocol-aware touch: a server that accepts an election
/// connection from a lower sid closes it and connects back to the address the connecting server
/// advertised in its handshake, which is that server's *real* election address, so the link
/// would bypass the proxies. An election proxy therefore rewrites that address to the proxy of
/// the reverse direction. The rewrite applies only to a connection whose first 8 bytes are one of
/// ZooKeeper's handshake versions (negative); Paddock's notifications start with a positive frame
/// length and pass untouched.
pub struct LinkProxy {
    pub port: u16,
    shared: Arc<ProxyShared>,
}

impl LinkProxy {
    fn start(listener: TcpListener, target: SocketAddr, advertise: Option<String>) -> LinkProxy {
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(ProxyShared {
            target,
            advertise,
            conns: Mutex::new(ProxyConns { cut: false, stalled: false, next: 0, open: HashMap::new() }),
            unstalled: Condvar::new(),
            closing: AtomicBool::new(false),
            refused: AtomicUsize::new(0),
        });
        let s = shared.clone();
        std::thread::Builder::new()
            .name(format!("proxy-{port}"))
            .spawn(move || {
                for incoming in listener.incoming() {
                    if s.closing.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(client) = incoming else { continue };
                    let s = s.clone();
                    // Connecting upstream in a thread of its own keeps the accept loop free.
                    let _ = std::thread::Builder::new().name("proxy-conn".into()).spawn(move || forward(s, client));
                }
            })
            .expect("spawn proxy thread");
        LinkProxy { port, shared }
    }

    /// Closes every forwarded connection and refuses new ones until [`LinkProxy::heal`].
    pub fn cut(&self) {
        let mut c = self.shared.lock();
        c.cut = true;
        for (_, pair) in c.open.drain() {
            for sock in pair {
                let _ = sock.shutdown(Shutdown::Both);
            }
        }
        self.shared.unstalled.notify_all();
    }

    /// Drops the link silently, as a partitioned network does, until [`LinkProxy::heal`]:
    /// connections stay open, but nothing crosses, neither bytes nor a close; new connections
    /// are accepted (the connecting member cannot tell) and go nowhere. Each end finds out only
    /// by its own timeouts. Healed, what was held goes through, as TCP delivers it once a
    /// partition ends (each side may have given up on the connection by then).
    pub fn stall(&self) {
        self.shared.lock().stalled = true;
    }

    /// Ends a cut or a stall.
    pub fn heal(&self) {
        let mut c = self.shared.lock();
        c.cut = false;
        c.stalled = false;
        self.shared.unstalled.notify_all();
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        // Also wakes the connections a stall holds.
        self.cut();
        // Wakes the accept loop so that it sees `closing` and drops the listener.
        let _ = TcpStream::connect_timeout(&([127, 0, 0, 1], self.port).into(), Duration::from_secs(1));
    }
}

fn forward(s: Arc<ProxyShared>, client: TcpStream) {
    let refuse = |socks: &[&TcpStream]| {
        s.refused.fetch_add(1, Ordering::Relaxed);
        for sock in socks {
            let _ = sock.shutdown(Shutdown::Both);
        }
    };
    if s.lock().cut || s.closing.load(Ordering::SeqCst) {
        return refuse(&[&client]);
    }
    // Stalled: the connection is accepted and goes nowhere until healed.
    if !s.pass() {
        return refuse(&[&client]);
    }
    let Ok(upstream) = TcpStream::connect_timeout(&s.target, PROXY_CONNECT_TIMEOUT) else {
        // The member behind is down: the connecting one sees its connection closed.
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (Ok(c2), Ok(u2), Ok(c3), Ok(u3)) =
        (client.try_clone(), upstream.try_clone(), client.try_clone(), upstream.try_clone())
    else {
        return;
    };
    let id = {
        let mut c = s.lock();
        // A cut made while this connection was being set up covers it too.
        if c.cut || s.closing.load(Ordering::SeqCst) {
            drop(c);
            return refuse(&[&client, &upstream]);
        }
        let id = c.next;
        c.next += 1;
        c.open.insert(id, [c3, u3]);
        id
    };
    let back = {
        let s = s.clone();
        std::thread::Builder::new().name("proxy-back".into()).spawn(move || pump(&s, id, u2, c2, None))
    };
    let advertise = s.advertise.clone();
    pump(&s, id, client, upstream, advertise.as_deref());
    if let Ok(t) = back {
        let _ = t.join();
    }
}

/// Copies `from` to `to` until either side ends, then closes both (so the other direction ends
/// too). With `advertise`, a ZooKeeper election handshake at the start has its address replaced.
/// While the link is stalled, bytes and the close wait (one chunk here, the rest in the kernel's
/// buffers, until the sender blocks).
fn pump(s: &ProxyShared, id: u64, mut from: TcpStream, mut to: TcpStream, advertise: Option<&str>) {
    let mut run = || -> std::io::Result<()> {
        if let Some(addr) = advertise {
            let mut version = [0u8; 8];
            from.read_exact(&mut version)?;
            if ZK_ELECTION_PROTOCOL_VERSIONS.contains(&i64::from_be_bytes(version)) {
                let mut sid = [0u8; 8];
                from.read_exact(&mut sid)?;
                let mut len = [0u8; 4];
                from.read_exact(&mut len)?;
                let len = usize::try_from(i32::from_be_bytes(len)).unwrap_or(0).min(64 * 1024);
                let mut theirs = vec![0u8; len];
                from.read_exact(&mut theirs)?;
                let mut hello = Vec::with_capacity(20 + addr.len());
                hello.extend_from_slice(&version);
                hello.extend_from_slice(&sid);
                hello.extend_from_slice(&(addr.len() as i32).to_be_bytes());
                hello.extend_from_slice(addr.as_bytes());
                if s.pass() {
                    to.write_all(&hello)?;
                }
            } else if s.pass() {
                to.write_all(&version)?;
            }
        }
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 || !s.pass() {
                return Ok(());
            }
            to.write_all(&buf[..n])?;
        }
    };
    let _ = run();
    s.pass(); // a close crosses a stalled link only once it is healed
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
    s.lock().open.remove(&id);
}

/// The proxies of a proxied ensemble: for each ordered pair of members and each port kind, a
/// proxy from the first to the second's real port, listening on a port no member uses.
fn link_proxies(members: &[Member], taken: &mut HashSet<u16>) -> HashMap<(u64, u64, PortKind), LinkProxy> {
    let mut listeners = HashMap::new();
    for from in members {
        for to in members.iter().filter(|m| m.id != from.id) {
            for kind in [PortKind::Quorum, PortKind::Election] {
                // Held from now on, so no member is handed its port; but a member's port was only
                // probed, so the kernel may offer it again: skip those.
                let listener = loop {
                    let l = TcpListener::bind("127.0.0.1:0").expect("proxy listener");
                    if taken.insert(l.local_addr().expect("proxy address").port()) {
                        break l;
                    }
                };
                listeners.insert((from.id, to.id, kind), listener);
            }
        }
    }
    let ports: HashMap<(u64, u64, PortKind), u16> =
        listeners.iter().map(|(k, l)| (*k, l.local_addr().expect("proxy address").port())).collect();
    listeners
        .into_iter()
        .map(|((from, to, kind), listener)| {
            let m = members.iter().find(|m| m.id == to).expect("member");
            let (target_port, advertise) = match kind {
                PortKind::Quorum => (m.quorum_port, None),
                PortKind::Election => (m.election_port, Some(format!("127.0.0.1:{}", ports[&(to, from, kind)]))),
            };
            ((from, to, kind), LinkProxy::start(listener, ([127, 0, 0, 1], target_port).into(), advertise))
        })
        .collect()
}

impl Ensemble {
    /// A Paddock ensemble of `voters` voters and `observers` observers, started and formed.
    pub fn paddock(voters: usize, observers: usize, extra: &str) -> Ensemble {
        Ensemble::new(Flavor::Paddock, voters, observers, extra)
    }

    /// An Apache ZooKeeper 3.8 ensemble, started and formed.
    pub fn zookeeper(voters: usize, observers: usize, extra: &str) -> Ensemble {
        Ensemble::new(Flavor::ZooKeeper, voters, observers, extra)
    }

    /// An ensemble of the flavour `PADDOCK_TARGET` selects ([`target_flavor`]).
    pub fn from_env(voters: usize, observers: usize, extra: &str) -> Ensemble {
        Ensemble::new(target_flavor(), voters, observers, extra)
    }

    /// Writes every member's directory and config, starts all of them at once (voters first,
    /// in id order) and waits until every member has a mode and exactly one leads.
    pub fn new(flavor: Flavor, voters: usize, observers: usize, extra: &str) -> Ensemble {
        let mut e = Ensemble::configure(flavor, voters, observers, extra);
        for id in e.ids() {
            e.start(id);
        }
        e.wait_modes(START_TIMEOUT);
        e
    }

    /// A proxied ensemble of the flavour `PADDOCK_TARGET` selects, started and formed: every
    /// server-to-server link goes through a [`LinkProxy`] the test can cut and heal (see
    /// [`Ensemble::configure_proxied`]).
    pub fn proxied_from_env(voters: usize, observers: usize, extra: &str) -> Ensemble {
        let mut e = Ensemble::configure_proxied(target_flavor(), voters, observers, extra);
        for id in e.ids() {
            e.start(id);
        }
        e.wait_modes(START_TIMEOUT);
        e
    }

    /// Writes every member's directory and config without starting anything.
    pub fn configure(flavor: Flavor, voters: usize, observers: usize, extra: &str) -> Ensemble {
        Ensemble::configure_inner(flavor, voters, observers, extra, false)
    }

    /// [`Ensemble::configure`], with a proxy on every server-to-server link. Each member's
    /// zoo.cfg lists its own `server.N` line with its real quorum and election ports (the ones it
    /// binds), and the other members' lines with the ports of the proxies from it to them: one
    /// proxy per (from, to) pair and per port kind, forwarding to the real port of `to`. So each
    /// direction of each link can be cut on its own ([`Ensemble::cut`] cuts both). Client ports
    /// are not proxied.
    pub fn configure_proxied(flavor: Flavor, voters: usize, observers: usize, extra: &str) -> Ensemble {
        Ensemble::configure_inner(flavor, voters, observers, extra, true)
    }

    fn configure_inner(flavor: Flavor, voters: usize, observers: usize, extra: &str, proxied: bool) -> Ensemble {
        assert!(voters >= 1, "an ensemble needs a voter");
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if flavor == Flavor::Paddock {
            paddock_bin(); // fail now, with the message, when the binary is missing
        } else {
            let ok = Command::new(repo_root().join("scripts/zookeeper-run"))
                .arg("--install")
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "Apache ZooKeeper is not available (scripts/zookeeper-run --install failed)");
        }
        let tag = match flavor {
            Flavor::Paddock => "paddock",
            Flavor::ZooKeeper => "zookeeper",
        };
        let mut taken = HashSet::new();
        let root = std::env::temp_dir().join(format!(
            "paddock-ensemble-{tag}-{}-{}",
            std::process::id(),
            unique_port(&mut taken)
        ));
        std::fs::create_dir_all(&root).expect("ensemble temp dir");
        let members: Vec<Member> = (1..=(voters + observers) as u64)
            .map(|id| Member {
                id,
                observer: id > voters as u64,
                dir: root.join(format!("s{id}")),
                client_port: unique_port(&mut taken),
                quorum_port: unique_port(&mut taken),
                election_port: unique_port(&mut taken),
                child: None,
                stopped: false,
                runs: 0,
            })
            .collect();
        let links = if proxied { link_proxies(&members, &mut taken) } else { HashMap::new() };
        // The server.N lines as member `from` sees them: its own with its real ports, the others
        // with the ports of its proxies to them (when proxied).
        let servers = |from: u64| -> String {
            members
                .iter()
                .map(|m| {
                    let port = |kind: PortKind| match links.get(&(from, m.id, kind)) {
                        Some(p) => p.port,
                        None if kind == PortKind::Quorum => m.quorum_port,
                        None => m.election_port,
                    };
                    format!(
                        "server.{}=127.0.0.1:{}:{}{}\n",
                        m.id,
                        port(PortKind::Quorum),
                        port(PortKind::Election),
                        if m.observer { ":observer" } else { "" }
                    )
                })
                .collect()
        };
        for m in &members {
            std::fs::create_dir_all(m.dir.join("data")).expect("data dir");
            std::fs::create_dir_all(m.dir.join("log")).expect("log dir");
            std::fs::write(m.dir.join("data/myid"), format!("{}\n", m.id)).expect("myid");
            std::fs::write(m.dir.join("zoo.cfg"), member_config(m, &servers(m.id), extra)).expect("zoo.cfg");
        }
        Ensemble { flavor, root, members, links, zookeeper_flags: Vec::new(), _turn: turn }
    }

    fn member(&self, id: u64) -> &Member {
        self.members.iter().find(|m| m.id == id).unwrap_or_else(|| panic!("no server {id} in the ensemble"))
    }

    fn member_mut(&mut self, id: u64) -> &mut Member {
        self.members.iter_mut().find(|m| m.id == id).unwrap_or_else(|| panic!("no server {id} in the ensemble"))
    }

    /// Every member's id, voters first.
    pub fn ids(&self) -> Vec<u64> {
        self.members.iter().map(|m| m.id).collect()
    }

    /// The voters' ids.
    pub fn voters(&self) -> Vec<u64> {
        self.members.iter().filter(|m| !m.observer).map(|m| m.id).collect()
    }

    /// The observers' ids.
    pub fn observers(&self) -> Vec<u64> {
        self.members.iter().filter(|m| m.observer).map(|m| m.id).collect()
    }

    pub fn is_observer(&self, id: u64) -> bool {
        self.member(id).observer
    }

    /// The member's directory (zoo.cfg, server.log, data/, log/).
    pub fn dir(&self, id: u64) -> &Path {
        &self.member(id).dir
    }

    pub fn addr(&self, id: u64) -> SocketAddr {
        self.member(id).addr()
    }

    /// "127.0.0.1:port" of one member, as clients take it.
    pub fn connect_string(&self, id: u64) -> String {
        self.addr(id).to_string()
    }

    /// The connect string of the given members.
    pub fn connect_string_of(&self, ids: &[u64]) -> String {
        ids.iter().map(|&id| self.connect_string(id)).collect::<Vec<_>>().join(",")
    }

    /// The connect string of every member, observers included.
    pub fn all_connect_string(&self) -> String {
        self.connect_string_of(&self.ids())
    }

    /// Starts the member's process (it must not be running). Does not wait: see
    /// [`Ensemble::wait_mode`], [`Ensemble::wait_modes`].
    ///
    /// The process is SIGKILLed if the thread that started it ends (PR_SET_PDEATHSIG), so a
    /// test binary killed from outside leaks no servers: start members from the test's own
    /// thread.
    pub fn start(&mut self, id: u64) {
        let flavor = self.flavor;
        let zookeeper_flags = self.zookeeper_flags.clone();
        let m = self.member_mut(id);
        assert!(m.child.is_none(), "server {id} is already running");
        m.runs += 1;
        let mut log =
            std::fs::OpenOptions::new().create(true).append(true).open(m.dir.join("server.log")).expect("log file");
        let _ = writeln!(log, "=== harness: start #{} of server {id} ({flavor:?})", m.runs);
        let cfg = m.dir.join("zoo.cfg");
        let mut cmd = match flavor {
            Flavor::Paddock => {
                let mut c = Command::new(paddock_bin());
                c.arg("server").arg("--cores").arg("1").arg(&cfg);
                c
            }
            Flavor::ZooKeeper => {
                let mut c = Command::new(repo_root().join("scripts/zookeeper-run"));
                // The harness polls srvr every few milliseconds; ZooKeeper logs each at info.
                c.arg(&cfg)
                    .arg("-Dorg.slf4j.simpleLogger.log.org.apache.zookeeper.server.NIOServerCnxn=warn")
                    .args(&zookeeper_flags)
                    // Runs QuorumPeerMain where scripts/zookeeper-run starts the standalone class.
                    .env("ZK_JAVA", repo_root().join("scripts/zookeeper-quorum-java"));
                if let Ok(java) = std::env::var("ZK_JAVA") {
                    c.env("PADDOCK_ZK_REAL_JAVA", java);
                }
                c
            }
        };
        cmd.current_dir(&m.dir).stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        m.child = Some(cmd.spawn().unwrap_or_else(|e| panic!("spawn server {id} ({flavor:?}): {e}")));
        m.stopped = false;
    }

    /// SIGKILLs the member, as a crash, and reaps it. A no-op when it is not running.
    pub fn kill(&mut self, id: u64) {
        let m = self.member_mut(id);
        if let Some(mut c) = m.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        m.stopped = false;
    }

    fn signal(&mut self, id: u64, sig: libc::c_int) {
        let m = self.member_mut(id);
        let pid = m.child.as_ref().unwrap_or_else(|| panic!("server {id} is not running")).id();
        // SAFETY: kill(2) on our own child's pid, which is not reaped yet, so not reused.
        let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
    }

    /// SIGSTOP: the member freezes with its sockets open (a long GC pause, a hung disk).
    /// Returns once every thread of the process is stopped: kill(2) only queues the signal, and
    /// a thread busy on the other core may run on for a while (long enough to read and log a
    /// proposal sent right after).
    pub fn stop(&mut self, id: u64) {
        self.signal(id, libc::SIGSTOP);
        self.member_mut(id).stopped = true;
        let pid = self.member(id).child.as_ref().map(|c| c.id()).unwrap_or_default();
        let stopped = wait_until(Duration::from_secs(10), || all_threads_stopped(pid));
        assert!(stopped, "server {id} (pid {pid}) did not stop within 10 s of SIGSTOP");
    }

    /// SIGCONT after [`Ensemble::stop`].
    pub fn cont(&mut self, id: u64) {
        self.signal(id, libc::SIGCONT);
        self.member_mut(id).stopped = false;
    }

    /// SIGKILLs the member, starts it again on the same directory and ports, and waits until it
    /// serves (has a mode); panics with the logs if it does not within [`START_TIMEOUT`].
    pub fn restart(&mut self, id: u64) {
        self.kill(id);
        self.start(id);
        if self.wait_mode(id, START_TIMEOUT).is_none() {
            panic!("server {id} did not serve again after a restart; {}", self.describe());
        }
    }

    /// Whether the member's process is alive (stopped counts as alive).
    pub fn is_running(&mut self, id: u64) -> bool {
        let m = self.member_mut(id);
        match m.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => true,
            Some(_) => {
                m.child = None; // it exited by itself
                false
            }
            None => false,
        }
    }

    pub fn is_stopped(&self, id: u64) -> bool {
        self.member(id).stopped
    }

    /// Members whose process runs and is not SIGSTOPped: the ones that can answer.
    pub fn live(&self) -> Vec<u64> {
        self.members.iter().filter(|m| m.child.is_some() && !m.stopped).map(|m| m.id).collect()
    }

    /// A four-letter word's answer; None for a member that is down or stopped, or that does not
    /// answer within 2 s.
    pub fn four_letter(&self, id: u64, cmd: &str) -> Option<String> {
        let m = self.member(id);
        if m.child.is_none() || m.stopped {
            return None;
        }
        four_letter(m.addr(), cmd)
    }

    /// "leader", "follower", "observer" or "standalone", from `srvr`; None when the member is not
    /// serving ("This ZooKeeper instance is not currently serving requests"), down or stopped.
    pub fn mode(&self, id: u64) -> Option<String> {
        self.four_letter(id, "srvr").as_deref().and_then(parse_mode)
    }

    /// `srvr`'s `Zxid:` line. On ZooKeeper this is the last zxid *applied* (committed), not
    /// logged; a follower shows 0x0 until the first txn of the epoch while its leader shows the
    /// epoch's first zxid (e.g. 0x100000000).
    pub fn srvr_zxid(&self, id: u64) -> Option<i64> {
        self.four_letter(id, "srvr").as_deref().and_then(parse_zxid)
    }

    /// `mntr` as a map; empty when the member does not answer.
    pub fn mntr(&self, id: u64) -> HashMap<String, String> {
        self.four_letter(id, "mntr").as_deref().map(parse_mntr).unwrap_or_default()
    }

    /// One numeric `mntr` value.
    pub fn mntr_i64(&self, id: u64, key: &str) -> Option<i64> {
        self.mntr(id).get(key).and_then(|v| v.parse().ok())
    }

    /// Every member's mode (None: not serving, down or stopped).
    pub fn modes(&self) -> Vec<(u64, Option<String>)> {
        self.ids().into_iter().map(|id| (id, self.mode(id))).collect()
    }

    /// The one live member that says it leads; None when none or several do.
    pub fn leader(&self) -> Option<u64> {
        let leaders: Vec<u64> =
            self.live().into_iter().filter(|&id| self.mode(id).as_deref() == Some("leader")).collect();
        match leaders[..] {
            [one] => Some(one),
            _ => None,
        }
    }

    /// Live voters that say they follow.
    pub fn followers(&self) -> Vec<u64> {
        self.live().into_iter().filter(|&id| self.mode(id).as_deref() == Some("follower")).collect()
    }

    /// Panics (with the logs, through Drop) when a member exited by itself, or reports
    /// "standalone" although its zoo.cfg lists an ensemble: no point waiting for those.
    fn check_alive_and_in_ensemble(&mut self, id: u64, mode: Option<&str>) {
        let m = self.member_mut(id);
        if let Some(c) = m.child.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                m.child = None;
                panic!("server {id} exited by itself ({status}); {}", self.describe());
            }
        }
        if mode == Some("standalone") {
            panic!(
                "server {id} runs standalone although its zoo.cfg lists {} servers; {}",
                self.members.len(),
                self.describe()
            );
        }
    }

    /// Waits until the member serves; its mode, or None at the deadline. Panics if the member
    /// exits or runs standalone meanwhile.
    pub fn wait_mode(&mut self, id: u64, timeout: Duration) -> Option<String> {
        let mut mode = None;
        wait_until(timeout, || {
            mode = self.mode(id);
            self.check_alive_and_in_ensemble(id, mode.as_deref());
            mode.is_some()
        });
        mode
    }

    /// Waits until every live member has a mode and exactly one of them leads; the leader, or
    /// None at the deadline. Panics if a member exits or runs standalone meanwhile.
    ///
    /// Right after a leader dies its followers and observers may still report their old mode
    /// for a few ticks, so this cannot tell a stale "follower" from a new one; callers that
    /// need every member to have rejoined wait on the data (or on [`Ensemble::wait_mode`]).
    pub fn try_wait_modes(&mut self, timeout: Duration) -> Option<u64> {
        let mut leader = None;
        wait_until(timeout, || {
            let modes: Vec<(u64, Option<String>)> = self.live().into_iter().map(|id| (id, self.mode(id))).collect();
            for (id, mode) in &modes {
                self.check_alive_and_in_ensemble(*id, mode.as_deref());
            }
            if modes.is_empty() || modes.iter().any(|(_, m)| m.is_none()) {
                return false;
            }
            let leaders: Vec<u64> =
                modes.iter().filter(|(_, m)| m.as_deref() == Some("leader")).map(|(id, _)| *id).collect();
            leader = match leaders[..] {
                [one] => Some(one),
                _ => None,
            };
            leader.is_some()
        });
        leader
    }

    /// [`Ensemble::try_wait_modes`], panicking (with every member's state and log) at the
    /// deadline.
    pub fn wait_modes(&mut self, timeout: Duration) -> u64 {
        match self.try_wait_modes(timeout) {
            Some(l) => l,
            None => panic!("no single leader with every live server serving within {timeout:?}; {}", self.describe()),
        }
    }

    /// Every member's process state and mode, for failure messages.
    pub fn describe(&self) -> String {
        let states: Vec<String> = self
            .members
            .iter()
            .map(|m| {
                let state = match (&m.child, m.stopped) {
                    (None, _) => "down".to_string(),
                    (Some(_), true) => "stopped".to_string(),
                    (Some(_), false) => self.mode(m.id).unwrap_or_else(|| "not serving".into()),
                };
                format!("{}{}: {state}", m.id, if m.observer { " (observer)" } else { "" })
            })
            .collect();
        format!("{:?} ensemble in {}: {}", self.flavor, self.root.display(), states.join(", "))
    }

    /// Extra JVM flags for the ZooKeeper flavour's next starts (ignored for Paddock): for settings
    /// ZooKeeper reads only as system properties, such as `-Dreadonlymode.enabled=true`.
    pub fn set_zookeeper_flags(&mut self, flags: &[&str]) {
        self.zookeeper_flags = flags.iter().map(|f| f.to_string()).collect();
    }

    /// Appends `lines` to one member's zoo.cfg; they take effect at its next start. For settings
    /// that one member alone gets, such as a slow disk (`paddock.testFsyncDelayMs`).
    pub fn append_config(&self, id: u64, lines: &str) {
        let path = self.member(id).dir.join("zoo.cfg");
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).expect("open zoo.cfg");
        writeln!(f, "{lines}").unwrap_or_else(|e| panic!("append to {}: {e}", path.display()));
    }

    fn link(&self, from: u64, to: u64, kind: PortKind) -> &LinkProxy {
        self.links.get(&(from, to, kind)).unwrap_or_else(|| {
            panic!("no proxy from {from} to {to} ({kind:?}): build the ensemble with Ensemble::configure_proxied")
        })
    }

    /// Cuts the link between `a` and `b` both ways, on both the quorum and the election port:
    /// their forwarded connections are closed now and new ones are refused (accepted and closed
    /// at once) until [`Ensemble::heal`]. Returns once the cut is in force.
    pub fn cut(&self, a: u64, b: u64) {
        for (from, to) in [(a, b), (b, a)] {
            for kind in [PortKind::Quorum, PortKind::Election] {
                self.link(from, to, kind).cut();
            }
        }
    }

    /// Stalls the link between `a` and `b` both ways, on both ports ([`LinkProxy::stall`]):
    /// nothing crosses, and nothing is closed, until [`Ensemble::heal`].
    pub fn stall(&self, a: u64, b: u64) {
        for (from, to) in [(a, b), (b, a)] {
            for kind in [PortKind::Quorum, PortKind::Election] {
                self.link(from, to, kind).stall();
            }
        }
    }

    /// Forwards the link between `a` and `b` again, both ways (after a cut or a stall).
    pub fn heal(&self, a: u64, b: u64) {
        for (from, to) in [(a, b), (b, a)] {
            for kind in [PortKind::Quorum, PortKind::Election] {
                self.link(from, to, kind).heal();
            }
        }
    }

    /// Cuts `id` off from every other member (its client port stays reachable).
    pub fn isolate(&self, id: u64) {
        for other in self.ids().into_iter().filter(|&o| o != id) {
            self.cut(id, other);
        }
    }

    /// Stalls every link of `id` to the others ([`Ensemble::stall`]): a silent partition.
    pub fn isolate_silently(&self, id: u64) {
        for other in self.ids().into_iter().filter(|&o| o != id) {
            self.stall(id, other);
        }
    }

    /// Heals every cut or stalled link.
    pub fn heal_all(&self) {
        for p in self.links.values() {
            p.heal();
        }
    }

    /// Connections refused while cut, over every proxy from `from` to `to` (to show that a cut
    /// was tested, not just made).
    pub fn refused(&self, from: u64, to: u64) -> usize {
        [PortKind::Quorum, PortKind::Election]
            .iter()
            .filter_map(|&k| self.links.get(&(from, to, k)))
            .map(|p| p.shared.refused.load(Ordering::Relaxed))
            .sum()
    }

    /// The member's log so far (every run of it, each marked with "=== harness: start").
    pub fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.member(id).dir.join("server.log")).unwrap_or_default()
    }
}

/// The last `n` lines of a text.
fn tail(text: &str, n: usize) -> &str {
    let mut idx = text.len();
    for _ in 0..n {
        match text[..idx].rfind('\n') {
            Some(i) => idx = i,
            None => return text,
        }
    }
    &text[idx + 1..]
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        let description = if panicking { self.describe() } else { String::new() };
        for id in self.ids() {
            self.kill(id);
        }
        if !panicking {
            // PADDOCK_KEEP_TMP=1 keeps the directories of passing tests too, as tests/python does.
            if std::env::var("PADDOCK_KEEP_TMP").as_deref() == Ok("1") {
                eprintln!("ensemble kept in {}", self.root.display());
            } else {
                let _ = std::fs::remove_dir_all(&self.root);
            }
            return;
        }
        eprintln!("{description}\n(kept in {} for inspection)", self.root.display());
        // ZooKeeper logs at info are long: the tail of each member's log is what explains a
        // failure; the whole files stay in the kept directory.
        let lines = std::env::var("PADDOCK_ENSEMBLE_LOG_LINES").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
        for m in &self.members {
            let log = std::fs::read_to_string(m.dir.join("server.log")).unwrap_or_default();
            eprintln!(
                "---- server {} ({:?}{}) log, last {lines} lines of {} ----\n{}",
                m.id,
                self.flavor,
                if m.observer { ", observer" } else { "" },
                m.dir.join("server.log").display(),
                tail(&log, lines)
            );
        }
    }
}
