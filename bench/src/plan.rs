//! `paddock bench plan`: capacity planning. A calibration run on the machine at hand measures
//! what each kind of op costs each role in CPU and latency (standalone and 3 voters, real
//! `paddock server` processes driven by the load generator in this process); a linear model
//! then predicts throughput and p99 for any number of voters and observers and any read mix.
//!
//! The model (ARCHITECTURE.md explains it and PERF.md checks it against measurements):
//! clients spread evenly over the n = voters + observers servers; a read costs `read` CPU on
//! the server that takes it; a write costs the leader `write_standalone + (n-1) * per_learner`
//! and every learner `learner`; the load generator costs `client_*` per op. Throughput is the
//! smallest of the CPU bounds (all processes on `--cores` shared cores, or one core per server
//! with `--dedicated`) and the concurrency bound (requests in flight / unloaded latency). p99 is
//! Little's law at that throughput times the p99/mean ratio measured under load; with `--rate`,
//! the unloaded p99 plus an M/M/1 queueing term.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::load::{self, LoadArgs, OpsKind};
use crate::report::Report;

/// Seconds measured per calibration load.
const CALIBRATION_RUN_S: f64 = 3.0;
/// How long a calibration server may take to serve (and an ensemble to elect).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Options of `paddock bench plan`.
#[derive(Debug, Clone, clap::Args)]
pub struct PlanArgs {
    /// Voting servers.
    #[arg(long, default_value_t = 3)]
    pub voters: usize,
    /// Observers (serve reads, apply every write, never vote).
    #[arg(long, default_value_t = 0)]
    pub observers: usize,
    /// Percentage of reads in the load.
    #[arg(long, default_value_t = 90)]
    pub read_pct: u8,
    /// Bytes per value; a calibration made at another size is redone.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Client sessions (closed loop).
    #[arg(long, default_value_t = 8)]
    pub sessions: usize,
    /// Requests in flight per session.
    #[arg(long, default_value_t = 16)]
    pub in_flight: usize,
    /// Offered load in ops/s: predict p99 at this rate instead of at saturation.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Cores that every server and the load generator share [default: this machine's].
    #[arg(long)]
    pub cores: Option<f64>,
    /// Each server on a core of its own and the clients elsewhere (a production layout).
    #[arg(long)]
    pub dedicated: bool,
    /// Read the calibration from this file instead of measuring (made with --save).
    #[arg(long)]
    pub calibration: Option<PathBuf>,
    /// Write the calibration to this file.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Calibrate (and --save) only; predict nothing.
    #[arg(long)]
    pub calibrate_only: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Per-op costs measured on this machine: CPU seconds per op, latencies in ms.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Calibration {
    pub value_size: f64,
    /// Server CPU per read.
    pub read_cpu_s: f64,
    /// Standalone server CPU per write: request, txn, log, reply.
    pub write_standalone_cpu_s: f64,
    /// The same on a server with one executor (`--cores 1`): the unit of `--dedicated`.
    pub read_one_core_cpu_s: f64,
    pub write_one_core_cpu_s: f64,
    /// Leader CPU per write per learner: proposal, ack, commit.
    pub per_learner_cpu_s: f64,
    /// Learner CPU per write: log, ack, apply, and its share of forwarding.
    pub learner_cpu_s: f64,
    /// Load generator CPU per read and per write.
    pub client_read_cpu_s: f64,
    pub client_write_cpu_s: f64,
    /// One client, one request at a time: a read, a standalone write, a 3-voter write.
    pub read_ms: f64,
    pub write_standalone_ms: f64,
    pub write_quorum_ms: f64,
    /// p99 / mean latency under saturating closed-loop load: reads, 3-voter writes, and
    /// standalone writes.
    pub read_p99_over_mean: f64,
    pub write_p99_over_mean: f64,
    pub write_standalone_p99_over_mean: f64,
}

impl Calibration {
    /// The calibration as a JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// Reads what `to_json` wrote; a missing or non-numeric field is an error.
    pub fn from_json(v: &serde_json::Value) -> Result<Calibration, String> {
        Calibration::deserialize(v).map_err(|e| format!("calibration file: {e}"))
    }
}

/// A topology and load to predict.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    pub voters: usize,
    pub observers: usize,
    pub read_fraction: f64,
    pub in_flight_total: f64,
    /// Client sessions the requests in flight are spread over.
    pub sessions: usize,
    /// Shared cores, or None for a core per server with clients elsewhere.
    pub shared_cores: Option<f64>,
    pub rate: Option<f64>,
}

