//! `paddock bench load`: a load generator that speaks ZooKeeper's protocol through
//! `node::proto`, so the same run drives Paddock and Apache ZooKeeper.
//!
//! A run sets up its key space under `/bench-<pid>`, opens every session (`session.rs`: one
//! connection and two threads each), and records the samples they send back in HdrHistograms
//! on this thread, printing a progress line a second. Without `--rate` the loop is closed: a
//! reply frees a slot for the next request, and latency runs from the actual send. With `--rate`
//! every op has an intended send time on a fixed schedule and latency runs from that time, so a
//! server that stalls is charged for every request it held back (no coordinated omission). Then
//! it removes the key space and reports.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::code;
use node::proto::{op, Request, Response};

use crate::procstat::{self, CpuSample};
use crate::report::{CpuUse, Report, Tally};
use crate::session::{self, Clock};
use crate::wire::{handshake, Conn};

/// Sessions one run may open: two threads each, and ZooKeeper's default `maxClientCnxns` is 60
/// per address, so far more than this is a configuration mistake rather than a benchmark.
pub const SESSIONS_MAX: usize = 1024;
/// Requests in flight per session.
pub const IN_FLIGHT_MAX: usize = 1024;
/// Largest value: ZooKeeper's default `jute.maxbuffer` (1 MiB - 1) less room for the path.
pub const VALUE_BYTES_MAX: usize = 1_000_000;
/// Keys in the key space; set up one create each.
pub const KEYS_MAX: usize = 10_000_000;
/// Longest run, warmup included: a bound on every run, whatever the options.
pub const RUN_SECONDS_MAX: f64 = 24.0 * 3600.0;
/// The time bound of a run given only `--ops`.
pub const OPS_ONLY_DURATION_S: f64 = 600.0;
/// The time bound of a run given neither `--ops` nor `--duration`.
pub const DEFAULT_DURATION_S: f64 = 10.0;

/// Batches queued to the main thread per session before receivers wait for it.
const SAMPLE_QUEUE_PER_SESSION: usize = 4;
/// Requests in flight during key-space setup and removal, on one connection.
const SETUP_WINDOW: usize = 512;
/// With `--rate`, how long past the measured window senders may still send the ops a server
/// that fell behind held back; what is left then is reported as unsent.
const RATE_DRAIN_GRACE: Duration = Duration::from_secs(2);

/// What each op of the run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OpsKind {
    /// getData of a random key.
    Get,
    /// setData of a random key (version -1).
    Set,
    /// create of a fresh node, then its delete: the write path with tree growth and shrinkage.
    CreateDelete,
    /// multi(create, setData of a random key, delete): one txn of three ops.
    Multi,
    /// `--read-pct`% getData, the rest setData: the usual read-mostly coordination load.
    Mixed,
}

impl OpsKind {
    /// The name the option takes, for reports.
    pub fn name(self) -> &'static str {
        match self {
            OpsKind::Get => "get",
            OpsKind::Set => "set",
            OpsKind::CreateDelete => "create-delete",
            OpsKind::Multi => "multi",
            OpsKind::Mixed => "mixed",
        }
    }

    /// Whether the run reads or writes the `k<i>` keys, which must then exist beforehand.
    fn uses_keys(self) -> bool {
        !matches!(self, OpsKind::CreateDelete)
    }
}

