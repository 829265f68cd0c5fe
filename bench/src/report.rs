//! What `paddock bench load` measured, and the three ways it is shown: a table for people,
//! JSON for scripts (compare runs, plot), and HdrHistogram's percentile distribution text,
//! which HdrHistogram's plotters read as they read Java's `outputPercentileDistribution`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use engine::code;
use hdrhistogram::Histogram;

use crate::load::{LoadArgs, OpsKind};
use crate::session::Sample;

/// Highest latency a histogram holds (1 h, in µs); longer ones saturate rather than vanish.
const LATENCY_US_MAX: u64 = 3_600_000_000;
/// Significant digits kept by every histogram: 0.1% resolution at any latency.
const SIGFIG: u8 = 3;
/// Percentile lines per halving of the distance to 100%, as Java's default output uses.
const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// The request types a run measures separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OpKind {
    /// getData.
    Get,
    /// setData.
    Set,
    /// create (of create-delete and nothing else: keys are made before measuring).
    Create,
    /// delete.
    Delete,
    /// A whole multi, measured as one op as ZooKeeper applies it as one txn.
    Multi,
}

impl OpKind {
    /// The name in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Get => "get",
            OpKind::Set => "set",
            OpKind::Create => "create",
            OpKind::Delete => "delete",
            OpKind::Multi => "multi",
        }
    }
}

/// A latency histogram in µs with the bounds every report uses.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, SIGFIG).expect("constant histogram bounds are valid")
}

/// Counts and latencies of one request type.
pub struct KindTally {
    /// Ops that succeeded.
    pub ok: u64,
    /// Ops that failed, whatever the code.
    pub errors: u64,
    /// Latency of the successful ops, µs.
    pub hist: Histogram<u64>,
}

/// Everything recorded for a phase of a run.
pub struct Tally {
    /// Latency of every successful op, µs.
    pub all: Histogram<u64>,
    /// The same, per request type.
    pub kinds: BTreeMap<OpKind, KindTally>,
    /// Failed ops by ZooKeeper error code.
    pub errors: BTreeMap<i32, u64>,
    /// When the last op completed: the end of a run bounded by `--ops`.
    pub last_completed: Option<Instant>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally::new()
    }
}

impl Tally {
    /// An empty tally.
    pub fn new() -> Tally {
        Tally { all: latency_histogram(), kinds: BTreeMap::new(), errors: BTreeMap::new(), last_completed: None }
    }

    pub(crate) fn add(&mut self, s: &Sample) {
        let k = self.kinds.entry(s.kind).or_insert_with(|| KindTally { ok: 0, errors: 0, hist: latency_histogram() });
        if s.err == code::OK {
            k.ok += 1;
            k.hist.saturating_record(s.latency_us.max(1));
            self.all.saturating_record(s.latency_us.max(1));
        } else {
            k.errors += 1;
            *self.errors.entry(s.err).or_insert(0) += 1;
        }
        self.last_completed = Some(self.last_completed.map_or(s.completed, |t| t.max(s.completed)));
    }

