//! Four-letter words on the client port (`FourLetterCommands`), and the monitor values that
//! `mntr`, the AdminServer and the Prometheus endpoint share: the text ZooKeeper prints, so
//! monitoring scripts and tools (zktop, check_zookeeper) that parse it keep working.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use crate::config::Config;
use crate::server::{ConnId, ConnStats, Server};
use crate::tree_core::{Latency, LogStats};
use crate::watches::Table;

/// Version string reported where ZooKeeper reports its own (tools parse the leading x.y.z).
pub const VERSION: &str = concat!("3.8.0-paddock-", env!("CARGO_PKG_VERSION"), ", built on unknown");

/// The commands ZooKeeper recognises as the first four bytes of a connection.
pub const KNOWN: &[&str] = &[
    "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "ruok", "stmk", "srst", "srvr", "stat", "wchc", "wchp",
    "wchs", "mntr", "isro", "hash",
];

/// Whether the first four bytes of a connection name a four-letter word.
pub fn parse(first: [u8; 4]) -> Option<&'static str> {
    KNOWN.iter().copied().find(|k| k.as_bytes() == first)
}

/// ZooKeeper's answer to a four-letter word that `4lw.commands.whitelist` does not allow.
pub fn not_whitelisted(cmd: &str) -> String {
    format!("{cmd} is not executed because it is not in the whitelist.\n")
}

/// What the runtime knows that the protocol core does not.
pub struct RuntimeInfo<'a> {
    pub per_core_connections: &'a [usize],
    pub uptime_ms: u64,
    pub config: &'a Config,
    pub log: &'a LogStats,
    pub latency: &'a Latency,
    pub conn_latency: &'a HashMap<ConnId, Latency>,
    pub outstanding: usize,
    /// None for a standalone server.
    pub ensemble: Option<crate::peer::EnsembleInfo>,
}

/// ZooKeeper's answer to most words while an ensemble member is not serving.
pub const NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests\n";

/// The mode srvr and mntr show: standalone, leader, follower or observer; None while an
/// ensemble member is LOOKING or syncing.
pub fn mode(rt: &RuntimeInfo) -> Option<&'static str> {
    match &rt.ensemble {
        None => Some("standalone"),
        Some(e) if e.read_only => Some("read-only"),
        Some(e) => e.state,
    }
}

/// A monitor value: a number for JSON and Prometheus, or text.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Text(String),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Int(v) => write!(f, "{v}"),
            Value::Float(v) => write!(f, "{v}"),
            Value::Text(v) => write!(f, "{v}"),
        }
    }
}

fn zxid_hex(z: i64) -> String {
    format!("0x{z:x}")
}

fn open_fds() -> i64 {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count() as i64).unwrap_or(-1)
}

fn max_fds() -> i64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur as i64
    } else {
        -1
    }
}

/// Bytes in the engine's snapshot and log directories, as `dirs`, `conf` and the AdminServer
/// report them.
pub fn dir_sizes(c: &Config) -> (u64, u64) {
    let log_dir = c.data_log_dir.as_ref().unwrap_or(&c.data_dir);
    (dir_size(&c.data_dir.join(engine::recovery::ENGINE_DIR)), dir_size(&log_dir.join(engine::recovery::ENGINE_DIR)))
}