/// What the model predicts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    pub throughput_ops_s: f64,
    /// Which bound sets the throughput.
    pub bound: &'static str,
    pub p99_ms: f64,
    /// CPU per op of the leader, of each learner, of the clients (s).
    pub leader_cpu_s: f64,
    pub learner_cpu_s: f64,
    pub client_cpu_s: f64,
}

/// The model: see the module documentation.
pub fn predict(c: &Calibration, s: &Scenario) -> Prediction {
    let n = (s.voters + s.observers).max(1) as f64;
    let (r, w) = (s.read_fraction, 1.0 - s.read_fraction);
    // A core per server means one executor per server; a shared machine runs a standalone
    // server on every core (ensemble members on one each, as bench/compare.sh does).
    let one_core = s.shared_cores.is_none() || n > 1.0;
    let (read, write) = if one_core {
        (c.read_one_core_cpu_s, c.write_one_core_cpu_s)
    } else {
        (c.read_cpu_s, c.write_standalone_cpu_s)
    };
    let leader = r * read / n + w * (write + (n - 1.0) * c.per_learner_cpu_s);
    let learner = if n > 1.0 { r * read / n + w * c.learner_cpu_s } else { 0.0 };
    let client = r * c.client_read_cpu_s + w * c.client_write_cpu_s;
    let (cpu_bound, busy_per_op) = match s.shared_cores {
        Some(k) => {
            let total = leader + (n - 1.0) * learner + client;
            (k / total, total / k)
        }
        None => {
            let worst = leader.max(learner);
            (1.0 / worst, worst)
        }
    };
    let write_ms = if n > 1.0 { c.write_quorum_ms } else { c.write_standalone_ms };
    // A session answers in order, so once it has a write in flight (in-flight × write share ≥ 1)
    // its reads wait for that write: the latency that gates a slot is mostly the write's.
    let per_session = s.in_flight_total / s.sessions.max(1) as f64;
    let gated_by_write = (per_session * w).min(1.0);
    let unloaded_ms = c.read_ms + gated_by_write * (write_ms - c.read_ms).max(0.0);
    let concurrency_bound = s.in_flight_total / (unloaded_ms / 1e3);
    // Closed loop: each op costs its share of the bottleneck plus its unloaded latency spread
    // over the requests in flight (X = 1 / (1/cpu_bound + latency/in_flight)).
    let throughput = 1.0 / (1.0 / cpu_bound + 1.0 / concurrency_bound);
    let bound = if cpu_bound <= concurrency_bound { "cpu" } else { "concurrency" };
    let write_ratio = if n > 1.0 { c.write_p99_over_mean } else { c.write_standalone_p99_over_mean };
    let ratio = r * c.read_p99_over_mean + w * write_ratio;
    let p99_ms = match s.rate {
        None => s.in_flight_total / throughput * 1e3 * ratio,
        Some(rate) => {
            let rho = rate / cpu_bound;
            if rho >= 1.0 {
                f64::INFINITY
            } else {
                // Unloaded p99 (the measured tail shape on the mean) plus M/M/1 waiting at p99.
                unloaded_ms * ratio.min(3.0) + 100f64.ln() * busy_per_op * 1e3 * rho / (1.0 - rho)
            }
        }
    };
    Prediction {
        throughput_ops_s: throughput,
        bound,
        p99_ms,
        leader_cpu_s: leader,
        learner_cpu_s: learner,
        client_cpu_s: client,
    }
}

/// Paddock servers started by the calibration, killed when dropped.
struct Servers {
    dir: PathBuf,
    children: Vec<Child>,
    addrs: Vec<String>,
}