    /// Failed ops.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// The result of a run: its settings and the measured phase.
pub struct Report {
    /// `--servers`, as given.
    pub servers: Vec<String>,
    /// `--ops-kind`.
    pub ops_kind: OpsKind,
    /// `--read-pct` (used by `mixed` only).
    pub read_pct: u8,
    /// `--sessions`.
    pub sessions: usize,
    /// `--in-flight`.
    pub in_flight: usize,
    /// `--rate`: None for a closed loop.
    pub rate: Option<f64>,
    /// `--value-size`.
    pub value_size: usize,
    /// `--keys`.
    pub keys: usize,
    /// `--warmup`.
    pub warmup_s: f64,
    /// Length of the measured phase.
    pub elapsed_s: f64,
    /// Sessions whose connection failed before the end of the run.
    pub sessions_lost: usize,
    /// With `--rate`: ops scheduled in the window that were never sent (the server was behind).
    pub unsent: u64,
    /// What the measured phase recorded.
    pub tally: Tally,
    /// With `--cpu-pids`: what the measured window cost in CPU.
    pub cpu: Option<CpuUse>,
}

/// CPU seconds spent during the measured window, so that a comparison can charge each system
/// for its ops (`/proc`, whole processes).
#[derive(Debug, Clone)]
pub struct CpuUse {
    /// `--cpu-pids`, in order.
    pub pids: Vec<u32>,
    /// Per pid: CPU seconds in the window (None: the process was gone).
    pub server_s: Vec<Option<f64>>,
    /// Per pid: resident bytes at the end of the window.
    pub server_rss_bytes: Vec<Option<u64>>,
    /// The load generator's own CPU seconds in the window.
    pub client_s: f64,
}

/// ZooKeeper's name for an error code (`KeeperException.Code`), for people reading reports.
pub fn code_name(c: i32) -> &'static str {
    match c {
        code::OK => "OK",
        code::SYSTEM_ERROR => "SYSTEMERROR",
        code::RUNTIME_INCONSISTENCY => "RUNTIMEINCONSISTENCY",
        code::DATA_INCONSISTENCY => "DATAINCONSISTENCY",
        code::CONNECTION_LOSS => "CONNECTIONLOSS",
        code::MARSHALLING_ERROR => "MARSHALLINGERROR",
        code::UNIMPLEMENTED => "UNIMPLEMENTED",
        code::OPERATION_TIMEOUT => "OPERATIONTIMEOUT",
        code::BAD_ARGUMENTS => "BADARGUMENTS",
        code::UNKNOWN_SESSION => "UNKNOWNSESSION",
        code::API_ERROR => "APIERROR",
        code::NO_NODE => "NONODE",
        code::NO_AUTH => "NOAUTH",
        code::BAD_VERSION => "BADVERSION",
        code::NO_CHILDREN_FOR_EPHEMERALS => "NOCHILDRENFOREPHEMERALS",
        code::NODE_EXISTS => "NODEEXISTS",
        code::NOT_EMPTY => "NOTEMPTY",
        code::SESSION_EXPIRED => "SESSIONEXPIRED",
        code::INVALID_ACL => "INVALIDACL",
        code::AUTH_FAILED => "AUTHFAILED",
        code::SESSION_MOVED => "SESSIONMOVED",
        code::NOT_READ_ONLY => "NOTREADONLY",
        code::REQUEST_TIMEOUT => "REQUESTTIMEOUT",
        code::QUOTA_EXCEEDED => "QUOTAEXCEEDED",
        code::THROTTLED => "THROTTLEDOP",
        _ => "UNKNOWN",
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// p50, p90, p99, p99.9 and max of a µs histogram, in ms.
fn percentiles_ms(h: &Histogram<u64>) -> [f64; 5] {
    [
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.9)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max()),
    ]
}

fn latency_json(h: &Histogram<u64>) -> serde_json::Value {
    let [p50, p90, p99, p999, max] = percentiles_ms(h);
    serde_json::json!({ "p50": p50, "p90": p90, "p99": p99, "p99_9": p999, "max": max, "mean": h.mean() / 1000.0 })
}

impl Report {
    pub(crate) fn new(
        args: &LoadArgs,
        servers: Vec<String>,
        elapsed: Duration,
        sessions_lost: usize,
        unsent: u64,
        tally: Tally,
    ) -> Report {
        Report {
            servers,
            ops_kind: args.ops_kind,
            read_pct: args.read_pct,
            sessions: args.sessions,
            in_flight: args.in_flight,
            rate: args.rate,
            value_size: args.value_size,
            keys: args.keys,
            warmup_s: args.warmup,
            elapsed_s: elapsed.as_secs_f64(),
            sessions_lost,
            unsent,
            tally,
            cpu: None,
        }
    }

    /// Measured ops that completed, successfully or not.
    pub fn ops(&self) -> u64 {
        self.ok() + self.tally.error_count()
    }

    /// Measured ops that succeeded.
    pub fn ok(&self) -> u64 {
        self.tally.kinds.values().map(|k| k.ok).sum()
    }