/// Options of `paddock bench load`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// Servers to spread sessions over, round robin (host:port[,host:port...]).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2181")]
    pub servers: Vec<String>,
    /// Sessions, one TCP connection each.
    #[arg(long, default_value_t = 8)]
    pub sessions: usize,
    /// Requests in flight per session (pipelined).
    #[arg(long, default_value_t = 16)]
    pub in_flight: usize,
    /// Seconds measured after the warmup [default: 10, or a cap of 600 with --ops].
    #[arg(long)]
    pub duration: Option<f64>,
    /// Measured ops after which the run stops (or at --duration, whichever comes first).
    #[arg(long)]
    pub ops: Option<u64>,
    /// Percentage of getData in `--ops-kind mixed`; the rest are setData.
    #[arg(long, default_value_t = 90)]
    pub read_pct: u8,
    /// Bytes of data in each key and in each setData and create.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Keys `<prefix>/k<i>` that get, set and multi pick from uniformly.
    #[arg(long, default_value_t = 1000)]
    pub keys: usize,
    /// What each op is.
    #[arg(long, value_enum, default_value_t = OpsKind::Mixed)]
    pub ops_kind: OpsKind,
    /// Seconds of load before measuring starts; not recorded.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Target total ops/s: open loop, latency from each op's intended send time.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Print the result as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Write the latency distribution of every op (ms) in HdrHistogram's percentile format.
    #[arg(long)]
    pub hist_out: Option<PathBuf>,
    /// Leave the key space in place afterwards.
    #[arg(long)]
    pub keep: bool,
    /// Pids whose CPU seconds (from /proc) over the measured window go into the report.
    #[arg(long, value_delimiter = ',')]
    pub cpu_pids: Vec<u32>,
    /// Exit 1 when more than this percentage of the measured ops failed.
    #[arg(long, default_value_t = 1.0)]
    pub max_error_pct: f64,
}

/// Why a run could not be made or finished.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// An option out of its bounds, or threads that could not start.
    #[error("{0}")]
    Usage(String),
    /// A server refused the connection or the session, or does not resolve: nothing was measured.
    #[error("cannot reach {server}: {why}")]
    Unreachable {
        /// The server as given in `--servers`.
        server: String,
        /// The socket or protocol error.
        why: String,
    },
    /// The key space could not be created (a server that answers, but not as ZooKeeper would).
    #[error("setting up the key space on {server}: {why}")]
    Setup {
        /// The server the key space is created on (the first of `--servers`).
        server: String,
        /// The error codes or the socket error.
        why: String,
    },
}

/// The checked options: every bound applied, times resolved.
pub(crate) struct Plan {
    pub servers: Vec<(String, SocketAddr)>,
    pub kind: OpsKind,
    pub read_pct: u64,
    pub keys: u64,
    pub prefix: String,
    pub value: Vec<u8>,
    pub in_flight: usize,
    pub sessions: usize,
    /// Per session, between two intended sends; None is a closed loop.
    pub interval: Option<Duration>,
    pub warmup: Duration,
    pub duration: Duration,
    pub ops_limit: Option<u64>,
}

impl Plan {
    fn from_args(args: &LoadArgs) -> Result<Plan, LoadError> {
        let usage = |m: String| Err(LoadError::Usage(m));
        if !(1..=SESSIONS_MAX).contains(&args.sessions) {
            return usage(format!("--sessions must be 1..={SESSIONS_MAX}"));
        }
        if !(1..=IN_FLIGHT_MAX).contains(&args.in_flight) {
            return usage(format!("--in-flight must be 1..={IN_FLIGHT_MAX}"));
        }
        if args.read_pct > 100 {
            return usage("--read-pct must be 0..=100".into());
        }
        if args.value_size > VALUE_BYTES_MAX {
            return usage(format!("--value-size must be at most {VALUE_BYTES_MAX}"));
        }
        if !(1..=KEYS_MAX).contains(&args.keys) {
            return usage(format!("--keys must be 1..={KEYS_MAX}"));
        }
        if args.ops == Some(0) {
            return usage("--ops must be at least 1".into());
        }
        let duration_s =
            args.duration.unwrap_or(if args.ops.is_some() { OPS_ONLY_DURATION_S } else { DEFAULT_DURATION_S });
        let run_s = duration_s + args.warmup;
        if !(duration_s > 0.0 && args.warmup >= 0.0 && run_s <= RUN_SECONDS_MAX) {
            return usage(format!("--duration must be > 0 and --warmup >= 0, together at most {RUN_SECONDS_MAX} s"));
        }
        if !(0.0..=100.0).contains(&args.max_error_pct) {
            return usage("--max-error-pct must be 0..=100".into());
        }
        let interval = match args.rate {
            None => None,
            Some(r) if r.is_finite() && r > 0.0 && (args.sessions as f64 / r) >= 1e-9 => {
                Some(Duration::from_secs_f64(args.sessions as f64 / r))
            }
            Some(_) => return usage("--rate must be a positive number of ops/s".into()),
        };
        if args.servers.is_empty() {
            return usage("--servers needs at least one host:port".into());
        }
        let mut servers = Vec::new();
        for s in &args.servers {
            let addr = s
                .to_socket_addrs()
                .map_err(|e| e.to_string())
                .and_then(|mut a| a.next().ok_or_else(|| "no address".to_string()))
                .map_err(|why| LoadError::Unreachable { server: s.clone(), why })?;
            servers.push((s.clone(), addr));
        }
        Ok(Plan {
            servers,
            kind: args.ops_kind,
            read_pct: u64::from(args.read_pct),
            keys: args.keys as u64,
            prefix: format!("/bench-{}", std::process::id()),
            value: (0..args.value_size).map(|i| b'a' + (i % 26) as u8).collect(),
            in_flight: args.in_flight,
            sessions: args.sessions,
            interval,
            warmup: Duration::from_secs_f64(args.warmup),
            duration: Duration::from_secs_f64(duration_s),
            ops_limit: args.ops,
        })
    }