impl Drop for Servers {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// Starts `count` servers (standalone when 1, else voters) of this binary, and
/// waits until they serve and, for an ensemble, one leads.
fn start(count: usize, one_core: bool, tag: &str) -> Result<Servers, String> {
    let dir = std::env::temp_dir().join(format!("paddock-plan-{}-{tag}", std::process::id()));
    let mut servers = Servers { dir: dir.clone(), children: Vec::new(), addrs: Vec::new() };
    let ports: Vec<[u16; 3]> =
        (0..count).map(|_| Ok([free_port()?, free_port()?, free_port()?])).collect::<Result<_, String>>()?;
    let peers: String = if count > 1 {
        ports.iter().enumerate().map(|(i, p)| format!("server.{}=127.0.0.1:{}:{}\n", i + 1, p[1], p[2])).collect()
    } else {
        String::new()
    };
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    for (i, p) in ports.iter().enumerate() {
        let home = dir.join(format!("s{}", i + 1));
        std::fs::create_dir_all(home.join("data")).map_err(|e| e.to_string())?;
        std::fs::write(home.join("data/myid"), format!("{}\n", i + 1)).map_err(|e| e.to_string())?;
        let cfg = format!(
            "tickTime=200\ninitLimit=20\nsyncLimit=10\ndataDir={0}/data\ndataLogDir={0}/log\nclientPort={1}\n\
             clientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\nmaxClientCnxns=0\n{peers}",
            home.display(),
            p[0]
        );
        let cfg_path = home.join("zoo.cfg");
        std::fs::write(&cfg_path, cfg).map_err(|e| e.to_string())?;
        // As bench/compare.sh runs them: a standalone server on every core, ensemble members
        // sharing the machine with one executor each.
        let cores: &[&str] = if one_core { &["--cores", "1"] } else { &[] };
        let child = Command::new(&exe)
            .arg("server")
            .args(cores)
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        servers.children.push(child);
        servers.addrs.push(format!("127.0.0.1:{}", p[0]));
    }
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        let modes: Vec<Option<String>> = servers.addrs.iter().map(|a| crate::election::mode(a)).collect();
        let serving = modes.iter().all(|m| m.is_some());
        let leaders = modes.iter().filter(|m| m.as_deref() == Some("leader")).count();
        if serving && (count == 1 || leaders == 1) && servers.addrs.iter().all(|a| crate::ready::answers(a)) {
            return Ok(servers);
        }
        std::thread::sleep(Duration::from_millis(20)); // polling interval; the deadline bounds it
    }
    Err(format!("calibration servers in {} did not start within {START_TIMEOUT:?}", dir.display()))
}

impl Servers {
    fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// Index of the leader (0 for a standalone server).
    fn leader(&self) -> usize {
        self.addrs.iter().position(|a| crate::election::mode(a).as_deref() == Some("leader")).unwrap_or(0)
    }

    /// One load against `addrs` (in-process), with CPU charged to these servers.
    fn load(
        &self,
        addrs: Vec<String>,
        kind: OpsKind,
        value_size: usize,
        concurrency: (usize, usize),
    ) -> Result<Report, String> {
        let args = LoadArgs {
            servers: addrs,
            sessions: concurrency.0,
            in_flight: concurrency.1,
            duration: Some(CALIBRATION_RUN_S),
            ops: None,
            read_pct: 90,
            value_size,
            keys: 1000,
            ops_kind: kind,
            warmup: 0.5,
            rate: None,
            json: false,
            hist_out: None,
            keep: false,
            max_error_pct: 0.0,
            cpu_pids: self.pids(),
        };
        let r = load::run(&args).map_err(|e| e.to_string())?;
        if r.ops() == 0 || r.tally.error_count() > 0 {
            return Err(format!("calibration {} load had errors or no ops", kind.name()));
        }
        Ok(r)
    }
}

/// CPU seconds per op of each server, and of the load generator.
fn cpu_per_op(r: &Report) -> (Vec<f64>, f64) {
    let ops = r.ops().max(1) as f64;
    let cpu = r.cpu.as_ref();
    let servers = cpu.map(|c| c.server_s.iter().map(|s| s.unwrap_or(0.0) / ops).collect()).unwrap_or_default();
    (servers, cpu.map_or(0.0, |c| c.client_s / ops))
}

fn mean_ms(r: &Report) -> f64 {
    r.tally.all.mean() / 1000.0
}

fn p99_ms(r: &Report) -> f64 {
    r.tally.all.value_at_quantile(0.99) as f64 / 1000.0
}