    /// Failed ops as a percentage of completed ones (0 when none completed).
    pub fn error_pct(&self) -> f64 {
        match self.ops() {
            0 => 0.0,
            n => self.tally.error_count() as f64 * 100.0 / n as f64,
        }
    }

    /// Successful ops per second of the measured phase.
    pub fn throughput(&self) -> f64 {
        if self.elapsed_s > 0.0 {
            self.ok() as f64 / self.elapsed_s
        } else {
            0.0
        }
    }

    fn mode(&self) -> String {
        match self.rate {
            Some(r) => format!("open loop at {r} ops/s (latency from intended send time)"),
            None => "closed loop".into(),
        }
    }

    fn kind_label(&self) -> String {
        match self.ops_kind {
            OpsKind::Mixed => format!("mixed ({}% get)", self.read_pct),
            k => k.name().into(),
        }
    }

    /// The table printed at the end of a run; latencies in ms.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "paddock bench load: {}, {} sessions x {} in flight, {}",
            self.kind_label(),
            self.sessions,
            self.in_flight,
            self.mode()
        );
        let _ = writeln!(
            t,
            "  {:.2} s measured after {} s warmup, {}-byte values, {} keys, servers {}",
            self.elapsed_s,
            self.warmup_s,
            self.value_size,
            self.keys,
            self.servers.join(",")
        );
        let _ = writeln!(
            t,
            "\n{:<8} {:>10} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
            "kind", "ops", "ops/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "errors"
        );
        let mut row = |name: &str, ok: u64, errors: u64, h: &Histogram<u64>| {
            let [p50, p90, p99, p999, max] = percentiles_ms(h);
            let rate = if self.elapsed_s > 0.0 { ok as f64 / self.elapsed_s } else { 0.0 };
            let _ = writeln!(
                t,
                "{name:<8} {ok:>10} {rate:>11.1} {p50:>9.3} {p90:>9.3} {p99:>9.3} {p999:>9.3} {max:>9.3} {errors:>8}"
            );
        };
        for (kind, k) in &self.tally.kinds {
            row(kind.name(), k.ok, k.errors, &k.hist);
        }
        if self.tally.kinds.len() != 1 {
            row("all", self.ok(), self.tally.error_count(), &self.tally.all);
        }
        if let Some(cpu) = &self.cpu {
            let servers: f64 = cpu.server_s.iter().flatten().sum();
            let per_k = if self.ops() > 0 { servers * 1000.0 / self.ops() as f64 } else { 0.0 };
            let _ = writeln!(
                t,
                "\ncpu: servers {servers:.2} s ({per_k:.4} s per 1000 ops), load generator {:.2} s",
                cpu.client_s
            );
        }
        if self.unsent > 0 {
            let _ = writeln!(t, "\nbehind schedule: {} ops due in the window were never sent", self.unsent);
        }
        if self.sessions_lost > 0 {
            let _ = writeln!(t, "\nsessions lost: {} of {}", self.sessions_lost, self.sessions);
        }
        if self.tally.errors.is_empty() {
            let _ = writeln!(t, "\nerrors: none");
        } else {
            let list: Vec<String> =
                self.tally.errors.iter().map(|(c, n)| format!("{} ({c}) {n}", code_name(*c))).collect();
            let _ = writeln!(t, "\nerrors: {:.3}% of ops: {}", self.error_pct(), list.join(", "));
        }
        t
    }

    /// The result as one JSON object; latencies in ms.
    pub fn json(&self) -> String {
        let by_kind: serde_json::Map<String, serde_json::Value> = self
            .tally
            .kinds
            .iter()
            .map(|(kind, k)| {
                let rate = if self.elapsed_s > 0.0 { k.ok as f64 / self.elapsed_s } else { 0.0 };
                let v = serde_json::json!({
                    "ok": k.ok, "errors": k.errors, "throughput_ops_s": rate, "latency_ms": latency_json(&k.hist)
                });
                (kind.name().to_string(), v)
            })
            .collect();
        let errors: serde_json::Map<String, serde_json::Value> = self
            .tally
            .errors
            .iter()
            .map(|(c, n)| (c.to_string(), serde_json::json!({ "name": code_name(*c), "count": n })))
            .collect();
        let cpu = self.cpu.as_ref().map(|c| {
            let servers: f64 = c.server_s.iter().flatten().sum();
            serde_json::json!({
                "pids": c.pids,
                "server_cpu_s": c.server_s,
                "server_rss_bytes": c.server_rss_bytes,
                "server_cpu_s_per_1000_ops": if self.ops() > 0 { servers * 1000.0 / self.ops() as f64 } else { 0.0 },
                "client_cpu_s": c.client_s,
            })
        });
        serde_json::json!({
            "servers": self.servers,
            "ops_kind": self.ops_kind.name(),
            "read_pct": self.read_pct,
            "sessions": self.sessions,
            "in_flight": self.in_flight,
            "rate_target_ops_s": self.rate,
            "value_size": self.value_size,
            "keys": self.keys,
            "warmup_s": self.warmup_s,
            "elapsed_s": self.elapsed_s,
            "ops": self.ops(),
            "ok": self.ok(),
            "errors": self.tally.error_count(),
            "error_pct": self.error_pct(),
            "errors_by_code": errors,
            "sessions_lost": self.sessions_lost,
            "unsent_ops": self.unsent,
            "throughput_ops_s": self.throughput(),
            "latency_ms": latency_json(&self.tally.all),
            "by_kind": by_kind,
            "cpu": cpu,
        })
        .to_string()
    }

    /// Every successful op's latency as HdrHistogram's percentile distribution, in ms.
    pub fn percentile_distribution(&self) -> String {
        percentile_distribution(&self.tally.all, 1000.0)
    }
}