    pub(crate) fn key(&self, i: u64) -> String {
        format!("{}/k{i}", self.prefix)
    }
}

/// Codes other than `allowed` in `codes`, as "CODE×count" for a message; None when all allowed.
fn unexpected(codes: &BTreeMap<i32, u64>, allowed: &[i32]) -> Option<String> {
    let bad: Vec<String> = codes
        .iter()
        .filter(|(c, _)| !allowed.contains(c))
        .map(|(c, n)| format!("{} ({c}) x{n}", crate::report::code_name(*c)))
        .collect();
    (!bad.is_empty()).then(|| bad.join(", "))
}

/// Creates the prefix and, when the run uses them, the keys with `--value-size` bytes each.
fn set_up(plan: &Plan) -> Result<(), LoadError> {
    let (server, addr) = &plan.servers[0];
    let mut conn =
        Conn::open(*addr).map_err(|e| LoadError::Unreachable { server: server.clone(), why: e.to_string() })?;
    let setup_err = |why: String| LoadError::Setup { server: server.clone(), why };
    let acl = engine::acl::open_acl_unsafe();
    let create =
        |path: String, data: Vec<u8>| (op::CREATE, Request::Create { path, data, acl: acl.clone(), flags: 0, ttl: -1 });
    let ok = [code::OK, code::NODE_EXISTS];
    let codes = conn
        .pipeline(std::iter::once(create(plan.prefix.clone(), Vec::new())), 1)
        .map_err(|e| setup_err(e.to_string()))?;
    if let Some(bad) = unexpected(&codes, &ok) {
        return Err(setup_err(format!("create {}: {bad}", plan.prefix)));
    }
    if plan.kind.uses_keys() {
        let keys = (0..plan.keys).map(|i| create(plan.key(i), plan.value.clone()));
        let codes = conn.pipeline(keys, SETUP_WINDOW).map_err(|e| setup_err(e.to_string()))?;
        if let Some(bad) = unexpected(&codes, &ok) {
            return Err(setup_err(format!("create keys: {bad}")));
        }
    }
    conn.close();
    Ok(())
}