/// Measures the per-op costs (about 30 s).
pub fn calibrate(value_size: usize) -> Result<Calibration, String> {
    const SATURATING: (usize, usize) = (8, 16);
    const SINGLE: (usize, usize) = (1, 1);
    let solo = start(1, false, "standalone")?;
    eprintln!("calibrating: standalone reads and writes");
    let reads = solo.load(solo.addrs.clone(), OpsKind::Get, value_size, SATURATING)?;
    let writes = solo.load(solo.addrs.clone(), OpsKind::Set, value_size, SATURATING)?;
    let one_read = solo.load(solo.addrs.clone(), OpsKind::Get, value_size, SINGLE)?;
    let one_write = solo.load(solo.addrs.clone(), OpsKind::Set, value_size, SINGLE)?;
    drop(solo);
    eprintln!("calibrating: a standalone server on one executor");
    let lone = start(1, true, "one-core")?;
    let lone_reads = lone.load(lone.addrs.clone(), OpsKind::Get, value_size, SATURATING)?;
    let lone_writes = lone.load(lone.addrs.clone(), OpsKind::Set, value_size, SATURATING)?;
    drop(lone);
    eprintln!("calibrating: 3 voters, writes");
    let trio = start(3, true, "voters")?;
    let leader = trio.leader();
    let quorum_writes = trio.load(trio.addrs.clone(), OpsKind::Set, value_size, SATURATING)?;
    let one_quorum_write = trio.load(vec![trio.addrs[leader].clone()], OpsKind::Set, value_size, SINGLE)?;
    drop(trio);

    let (read_cpu, client_read) = cpu_per_op(&reads);
    let (write_cpu, client_write) = cpu_per_op(&writes);
    let (quorum_cpu, _) = cpu_per_op(&quorum_writes);
    let leader_cpu = quorum_cpu.get(leader).copied().unwrap_or(0.0);
    let learners: Vec<f64> = quorum_cpu.iter().enumerate().filter(|(i, _)| *i != leader).map(|(_, c)| *c).collect();
    let learner_cpu = learners.iter().sum::<f64>() / learners.len().max(1) as f64;
    let standalone = write_cpu.first().copied().unwrap_or(0.0);
    let first = |r: &Report| cpu_per_op(r).0.first().copied().unwrap_or(0.0);
    let (read_one_core, write_one_core) = (first(&lone_reads), first(&lone_writes));
    Ok(Calibration {
        value_size: value_size as f64,
        read_cpu_s: read_cpu.first().copied().unwrap_or(0.0),
        write_standalone_cpu_s: standalone,
        // Ensemble members run one executor each: compare the leader with a one-executor server.
        per_learner_cpu_s: ((leader_cpu - write_one_core) / 2.0).max(0.0),
        read_one_core_cpu_s: read_one_core,
        write_one_core_cpu_s: write_one_core,
        learner_cpu_s: learner_cpu,
        client_read_cpu_s: client_read,
        client_write_cpu_s: client_write,
        read_ms: mean_ms(&one_read),
        write_standalone_ms: mean_ms(&one_write),
        write_quorum_ms: mean_ms(&one_quorum_write),
        read_p99_over_mean: p99_ms(&reads) / mean_ms(&reads).max(1e-9),
        write_p99_over_mean: p99_ms(&quorum_writes) / mean_ms(&quorum_writes).max(1e-9),
        write_standalone_p99_over_mean: p99_ms(&writes) / mean_ms(&writes).max(1e-9),
    })
}

fn read_calibration(path: &Path) -> Result<Calibration, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Calibration::from_json(&v)
}

fn cores_here() -> f64 {
    std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
}

