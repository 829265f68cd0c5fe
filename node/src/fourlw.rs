//! Four-letter words on the client port (`FourLetterCommands`): the text ZooKeeper prints, so
//! monitoring scripts that parse it keep working.

use std::fmt::Write as _;

use crate::config::Config;
use crate::server::Server;

/// Version string reported where ZooKeeper reports its own.
pub const VERSION: &str = concat!("3.8.0-paddock-", env!("CARGO_PKG_VERSION"));

/// The commands ZooKeeper recognises as the first four bytes of a connection.
pub const KNOWN: &[&str] = &[
    "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "ruok", "stmk", "srst", "srvr", "stat", "wchc", "wchp",
    "wchs", "mntr", "isro", "hash",
];

/// Whether the first four bytes of a connection name a four-letter word.
pub fn parse(first: [u8; 4]) -> Option<&'static str> {
    KNOWN.iter().copied().find(|k| k.as_bytes() == first)
}

/// What the runtime knows that the protocol core does not.
pub struct RuntimeInfo<'a> {
    pub per_core_connections: &'a [usize],
    pub uptime_ms: u64,
    pub config: &'a Config,
    pub log: &'a crate::tree_core::LogStats,
}

fn zxid_hex(z: i64) -> String {
    format!("0x{z:x}")
}