/// Removes the key space: the keys by name, then whatever else is left under the prefix
/// (a create-delete pair cut by the end of the run), then the prefix.
fn tear_down(plan: &Plan) -> Result<(), String> {
    let (_, addr) = &plan.servers[0];
    let mut conn = Conn::open(*addr).map_err(|e| e.to_string())?;
    let delete = |path: String| (op::DELETE, Request::Delete { path, version: -1 });
    let gone = [code::OK, code::NO_NODE];
    if plan.kind.uses_keys() {
        let codes =
            conn.pipeline((0..plan.keys).map(|i| delete(plan.key(i))), SETUP_WINDOW).map_err(|e| e.to_string())?;
        if let Some(bad) = unexpected(&codes, &gone) {
            return Err(format!("delete keys: {bad}"));
        }
    }
    let listing = conn
        .call(op::GET_CHILDREN, Request::GetChildren { path: plan.prefix.clone(), watch: false })
        .map_err(|e| e.to_string())?;
    if let (code::OK, Some(Response::Children(children))) = listing {
        let rest = children.into_iter().map(|c| delete(format!("{}/{c}", plan.prefix)));
        let codes = conn.pipeline(rest, SETUP_WINDOW).map_err(|e| e.to_string())?;
        if let Some(bad) = unexpected(&codes, &gone) {
            return Err(format!("delete leftovers: {bad}"));
        }
    }
    let codes = conn.pipeline(std::iter::once(delete(plan.prefix.clone())), 1).map_err(|e| e.to_string())?;
    if let Some(bad) = unexpected(&codes, &gone) {
        return Err(format!("delete {}: {bad}", plan.prefix));
    }
    conn.close();
    Ok(())
}

/// Runs a whole benchmark: set up, load with progress on stderr, tear down. The report covers
/// the measured phase only.
pub fn run(args: &LoadArgs) -> Result<Report, LoadError> {
    let plan = Arc::new(Plan::from_args(args)?);
    set_up(&plan)?;
    let result = drive(&plan, args);
    if !args.keep {
        if let Err(e) = tear_down(&plan) {
            eprintln!("paddock bench load: could not remove {}: {e}", plan.prefix);
        }
    }
    result
}

