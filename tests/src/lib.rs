//! Harness for end-to-end tests: starts real `paddock` processes (and Apache ZooKeeper, the
//! reference) on free loopback ports, waits for them with deadlines, and kills them on drop,
//! whether the test passed or not.

pub mod ensemble;
pub mod linearizability;
pub mod sim;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The `paddock` binary under test: `PADDOCK_BIN`, else the workspace's release build.
pub fn paddock_bin() -> PathBuf {
    if let Ok(p) = std::env::var("PADDOCK_BIN") {
        return PathBuf::from(p);
    }
    let p = repo_root().join("target/release/paddock");
    assert!(p.exists(), "{} is missing: run `cargo build --release` first (scripts/test does)", p.display());
    p
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free loopback port")
}

/// Polls `cond` until it holds or `timeout` passes; true if it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10)); // poll interval; the deadline bounds the wait
    }
}

/// Which server a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Paddock,
    ZooKeeper,
}

/// Whether the server at `addr` opens a session within a second; the session is closed again,
/// so tests start with no session but their own. ZooKeeper accepts connections before it
/// serves them, so a bounded handshake, not a connect, tells that it is ready.
fn probe_session(addr: SocketAddr) -> bool {
    use node::proto::{op, ConnectRequest, ConnectResponse, Packet, Reader, Request, Writer};
    use std::io::Write;
    let attempt = || -> std::io::Result<bool> {
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        s.set_read_timeout(Some(Duration::from_secs(1)))?;
        let req = ConnectRequest::new_session(4000);
        let mut w = Writer::frame();
        req.encode(&mut w);
        s.write_all(&w.finish_frame())?;
        let body = node::proto::read_frame(&mut s, 1024)?;
        let ok = ConnectResponse::decode(&mut Reader::new(&body)).is_ok_and(|r| r.session_id != 0);
        if ok {
            s.write_all(&Packet { xid: 1, op: op::CLOSE_SESSION, request: Request::CloseSession }.encode())?;
            node::proto::read_frame(&mut s, 1024)?;
        }
        Ok(ok)
    };
    attempt().unwrap_or(false)
}

/// Starts `paddock server` on `dir/zoo.cfg`, logging to `dir/server.log` (appending, so the
/// log of every run of a restarted server is kept).
fn spawn_paddock(dir: &Path, cores: usize) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("server.log")).expect("log file");
    Command::new(paddock_bin())
        .arg("server")
        .arg("--cores")
        .arg(cores.to_string())
        .arg(dir.join("zoo.cfg"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn paddock")
}

/// A running server process with its own temp directory.
pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub flavor: Flavor,
}