/// Runs a four-letter word (already allowed by the whitelist) and returns its text.
pub fn run(cmd: &str, server: &Server, rt: &RuntimeInfo) -> String {
    let tree = server.tree();
    let connections: usize = rt.per_core_connections.iter().sum();
    // ZooKeeper's node map holds the root twice ("" and "/"), and its counts show it.
    let znode_count = tree.node_count() + 1;
    let mut s = String::new();
    match cmd {
        "ruok" => s.push_str("imok"),
        "isro" => s.push_str("rw"),
        "srvr" | "stat" => {
            let _ = writeln!(s, "Zookeeper version: {VERSION}, built on unknown");
            if cmd == "stat" {
                s.push_str("Clients:\n");
                for (c, sid) in server.connections() {
                    let _ = writeln!(s, " /127.0.0.1:0[1](queued=0,recved=0,sent=0,sid=0x{sid:x},core={})", c.core);
                }
                s.push('\n');
            }
            let _ = writeln!(s, "Latency min/avg/max: 0/0.0/0");
            let _ = writeln!(s, "Received: {}", server.counters().packets_received);
            let _ = writeln!(s, "Sent: {}", server.counters().packets_sent);
            let _ = writeln!(s, "Connections: {connections}");
            let _ = writeln!(s, "Outstanding: 0");
            let _ = writeln!(s, "Zxid: {}", zxid_hex(tree.last_zxid()));
            let _ = writeln!(s, "Mode: standalone");
            let _ = writeln!(s, "Node count: {znode_count}");
        }
        "mntr" => {
            let mut kv = |k: &str, v: String| {
                let _ = writeln!(s, "{k}\t{v}");
            };
            kv("zk_version", format!("{VERSION}, built on unknown"));
            kv("zk_server_state", "standalone".into());
            kv("zk_avg_latency", "0.0".into());
            kv("zk_max_latency", "0".into());
            kv("zk_min_latency", "0".into());
            kv("zk_packets_received", server.counters().packets_received.to_string());
            kv("zk_packets_sent", server.counters().packets_sent.to_string());
            kv("zk_num_alive_connections", connections.to_string());
            kv("zk_outstanding_requests", "0".into());
            kv("zk_znode_count", znode_count.to_string());
            kv("zk_watch_count", server.watches().count().to_string());
            kv("zk_ephemerals_count", tree.ephemeral_count().to_string());
            kv("zk_approximate_data_size", tree.approximate_data_size().to_string());
            kv("zk_global_sessions", server.session_count().to_string());
            kv("zk_local_sessions", "0".into());
            kv("zk_uptime", rt.uptime_ms.to_string());
            kv("zk_last_zxid", zxid_hex(tree.last_zxid()));
            for (core, n) in rt.per_core_connections.iter().enumerate() {
                kv(&format!("paddock_core_{core}_connections"), n.to_string());
            }
            let log = rt.log;
            kv("paddock_fsync_count", log.fsyncs.to_string());
            kv("paddock_fsync_txns", log.txns.to_string());
            let per = if log.fsyncs == 0 { 0.0 } else { log.txns as f64 / log.fsyncs as f64 };
            kv("paddock_txns_per_fsync_avg", format!("{per:.2}"));
            for (name, q) in [("p50", 0.5), ("p99", 0.99), ("p999", 0.999)] {
                kv(&format!("paddock_fsync_latency_us_{name}"), log.fsync_latency_us.value_at_quantile(q).to_string());
            }
            kv("paddock_fsync_latency_us_max", log.fsync_latency_us.max().to_string());
            kv("paddock_snapshot_count", log.snapshots.to_string());
            kv("paddock_last_snapshot_zxid", zxid_hex(log.last_snapshot_zxid));
        }
        "cons" => {
            for (c, sid) in server.connections() {
                let _ = writeln!(s, " /127.0.0.1:0[1](queued=0,recved=0,sent=0,sid=0x{sid:x},core={})", c.core);
            }
            s.push('\n');
        }
        "conf" => {
            let c = rt.config;
            let _ = writeln!(s, "clientPort={}", c.client_port);
            let _ = writeln!(s, "dataDir={}", c.data_dir.display());
            let _ = writeln!(s, "dataLogDir={}", c.data_log_dir.as_ref().unwrap_or(&c.data_dir).display());
            let _ = writeln!(s, "tickTime={}", c.tick_time_ms);
            let _ = writeln!(s, "maxClientCnxns={}", c.max_client_cnxns);
            let _ = writeln!(s, "minSessionTimeout={}", c.min_session_timeout());
            let _ = writeln!(s, "maxSessionTimeout={}", c.max_session_timeout());
            let _ = writeln!(s, "serverId=0");
        }
        "envi" => {
            s.push_str("Environment:\n");
            let _ = writeln!(s, "zookeeper.version={VERSION}, built on unknown");
            let _ = writeln!(s, "os.name=Linux");
        }
        "dirs" => {
            let _ = writeln!(s, "datadir_size: 0");
            let _ = writeln!(s, "logdir_size: 0");
        }
        "wchs" => {
            let by = server.watches().by_session();
            let paths: std::collections::HashSet<&String> = by.values().flatten().map(|(_, p)| p).collect();
            let _ = writeln!(s, "{} connections watching {} paths", by.len(), paths.len());
            let _ = writeln!(s, "Total watches:{}", server.watches().count());
        }
        "wchc" => {
            for (sid, entries) in server.watches().by_session() {
                let _ = writeln!(s, "0x{sid:x}");
                for (_, p) in entries {
                    let _ = writeln!(s, "\t{p}");
                }
            }
        }
        "wchp" => {
            let mut by_path: std::collections::BTreeMap<&String, Vec<i64>> = Default::default();
            for (sid, entries) in server.watches().by_session() {
                for (_, p) in entries {
                    by_path.entry(p).or_default().push(*sid);
                }
            }
            for (p, sids) in by_path {
                let _ = writeln!(s, "{p}");
                for sid in sids {
                    let _ = writeln!(s, "\t0x{sid:x}");
                }
            }
        }
        "dump" => {
            s.push_str("SessionTracker dump:\n");
            let _ = writeln!(s, "Global Sessions({}):", server.session_count());
            s.push_str("ephemeral nodes dump:\n");
        }
        "crst" => s.push_str("Connection stats reset.\n"),
        "srst" => s.push_str("Server stats reset.\n"),
        other => {
            let _ = writeln!(s, "{other} is not supported by Paddock yet.");
        }
    }
    s
}