/// `paddock bench plan` as a command.
pub fn main(args: &PlanArgs) -> ExitCode {
    let fail = |m: String| {
        eprintln!("paddock bench plan: {m}");
        ExitCode::from(1)
    };
    if args.voters == 0 || args.read_pct > 100 || args.sessions == 0 || args.in_flight == 0 {
        return fail("--voters, --sessions and --in-flight must be at least 1, --read-pct at most 100".into());
    }
    let loaded = args.calibration.as_deref().map(read_calibration).transpose();
    let calibration = match loaded {
        Ok(Some(c)) if c.value_size as usize == args.value_size => Ok(c),
        Err(e) => return fail(e),
        _ => calibrate(args.value_size),
    };
    let c = match calibration {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    if let Some(path) = &args.save {
        if let Err(e) = std::fs::write(path, c.to_json().to_string()) {
            return fail(format!("{}: {e}", path.display()));
        }
    }
    if args.calibrate_only {
        println!("{}", c.to_json());
        return ExitCode::SUCCESS;
    }
    let scenario = Scenario {
        voters: args.voters,
        observers: args.observers,
        read_fraction: f64::from(args.read_pct) / 100.0,
        in_flight_total: (args.sessions * args.in_flight) as f64,
        sessions: args.sessions,
        shared_cores: if args.dedicated { None } else { Some(args.cores.unwrap_or_else(cores_here)) },
        rate: args.rate,
    };
    let p = predict(&c, &scenario);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "voters": args.voters, "observers": args.observers, "read_pct": args.read_pct,
                "value_size": args.value_size, "sessions": args.sessions, "in_flight": args.in_flight,
                "shared_cores": scenario.shared_cores, "rate": args.rate,
                "throughput_ops_s": p.throughput_ops_s, "bound": p.bound,
                "p99_ms": if p.p99_ms.is_finite() { Some(p.p99_ms) } else { None },
                "cpu_s_per_op": {"leader": p.leader_cpu_s, "learner": p.learner_cpu_s, "client": p.client_cpu_s},
                "calibration": c.to_json(),
            })
        );
    } else {
        let layout = scenario
            .shared_cores
            .map_or("a core per server, clients elsewhere".to_string(), |k| format!("{k} shared cores"));
        println!(
            "{} voters + {} observers, {}% reads, {}-byte values, {} x {} in flight, {layout}",
            args.voters, args.observers, args.read_pct, args.value_size, args.sessions, args.in_flight
        );
        println!("predicted throughput: {:.0} ops/s ({}-bound)", p.throughput_ops_s, p.bound);
        match args.rate {
            Some(r) if !p.p99_ms.is_finite() => println!("predicted p99 at {r:.0} ops/s: saturated (beyond capacity)"),
            Some(r) => println!("predicted p99 at {r:.0} ops/s: {:.2} ms", p.p99_ms),
            None => println!("predicted p99 at that throughput: {:.2} ms", p.p99_ms),
        }
        println!(
            "CPU per op: leader {:.1} us, each learner {:.1} us, load generator {:.1} us",
            p.leader_cpu_s * 1e6,
            p.learner_cpu_s * 1e6,
            p.client_cpu_s * 1e6
        );
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calibration() -> Calibration {
        Calibration {
            value_size: 100.0,
            read_cpu_s: 4e-6,
            write_standalone_cpu_s: 10e-6,
            read_one_core_cpu_s: 4e-6,
            write_one_core_cpu_s: 10e-6,
            per_learner_cpu_s: 3e-6,
            learner_cpu_s: 6e-6,
            client_read_cpu_s: 2e-6,
            client_write_cpu_s: 2e-6,
            read_ms: 0.1,
            write_standalone_ms: 0.3,
            write_quorum_ms: 0.4,
            read_p99_over_mean: 2.0,
            write_p99_over_mean: 2.0,
            write_standalone_p99_over_mean: 2.0,
        }
    }

    fn scenario(voters: usize, observers: usize, read_fraction: f64, shared_cores: Option<f64>) -> Scenario {
        Scenario { voters, observers, read_fraction, in_flight_total: 1e6, sessions: 1, shared_cores, rate: None }
    }

    #[test]
    fn observers_add_read_capacity_on_their_own_cores_and_cost_writes() {
        let c = calibration();
        let reads = |m| predict(&c, &scenario(3, m, 1.0, None)).throughput_ops_s;
        // Pure reads on dedicated cores scale with the servers: 5 servers serve 5/3 of 3's.
        assert!((reads(2) / reads(0) - 5.0 / 3.0).abs() < 1e-3);
        let writes = |m| predict(&c, &scenario(3, m, 0.0, None)).throughput_ops_s;
        // Every observer is one more learner for the leader to feed.
        assert!(writes(2) < writes(0));
        // On shared cores, extra servers add work and no cores.
        let shared = |m| predict(&c, &scenario(3, m, 0.5, Some(2.0))).throughput_ops_s;
        assert!(shared(2) < shared(0));
    }

    #[test]
    fn latency_bound_and_rate_are_applied() {
        let c = calibration();
        let mut s = scenario(3, 0, 0.0, Some(2.0));
        s.in_flight_total = 1.0;
        let p = predict(&c, &s);
        assert_eq!(p.bound, "concurrency");
        // Just under the 2,500/s one request at a time allows: the CPU time adds to the latency.
        assert!((2300.0..2500.0).contains(&p.throughput_ops_s), "{p:?}");
        s.in_flight_total = 1e6;
        let cap = predict(&c, &s).throughput_ops_s;
        s.rate = Some(cap * 0.5);
        let half = predict(&c, &s).p99_ms;
        s.rate = Some(cap * 0.9);
        assert!(predict(&c, &s).p99_ms > half);
        s.rate = Some(cap * 1.1);
        assert!(predict(&c, &s).p99_ms.is_infinite());
    }

    #[test]
    fn calibration_round_trips_through_json() {
        let c = calibration();
        assert_eq!(Calibration::from_json(&c.to_json()), Ok(c));
        assert!(Calibration::from_json(&serde_json::json!({"value_size": 1})).is_err());
    }
}