/// The zoo.cfg every test server gets, plus `extra` lines.
pub fn test_config(dir: &Path, port: u16, extra: &str) -> String {
    format!(
        "tickTime=200\ninitLimit=10\nsyncLimit=5\ndataDir={}/data\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
         maxClientCnxns=0\n4lw.commands.whitelist=*\nextendedTypesEnabled=true\nadmin.enableServer=false\n\
         znode.container.checkIntervalMs=500\npreAllocSize=4096\n{extra}\n",
        dir.display()
    )
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("paddock-e2e-{tag}-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

impl ServerProcess {
    /// Starts Paddock with `cores` executors and the test config plus `extra` lines.
    pub fn paddock(cores: usize, extra: &str) -> ServerProcess {
        let dir = temp_dir("paddock");
        let port = free_port();
        std::fs::write(dir.join("zoo.cfg"), test_config(&dir, port, extra)).expect("write zoo.cfg");
        let child = spawn_paddock(&dir, cores);
        ServerProcess::ready(child, port, dir, Flavor::Paddock)
    }

    /// SIGKILLs the server and starts it again on the same directory and port.
    pub fn restart(&mut self, cores: usize) {
        self.kill();
        self.child = spawn_paddock(&self.dir, cores);
        self.wait_ready();
    }

    /// SIGKILLs the server and runs it again, expecting it to refuse to start: (exit code, log).
    /// A server that does start is killed after 30 s, so the test fails instead of hanging.
    pub fn restart_expecting_failure(&mut self) -> (Option<i32>, String) {
        self.kill();
        let out = Command::new("timeout")
            .arg("30")
            .arg(paddock_bin())
            .arg("server")
            .arg("--cores")
            .arg("1")
            .arg(self.dir.join("zoo.cfg"))
            .output()
            .expect("run paddock");
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// Starts Paddock on a directory that `prepare` fills first; it gets the directory and its
    /// zoo.cfg (already written, dataDir = `dir/data`), e.g. to import data before the start.
    pub fn paddock_prepared(cores: usize, extra: &str, prepare: impl FnOnce(&Path, &Path)) -> ServerProcess {
        let dir = temp_dir("paddock");
        let port = free_port();
        std::fs::write(dir.join("zoo.cfg"), test_config(&dir, port, extra)).expect("write zoo.cfg");
        prepare(&dir, &dir.join("zoo.cfg"));
        let child = spawn_paddock(&dir, cores);
        ServerProcess::ready(child, port, dir, Flavor::Paddock)
    }

    /// Sends SIGTERM (a clean stop) and waits for the process to exit.
    pub fn terminate(&mut self) {
        // SAFETY: signalling our own child process by its id.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
    }

    /// Starts Apache ZooKeeper 3.8 through `scripts/zookeeper-run` with the same config.
    pub fn zookeeper(extra: &str) -> ServerProcess {
        ServerProcess::zookeeper_prepared(extra, |_, _| {})
    }

    /// Starts ZooKeeper on a directory that `prepare` fills first (see `paddock_prepared`).
    pub fn zookeeper_prepared(extra: &str, prepare: impl FnOnce(&Path, &Path)) -> ServerProcess {
        let dir = temp_dir("zookeeper");
        let port = free_port();
        let cfg = dir.join("zoo.cfg");
        std::fs::write(&cfg, test_config(&dir, port, extra)).expect("write zoo.cfg");
        prepare(&dir, &cfg);
        let log = std::fs::File::create(dir.join("server.log")).expect("log file");
        let child = Command::new(repo_root().join("scripts/zookeeper-run"))
            .arg(&cfg)
            .arg("-Dznode.container.checkIntervalMs=500")
            .arg("-Dzookeeper.extendedTypesEnabled=true")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn scripts/zookeeper-run (needs Java and Debian's zookeeper package)");
        ServerProcess::ready(child, port, dir, Flavor::ZooKeeper)
    }

    fn ready(child: Child, port: u16, dir: PathBuf, flavor: Flavor) -> ServerProcess {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut s = ServerProcess { child, addr, dir, flavor };
        s.wait_ready();
        s
    }

    /// Waits until the server serves sessions, or panics with its log.
    fn wait_ready(&mut self) {
        let addr = self.addr;
        let child = &mut self.child;
        // ZooKeeper answers ruok before it serves sessions, so wait for a real handshake.
        let up = wait_until(Duration::from_secs(60), || {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            probe_session(addr)
        });
        let exited = self.child.try_wait().ok().flatten();
        assert!(up && exited.is_none(), "{:?} did not start (exit {exited:?}); log:\n{}", self.flavor, self.log());
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// "127.0.0.1:port", as clients take it.
    pub fn connect_string(&self) -> String {
        self.addr.to_string()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The server's process id (the JVM's for ZooKeeper, which `zookeeper-run` execs): tests
    /// read its memory from `/proc`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's resident memory now and at its peak, in bytes (`VmRSS`, `VmHWM` of
    /// `/proc/<pid>/status`): the peak shows what an attack cost even after it ended.
    pub fn rss_now_and_peak_bytes(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("the server is running");
        let kib = |field: &str| -> u64 {
            let line = status.lines().find_map(|l| l.strip_prefix(field)).unwrap_or_else(|| panic!("{field} missing"));
            line.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{field}: {line}"))
        };
        (kib("VmRSS:") * 1024, kib("VmHWM:") * 1024)
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("server log ({:?}, kept in {}):\n{}", self.flavor, self.dir.display(), self.log());
        }
    }
}

/// A small deterministic generator (xorshift), so a failing round can be replayed from its seed.
pub struct Rng(pub u64);

impl Rng {
    /// The next pseudo-random number.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