fn dir_size(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|d| d.flatten().filter_map(|e| e.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

/// `mntr`'s keys (ZooKeeper's names first, Paddock's own after), shared with the AdminServer's
/// `monitor` command and the Prometheus endpoint.
pub fn monitor(server: &Server, rt: &RuntimeInfo) -> Vec<(String, Value)> {
    let tree = server.tree();
    let connections: usize = rt.per_core_connections.iter().sum();
    let mut v: Vec<(String, Value)> = vec![
        ("zk_version".into(), Value::Text(VERSION.into())),
        ("zk_server_state".into(), Value::Text(mode(rt).unwrap_or("looking").into())),
        ("zk_avg_latency".into(), Value::Float(rt.latency.avg_ms())),
        ("zk_max_latency".into(), Value::Int(rt.latency.max_ms() as i64)),
        ("zk_min_latency".into(), Value::Int(rt.latency.min_ms() as i64)),
        ("zk_packets_received".into(), Value::Int(server.counters().packets_received as i64)),
        ("zk_packets_sent".into(), Value::Int(server.counters().packets_sent as i64)),
        ("zk_num_alive_connections".into(), Value::Int(connections as i64)),
        ("zk_outstanding_requests".into(), Value::Int(rt.outstanding as i64)),
        // ZooKeeper's node map holds the root twice ("" and "/"), and its counts show it.
        ("zk_znode_count".into(), Value::Int(tree.node_count() as i64 + 1)),
        ("zk_watch_count".into(), Value::Int(server.watches().count() as i64)),
        ("zk_ephemerals_count".into(), Value::Int(tree.ephemeral_count() as i64)),
        ("zk_approximate_data_size".into(), Value::Int(tree.approximate_data_size() as i64)),
        ("zk_open_file_descriptor_count".into(), Value::Int(open_fds())),
        ("zk_max_file_descriptor_count".into(), Value::Int(max_fds())),
        ("zk_global_sessions".into(), Value::Int(server.session_count() as i64)),
        ("zk_local_sessions".into(), Value::Int(0)),
        ("zk_uptime".into(), Value::Int(rt.uptime_ms as i64)),
        ("zk_last_zxid".into(), Value::Text(zxid_hex(tree.last_zxid()))),
    ];
    for (core, n) in rt.per_core_connections.iter().enumerate() {
        v.push((format!("paddock_core_{core}_connections"), Value::Int(*n as i64)));
    }
    let log = rt.log;
    v.push(("paddock_fsync_count".into(), Value::Int(log.fsyncs as i64)));
    v.push(("paddock_fsync_txns".into(), Value::Int(log.txns as i64)));
    let per = if log.fsyncs == 0 { 0.0 } else { log.txns as f64 / log.fsyncs as f64 };
    v.push(("paddock_txns_per_fsync_avg".into(), Value::Float((per * 100.0).round() / 100.0)));
    for (name, q) in [("p50", 0.5), ("p99", 0.99), ("p999", 0.999)] {
        let us = log.fsync_latency_us.value_at_quantile(q) as i64;
        v.push((format!("paddock_fsync_latency_us_{name}"), Value::Int(us)));
    }
    v.push(("paddock_fsync_latency_us_max".into(), Value::Int(log.fsync_latency_us.max() as i64)));
    v.push(("paddock_snapshot_count".into(), Value::Int(log.snapshots as i64)));
    v.push(("paddock_last_snapshot_zxid".into(), Value::Text(zxid_hex(log.last_snapshot_zxid))));
    if let Some(e) = &rt.ensemble {
        if e.state == Some("leader") {
            v.push(("zk_learners".into(), Value::Int(e.learners as i64)));
            v.push(("zk_synced_followers".into(), Value::Int(e.synced_followers as i64)));
            v.push(("zk_synced_observers".into(), Value::Int(e.synced_observers as i64)));
            v.push(("zk_pending_syncs".into(), Value::Int(e.pending_syncs as i64)));
        }
        v.push(("paddock_sync_diff".into(), Value::Int(e.sync_diff as i64)));
        v.push(("paddock_sync_trunc".into(), Value::Int(e.sync_trunc as i64)));
        v.push(("paddock_sync_snap".into(), Value::Int(e.sync_snap as i64)));
        v.push(("paddock_last_logged_zxid".into(), Value::Text(zxid_hex(e.last_logged_zxid))));
        v.push(("paddock_current_epoch".into(), Value::Int(e.epoch as i64)));
        v.push(("paddock_elections".into(), Value::Int(e.elections as i64)));
    }
    v
}

/// One `cons`/`stat` line (`ServerCnxn.dumpConnectionInfo`), brief or full.
fn connection_line(c: &ConnStats, latency: Option<&Latency>, brief: bool) -> String {
    let mut s = format!(" /{}:{}[1](queued=0,recved={},sent={}", c.remote.ip(), c.remote.port(), c.received, c.sent);
    if !brief {
        let l = latency.copied().unwrap_or_default();
        let _ = write!(
            s,
            ",sid=0x{:x},lop={},est={},to={},lcxid=0x{:x},lzxid=0x{:x},lresp={},llat={},minlat={},avglat={},maxlat={}",
            c.session_id,
            c.last_op,
            c.established_ms,
            c.timeout_ms,
            c.last_cxid,
            c.last_zxid,
            c.last_response_ms,
            l.max_ms().min(l.avg_ms() as u64),
            l.min_ms(),
            l.avg_ms() as u64,
            l.max_ms()
        );
    }
    s.push(')');
    s
}

/// Runs a four-letter word (already allowed by the whitelist) and returns its text.
pub fn run(cmd: &str, server: &Server, rt: &RuntimeInfo) -> String {
    let tree = server.tree();
    let connections: usize = rt.per_core_connections.iter().sum();
    let mut s = String::new();
    match cmd {
        "ruok" => s.push_str("imok"),
        "isro" => s.push_str(match &rt.ensemble {
            Some(e) if e.read_only => "ro",
            // ZooKeeper answers null while it is not serving at all.
            Some(e) if e.state.is_none() => "null",
            _ => "rw",
        }),
        "srvr" | "stat" | "mntr" | "cons" | "wchs" | "wchc" | "wchp" | "dump"
            if mode(rt).is_none() && !rt.ensemble.as_ref().is_some_and(|e| e.read_only) =>
        {
            s.push_str(NOT_SERVING);
        }
        "srvr" | "stat" => {
            let _ = writeln!(s, "Zookeeper version: {VERSION}");
            if cmd == "stat" {
                s.push_str("Clients:\n");
                for (c, stats) in server.connections() {
                    let _ = writeln!(s, "{}", connection_line(stats, rt.conn_latency.get(&c), true));
                }
                s.push('\n');
            }
            let l = rt.latency;
            let _ = writeln!(s, "Latency min/avg/max: {}/{:.4}/{}", l.min_ms(), l.avg_ms(), l.max_ms());
            let _ = writeln!(s, "Received: {}", server.counters().packets_received);
            let _ = writeln!(s, "Sent: {}", server.counters().packets_sent);
            let _ = writeln!(s, "Connections: {connections}");
            let _ = writeln!(s, "Outstanding: {}", rt.outstanding);
            let _ = writeln!(s, "Zxid: {}", zxid_hex(tree.last_zxid()));
            let _ = writeln!(s, "Mode: {}", mode(rt).unwrap_or("standalone"));
            let _ = writeln!(s, "Node count: {}", tree.node_count() + 1);
        }
        "mntr" => {
            for (k, v) in monitor(server, rt) {
                let _ = writeln!(s, "{k}\t{v}");
            }
        }
        "cons" => {
            for (c, stats) in server.connections() {
                let _ = writeln!(s, "{}", connection_line(stats, rt.conn_latency.get(&c), false));
            }
            s.push('\n');
        }
        "crst" => s.push_str("Connection stats reset.\n"),
        "srst" => s.push_str("Server stats reset.\n"),
        "conf" => {
            for (k, v) in configuration(rt.config) {
                let _ = writeln!(s, "{k}={v}");
            }
        }
        "envi" => {
            s.push_str("Environment:\n");
            for (k, v) in environment() {
                let _ = writeln!(s, "{k}={v}");
            }
        }
        "dirs" => {
            let (data, log) = dir_sizes(rt.config);
            let _ = writeln!(s, "datadir_size: {data}");
            let _ = writeln!(s, "logdir_size: {log}");
        }
        "wchs" => {
            let (sessions, paths, total) = watch_summary(server);
            let _ = writeln!(s, "{sessions} connections watching {paths} paths");
            let _ = writeln!(s, "Total watches:{total}");
        }
        "wchc" => {
            for (sid, paths) in watches_by_session(server) {
                let _ = writeln!(s, "0x{sid:x}");
                for p in paths {
                    let _ = writeln!(s, "\t{p}");
                }
            }
        }
        "wchp" => {
            for (p, sids) in watches_by_path(server) {
                let _ = writeln!(s, "{p}");
                for sid in sids {
                    let _ = writeln!(s, "\t0x{sid:x}");
                }
            }
        }
        "dump" => {
            s.push_str("SessionTracker dump:\n");
            let _ = writeln!(s, "Global Sessions({}):", server.session_count());
            for id in tree.sessions().keys() {
                let _ = writeln!(s, "0x{id:x}\t{}ms", tree.sessions().get(id).copied().unwrap_or(0));
            }
            s.push_str("ephemeral nodes dump:\n");
            let mut owners: BTreeMap<i64, Vec<&String>> = BTreeMap::new();
            for id in tree.sessions().keys() {
                let paths: Vec<&String> = tree.ephemerals_of(*id).collect();
                if !paths.is_empty() {
                    owners.insert(*id, paths);
                }
            }
            let _ = writeln!(s, "Sessions with Ephemerals ({}):", owners.len());
            for (id, paths) in owners {
                let _ = writeln!(s, "0x{id:x}:");
                for p in paths {
                    let _ = writeln!(s, "\t{p}");
                }
            }
            let _ = writeln!(s, "Connections dump:\nConnections Sets (1)/({connections}):");
        }
        "gtmk" | "stmk" => s.push_str("0\n"),
        "hash" => s.push_str("Digest not enabled.\n"),
        other => {
            let _ = writeln!(s, "{other} is not a known four-letter word");
        }
    }
    s
}

/// `conf`'s keys, shared with the AdminServer's `configuration`.
pub fn configuration(c: &Config) -> Vec<(&'static str, String)> {
    let log_dir = c.data_log_dir.as_ref().unwrap_or(&c.data_dir);
    let (data_size, log_size) = dir_sizes(c);
    vec![
        ("clientPort", c.client_port.to_string()),
        ("secureClientPort", "-1".into()),
        ("dataDir", c.data_dir.display().to_string()),
        ("dataDirSize", data_size.to_string()),
        ("dataLogDir", log_dir.display().to_string()),
        ("dataLogSize", log_size.to_string()),
        ("tickTime", c.tick_time_ms.to_string()),
        ("maxClientCnxns", c.max_client_cnxns.to_string()),
        ("minSessionTimeout", c.min_session_timeout().to_string()),
        ("maxSessionTimeout", c.max_session_timeout().to_string()),
        ("clientPortListenBacklog", "-1".into()),
        ("serverId", "0".into()),
    ]
}

/// `envi`'s keys, shared with the AdminServer's `environment`.
pub fn environment() -> Vec<(&'static str, String)> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    let os_version =
        std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|h| h.trim().to_string()).unwrap_or_default();
    let cwd = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default();
    vec![
        ("zookeeper.version", VERSION.to_string()),
        ("host.name", host),
        ("paddock.version", env!("CARGO_PKG_VERSION").to_string()),
        ("os.name", "Linux".into()),
        ("os.arch", std::env::consts::ARCH.into()),
        ("os.version", os_version),
        ("user.name", std::env::var("USER").unwrap_or_default()),
        ("user.home", std::env::var("HOME").unwrap_or_default()),
        ("user.dir", cwd),
    ]
}

/// (sessions watching, distinct paths, total watches), as `wchs` counts them.
pub fn watch_summary(server: &Server) -> (usize, usize, usize) {
    let by = server.watches().by_session();
    let paths: std::collections::HashSet<&String> = by.values().flatten().map(|(_, p)| p).collect();
    (by.len(), paths.len(), server.watches().count())
}

/// Paths each session watches (data and child watches merged), for `wchc`.
pub fn watches_by_session(server: &Server) -> BTreeMap<i64, Vec<String>> {
    let mut out: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for (sid, entries) in server.watches().by_session() {
        let mut paths: Vec<String> = entries.iter().map(|(_, p): &(Table, String)| p.clone()).collect();
        paths.sort();
        paths.dedup();
        out.insert(*sid, paths);
    }
    out
}

/// Sessions watching each path, for `wchp`.
pub fn watches_by_path(server: &Server) -> BTreeMap<String, Vec<i64>> {
    let mut out: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (sid, paths) in watches_by_session(server) {
        for p in paths {
            out.entry(p).or_default().push(sid);
        }
    }
    out
}