/// HdrHistogram's percentile distribution text (Java's `outputPercentileDistribution`), values
/// divided by `scale`: the format HdrHistogram's plotting tools take.
pub fn percentile_distribution(h: &Histogram<u64>, scale: f64) -> String {
    let d = usize::from(h.sigfig());
    let mut out = String::new();
    let _ = write!(out, "{:>12} {:>14} {:>10} {:>14}\n\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
    let mut total = 0u64;
    for v in h.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
        total += v.count_since_last_iteration();
        let value = v.value_iterated_to() as f64 / scale;
        let q = v.quantile_iterated_to();
        if q < 1.0 {
            let _ = writeln!(out, "{value:>12.d$} {q:>2.12} {total:>10} {:>14.2}", 1.0 / (1.0 - q));
        } else {
            let _ = writeln!(out, "{value:>12.d$} {q:>2.12} {total:>10}");
        }
    }
    let sub_buckets = (2 * 10u64.pow(u32::from(h.sigfig()))).next_power_of_two();
    let _ = writeln!(out, "#[Mean    = {:>12.d$}, StdDeviation   = {:>12.d$}]", h.mean() / scale, h.stdev() / scale);
    let _ = writeln!(out, "#[Max     = {:>12.d$}, Total count    = {:>12}]", h.max() as f64 / scale, h.len());
    let _ = writeln!(out, "#[Buckets = {:>12}, SubBuckets     = {:>12}]", h.buckets(), sub_buckets);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_distribution_has_java_layout() {
        let mut h = latency_histogram();
        for v in 1..=1000u64 {
            h.record(v).expect("in range");
        }
        let text = percentile_distribution(&h, 1000.0);
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("       Value     Percentile TotalCount 1/(1-Percentile)"));
        assert_eq!(lines.next(), Some(""));
        assert_eq!(lines.next(), Some("       0.001 0.000000000000          1           1.00"));
        let last_value_line = text.lines().rfind(|l| !l.starts_with('#')).unwrap_or_default();
        assert_eq!(last_value_line, "       1.000 1.000000000000       1000");
        assert!(text.contains("#[Max     =        1.000, Total count    =         1000]"), "{text}");
        assert!(text.contains("SubBuckets     =         2048]"), "{text}");
    }

    #[test]
    fn code_names_follow_zookeeper() {
        assert_eq!(code_name(code::NO_NODE), "NONODE");
        assert_eq!(code_name(code::CONNECTION_LOSS), "CONNECTIONLOSS");
        assert_eq!(code_name(12345), "UNKNOWN");
    }
}