/// Opens every session, runs the load and gathers the samples.
fn drive(plan: &Arc<Plan>, args: &LoadArgs) -> Result<Report, LoadError> {
    let mut streams = Vec::with_capacity(plan.sessions);
    for i in 0..plan.sessions {
        let (server, addr) = &plan.servers[i % plan.servers.len()];
        let s = handshake(*addr).map_err(|e| LoadError::Unreachable { server: server.clone(), why: e.to_string() })?;
        streams.push(s);
    }
    let start = Instant::now();
    let clock = Arc::new(Clock {
        start,
        measure_start: start + plan.warmup,
        deadline: start + plan.warmup + plan.duration,
        stop: AtomicBool::new(false),
        issued: AtomicU64::new(0),
        unsent: AtomicU64::new(0),
    });
    // A closed loop stops sending at the end of the window; a schedule may catch up a little.
    let stop_at = clock.deadline + if plan.interval.is_some() { RATE_DRAIN_GRACE } else { Duration::ZERO };
    let (samples_tx, samples_rx) = mpsc::sync_channel(SAMPLE_QUEUE_PER_SESSION * plan.sessions);
    let mut sessions = Vec::with_capacity(plan.sessions);
    for (i, stream) in streams.into_iter().enumerate() {
        let started = session::start(i, stream, plan, &clock, &samples_tx);
        match started {
            Ok(s) => sessions.push(s),
            Err(e) => {
                clock.stop.store(true, Ordering::Relaxed);
                return Err(LoadError::Usage(format!("cannot start session threads: {e}")));
            }
        }
    }
    drop(samples_tx);

    let mut tally = Tally::new();
    let mut warm = Tally::new();
    let mut next_tick = start + Duration::from_secs(1);
    let mut interval_ops = 0u64;
    // The servers' pids, then our own: sampled at the start and the end of the measured window.
    let pids: Vec<u32> = args.cpu_pids.iter().copied().chain(std::iter::once(std::process::id())).collect();
    let mut cpu_start: Option<CpuSample> = None;
    let mut cpu_used: Option<Vec<Option<f64>>> = None;
    loop {
        let now = Instant::now();
        if now >= stop_at {
            clock.stop.store(true, Ordering::Relaxed);
        }
        if cpu_start.is_none() && now >= clock.measure_start {
            cpu_start = Some(CpuSample::take(&pids));
        }
        if let (Some(from), None, true) = (&cpu_start, &cpu_used, now >= clock.deadline) {
            cpu_used = Some(CpuSample::take(&pids).since(from));
        }
        let next_cpu_sample = if cpu_start.is_none() { clock.measure_start } else { clock.deadline };
        let wait = next_tick.min(next_cpu_sample).saturating_duration_since(now).min(Duration::from_millis(200));
        match samples_rx.recv_timeout(wait) {
            Ok(batch) => {
                interval_ops += batch.len() as u64;
                for s in batch {
                    if s.measured {
                        tally.add(&s);
                    } else {
                        warm.add(&s);
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let now = Instant::now();
        if now >= next_tick {
            let t = now.duration_since(start).as_secs_f64();
            let measuring = !tally.all.is_empty() || tally.error_count() > 0;
            // p99 and errors are of the phase so far: the warmup's until measuring begins.
            let (label, shown) = if measuring { ("", &tally) } else { ("  (warmup)", &warm) };
            eprintln!(
                "[{t:6.1}s] {interval_ops:>9} ops/s  p99 {:>9.3} ms  errors {:>6}{label}",
                shown.all.value_at_quantile(0.99) as f64 / 1000.0,
                shown.error_count(),
            );
            interval_ops = 0;
            next_tick += Duration::from_secs(1);
        }
    }
    let mut sessions_lost = 0;
    for s in sessions {
        for t in s.threads {
            let _ = t.join();
        }
        sessions_lost += usize::from(s.dead.load(Ordering::Relaxed));
    }
    // The measured phase ends with its last reply: early when bounded by --ops, after the window
    // when a server that fell behind a --rate schedule answered late.
    let answered = tally.last_completed.map(|t| t.saturating_duration_since(clock.measure_start));
    let elapsed = match (plan.ops_limit, answered) {
        (Some(_), Some(d)) => d.min(plan.duration),
        (None, Some(d)) => d.max(plan.duration),
        (_, None) => plan.duration,
    };
    let servers = plan.servers.iter().map(|(s, _)| s.clone()).collect();
    let unsent = clock.unsent.load(Ordering::Relaxed);
    let mut report = Report::new(args, servers, elapsed, sessions_lost, unsent, tally);
    if !args.cpu_pids.is_empty() {
        // A run cut short by --ops ends before the window does: charge what it used until now.
        let used = match (cpu_used, &cpu_start) {
            (Some(u), _) => u,
            (None, Some(from)) => CpuSample::take(&pids).since(from),
            (None, None) => vec![None; pids.len()],
        };
        let (client, servers) = used.split_last().map_or((None, &[][..]), |(c, s)| (*c, s));
        report.cpu = Some(CpuUse {
            pids: args.cpu_pids.clone(),
            server_s: servers.to_vec(),
            server_rss_bytes: args.cpu_pids.iter().map(|&p| procstat::rss_bytes(p)).collect(),
            client_s: client.unwrap_or(0.0),
        });
    }
    Ok(report)
}

/// `paddock bench load` as a command: runs, prints the table (or JSON), writes the histogram,
/// and turns the outcome into the exit code (2: unreachable or bad options; 1: errors above
/// `--max-error-pct`, a session lost, no op completed, or set-up failed).
pub fn main(args: &LoadArgs) -> ExitCode {
    let report = match run(args) {
        Ok(r) => r,
        Err(e @ (LoadError::Unreachable { .. } | LoadError::Usage(_))) => {
            eprintln!("paddock bench load: {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("paddock bench load: {e}");
            return ExitCode::from(1);
        }
    };
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.table());
    }
    if let Some(path) = &args.hist_out {
        if let Err(e) = std::fs::write(path, report.percentile_distribution()) {
            eprintln!("paddock bench load: cannot write {}: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    if report.ops() == 0 {
        eprintln!("paddock bench load: no op completed");
        return ExitCode::from(1);
    }
    if report.sessions_lost > 0 {
        // The load was not what was asked for: the numbers describe a different run.
        eprintln!("paddock bench load: {} of {} sessions lost during the run", report.sessions_lost, report.sessions);
        return ExitCode::from(1);
    }
    if report.error_pct() > args.max_error_pct {
        eprintln!(
            "paddock bench load: {:.3}% of ops failed, above --max-error-pct {}",
            report.error_pct(),
            args.max_error_pct
        );
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
