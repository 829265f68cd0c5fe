//! `zoo.cfg` as ZooKeeper reads it (`QuorumPeerConfig`): Java properties, ZooKeeper's keys and
//! defaults, unknown keys passed on as `zookeeper.*` system properties (so both spellings work).

use std::net::IpAddr;
use std::path::PathBuf;

/// Why a configuration cannot start a server; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("invalid value for {key}: {value:?} ({why})")]
    Invalid { key: String, value: String, why: String },
    #[error("{key} is a ZooKeeper setting Paddock does not support yet ({why}); remove it to start")]
    Unsupported { key: String, why: &'static str },
    #[error("missing required setting {0}")]
    Missing(&'static str),
}

/// One `server.N` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub id: u64,
    pub host: String,
    pub quorum_port: u16,
    pub election_port: u16,
    pub observer: bool,
    pub client_address: Option<(String, u16)>,
}

/// Every setting Paddock reads, with ZooKeeper's defaults.
#[derive(Debug, Clone)]
pub struct Config {
    pub tick_time_ms: u64,
    pub init_limit: u32,
    pub sync_limit: u32,
    pub data_dir: PathBuf,
    pub data_log_dir: Option<PathBuf>,
    pub client_port: u16,
    pub client_port_address: Option<IpAddr>,
    /// Connections per client address; 0 means no limit.
    pub max_client_cnxns: usize,
    pub min_session_timeout_ms: Option<i32>,
    pub max_session_timeout_ms: Option<i32>,
    pub autopurge_snap_retain_count: u32,
    pub autopurge_purge_interval_hours: u32,
    pub snap_count: u64,
    pub pre_alloc_size_kb: u64,
    pub global_outstanding_limit: u64,
    pub jute_max_buffer_bytes: usize,
    /// `nio.sessionlessCnxnTimeout` (ZooKeeper's `zookeeper.nio.sessionlessCnxnTimeout`, default
    /// 10 s): a connection that has no session yet is closed after this long without input, so
    /// one that never completes its handshake does not hold its slot and buffers forever.
    pub sessionless_cnxn_timeout_ms: u64,
    pub four_letter_whitelist: Vec<String>,
    pub extended_types: bool,
    /// `enforceQuota`: writes past a hard quota limit fail (ZooKeeper's default: off).
    pub enforce_quota: bool,
    pub force_sync: bool,
    pub container_check_interval_ms: u64,
    pub container_max_per_minute: usize,
    pub super_digest: Option<String>,
    pub peers: Vec<Peer>,
    pub peer_type_observer: bool,
    /// `paddock.quorumHeartbeatMs`: how often leader and learners ping each other (default a
    /// quarter tick); silence for syncLimit ticks ends the link.
    pub quorum_heartbeat_ms: Option<u64>,
    /// `paddock.syncWindowTxns`: txns a leader keeps in memory to sync a learner by DIFF; a
    /// learner further behind gets a snapshot.
    pub sync_window_txns: usize,
    /// `paddock.testFsyncDelayMs`: for fault tests only, never for a real deployment: each log
    /// batch waits this long before its fdatasync, so a test can give one member a slow disk
    /// and check that commits, reads and elections stay correct. Default 0 (no delay).
    pub test_fsync_delay_ms: u64,
    /// `readonlymode.enabled`: serve read-only sessions while cut off from the quorum.
    pub read_only_mode: bool,
    pub cores: Option<usize>,
    pub admin_enable_server: bool,
    pub admin_server_address: String,
    pub admin_server_port: u16,
    pub metrics_provider_class: Option<String>,
    pub metrics_http_port: u16,
    /// Unknown keys, reported as warnings at start-up.
    pub warnings: Vec<String>,
}

/// The configuration `paddock server` uses when given no file.
pub const DEFAULT_CONFIG: &str = "\
# Paddock's embedded default: a standalone server for development.
tickTime=2000
initLimit=10
syncLimit=5
dataDir=./data
clientPort=2181
clientPortAddress=127.0.0.1
4lw.commands.whitelist=*
admin.enableServer=false
";

impl Default for Config {
    fn default() -> Self {
        Config {
            tick_time_ms: 3000,
            init_limit: 10,
            sync_limit: 5,
            data_dir: PathBuf::from("./data"),
            data_log_dir: None,
            client_port: 2181,
            client_port_address: None,
            max_client_cnxns: 60,
            min_session_timeout_ms: None,
            max_session_timeout_ms: None,
            autopurge_snap_retain_count: 3,
            autopurge_purge_interval_hours: 0,
            snap_count: 100_000,
            pre_alloc_size_kb: 65_536,
            global_outstanding_limit: 1000,
            jute_max_buffer_bytes: 0xfffff,
            sessionless_cnxn_timeout_ms: 10_000,
            four_letter_whitelist: vec!["srvr".to_string()],
            extended_types: false,
            enforce_quota: false,
            force_sync: true,
            container_check_interval_ms: 60_000,
            container_max_per_minute: 10_000,
            super_digest: None,
            peers: Vec::new(),
            peer_type_observer: false,
            quorum_heartbeat_ms: None,
            sync_window_txns: 100_000,
            test_fsync_delay_ms: 0,
            read_only_mode: false,
            cores: None,
            admin_enable_server: true,
            admin_server_address: "0.0.0.0".to_string(),
            admin_server_port: 8080,
            metrics_provider_class: None,
            metrics_http_port: 7000,
            warnings: Vec::new(),
        }
    }
}

fn invalid(key: &str, value: &str, why: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.to_string(), value: value.to_string(), why: why.into() }
}

fn num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError> {
    value.parse().map_err(|_| invalid(key, value, "not a number in range"))
}

fn boolean(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" => Ok(true),
        "false" | "no" => Ok(false),
        _ => Err(invalid(key, value, "expected true or false")),
    }
}

fn port(key: &str, value: &str) -> Result<u16, ConfigError> {
    num::<u16>(key, value)
}

fn parse_peer(key: &str, value: &str) -> Result<Peer, ConfigError> {
    let id: u64 = num(key, &key["server.".len()..])?;
    let (addr, client) = match value.split_once(';') {
        Some((a, c)) => (a, Some(c)),
        None => (value, None),
    };
    let parts: Vec<&str> = addr.split(':').collect();
    if parts.len() < 3 || parts.len() > 4 {
        return Err(invalid(key, value, "expected host:quorumPort:electionPort[:observer|:participant]"));
    }
    let observer = match parts.get(3) {
        None | Some(&"participant") => false,
        Some(&"observer") => true,
        Some(_) => return Err(invalid(key, value, "role must be observer or participant")),
    };
    let client_address = match client {
        None => None,
        Some(c) => {
            let (h, p) = match c.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p),
                None => ("0.0.0.0".to_string(), c),
            };
            Some((h, port(key, p)?))
        }
    };
    Ok(Peer {
        id,
        host: parts[0].to_string(),
        quorum_port: port(key, parts[1])?,
        election_port: port(key, parts[2])?,
        observer,
        client_address,
    })
}

impl Config {
    /// Reads and validates a zoo.cfg file.
    pub fn load(path: &str) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_string(), source })?;
        Config::parse(&text)
    }

    /// Parses zoo.cfg text; every invalid value stops with an error naming its key.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        let mut client_port_seen = false;
        for raw in text.lines() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let Some(split) = line.find(['=', ':']) else {
                c.warnings.push(format!("ignoring line without a value: {line}"));
                continue;
            };
            let key = line[..split].trim();
            let value = line[split + 1..].trim();
            // ZooKeeper turns unknown keys into `zookeeper.<key>` properties: accept both spellings.
            let k = key.strip_prefix("zookeeper.").unwrap_or(key);
            match k {
                "tickTime" => c.tick_time_ms = num(key, value)?,
                "initLimit" => c.init_limit = num(key, value)?,
                "syncLimit" => c.sync_limit = num(key, value)?,
                "dataDir" => c.data_dir = PathBuf::from(value),
                "dataLogDir" => c.data_log_dir = Some(PathBuf::from(value)),
                "clientPort" => {
                    c.client_port = port(key, value)?;
                    client_port_seen = true;
                }
                "clientPortAddress" => {
                    c.client_port_address = Some(value.parse().map_err(|_| invalid(key, value, "not an IP address"))?)
                }
                "maxClientCnxns" => c.max_client_cnxns = num(key, value)?,
                "minSessionTimeout" => c.min_session_timeout_ms = Some(num(key, value)?),
                "maxSessionTimeout" => c.max_session_timeout_ms = Some(num(key, value)?),
                "autopurge.snapRetainCount" => c.autopurge_snap_retain_count = num(key, value)?,
                "autopurge.purgeInterval" => c.autopurge_purge_interval_hours = num(key, value)?,
                "snapCount" => c.snap_count = num(key, value)?,
                "paddock.quorumHeartbeatMs" => c.quorum_heartbeat_ms = Some(num::<u64>(key, value)?.max(1)),
                "paddock.syncWindowTxns" => c.sync_window_txns = num(key, value)?,
                "paddock.testFsyncDelayMs" => c.test_fsync_delay_ms = num(key, value)?,
                "readonlymode.enabled" => c.read_only_mode = boolean(key, value)?,
                "preAllocSize" => c.pre_alloc_size_kb = num(key, value)?,
                "globalOutstandingLimit" => c.global_outstanding_limit = num(key, value)?,
                "nio.sessionlessCnxnTimeout" => c.sessionless_cnxn_timeout_ms = num::<u64>(key, value)?.max(1),
                "jute.maxbuffer" => {
                    let v: usize = num(key, value)?;
                    if v < 1024 {
                        return Err(invalid(key, value, "must be at least 1024 bytes"));
                    }
                    c.jute_max_buffer_bytes = v;
                }
                "4lw.commands.whitelist" => {
                    c.four_letter_whitelist =
                        value.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
                }
                "extendedTypesEnabled" => c.extended_types = boolean(key, value)?,
                "enforceQuota" => c.enforce_quota = boolean(key, value)?,
                "forceSync" => c.force_sync = boolean(key, value)?,
                "znode.container.checkIntervalMs" => c.container_check_interval_ms = num(key, value)?,
                "znode.container.maxPerMinute" => c.container_max_per_minute = num(key, value)?,
                "DigestAuthenticationProvider.superDigest" => {
                    if value.split(':').count() != 2 {
                        return Err(invalid(key, value, "expected super:<base64 sha1 digest>"));
                    }
                    c.super_digest = Some(value.to_string())
                }
                "peerType" => {
                    c.peer_type_observer = match value {
                        "observer" => true,
                        "participant" => false,
                        _ => return Err(invalid(key, value, "expected observer or participant")),
                    }
                }
                "cores" => {
                    let n: usize = num(key, value)?;
                    if n == 0 {
                        return Err(invalid(key, value, "must be at least 1"));
                    }
                    c.cores = Some(n);
                }
                "admin.enableServer" => c.admin_enable_server = boolean(key, value)?,
                "admin.serverAddress" => c.admin_server_address = value.to_string(),
                "admin.serverPort" => c.admin_server_port = port(key, value)?,
                "metricsProvider.className" => c.metrics_provider_class = Some(value.to_string()),
                "metricsProvider.httpPort" => c.metrics_http_port = port(key, value)?,
                "secureClientPort" | "secureClientPortAddress" => {
                    return Err(ConfigError::Unsupported { key: key.to_string(), why: "TLS client port" })
                }
                "sslQuorum" | "portUnification" | "client.portUnification" => {
                    return Err(ConfigError::Unsupported { key: key.to_string(), why: "TLS" })
                }
                "reconfigEnabled"
                | "standaloneEnabled"
                | "dynamicConfigFile"
                | "electionAlg"
                | "quorumListenOnAllIPs"
                | "localSessionsEnabled"
                | "localSessionsUpgradingEnabled"
                | "syncEnabled"
                | "autopurge.purgeInterval.unit"
                | "leaderServes"
                | "cnxTimeout"
                | "metricsProvider.exportJvmInfo"
                | "admin.idleTimeout"
                | "admin.commandURL" => {
                    c.warnings.push(format!("{key} is accepted and has no effect in Paddock"));
                }
                _ if k.starts_with("server.") => c.peers.push(parse_peer(key, value)?),
                _ if k.starts_with("ssl.")
                    || k.starts_with("authProvider.")
                    || k.starts_with("quorum.auth")
                    || k.starts_with("sasl")
                    || k.starts_with("kerberos") =>
                {
                    return Err(ConfigError::Unsupported { key: key.to_string(), why: "authentication/TLS provider" })
                }
                _ if k.starts_with("group.") || k.starts_with("weight.") => {
                    return Err(ConfigError::Unsupported { key: key.to_string(), why: "hierarchical quorums" })
                }
                _ if k.starts_with("metricsProvider.") => {}
                _ => c.warnings.push(format!("unknown key {key}, ignored")),
            }
        }
        if !client_port_seen && c.peers.iter().all(|p| p.client_address.is_none()) {
            return Err(ConfigError::Missing("clientPort"));
        }
        if c.tick_time_ms == 0 {
            return Err(invalid("tickTime", "0", "must be positive"));
        }
        let (min, max) = (c.min_session_timeout(), c.max_session_timeout());
        if min > max {
            return Err(invalid("minSessionTimeout", &min.to_string(), "larger than maxSessionTimeout"));
        }
        if c.autopurge_snap_retain_count < 3 {
            c.warnings.push("autopurge.snapRetainCount below 3 raised to 3, as ZooKeeper does".into());
            c.autopurge_snap_retain_count = 3;
        }
        Ok(c)
    }

    /// `minSessionTimeout`, default two ticks.
    pub fn min_session_timeout(&self) -> i32 {
        self.min_session_timeout_ms.unwrap_or((self.tick_time_ms * 2) as i32)
    }

    /// `maxSessionTimeout`, default twenty ticks.
    pub fn max_session_timeout(&self) -> i32 {
        self.max_session_timeout_ms.unwrap_or((self.tick_time_ms * 20) as i32)
    }

    /// Whether a four-letter word may run (`*` allows all).
    pub fn four_letter_allowed(&self, cmd: &str) -> bool {
        self.four_letter_whitelist.iter().any(|w| w == "*" || w == cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_parses() {
        let c = Config::parse(DEFAULT_CONFIG).expect("default config");
        assert_eq!((c.client_port, c.tick_time_ms), (2181, 2000));
        assert_eq!((c.min_session_timeout(), c.max_session_timeout()), (4000, 40000));
    }

    #[test]
    fn ensemble_lines_parse() {
        let c = Config::parse("clientPort=1\nserver.1=a:2888:3888\nserver.2=b:2888:3888:observer;0.0.0.0:2181\n")
            .expect("cfg");
        assert_eq!(c.peers.len(), 2);
        assert!(c.peers[1].observer);
        assert_eq!(c.peers[1].client_address, Some(("0.0.0.0".into(), 2181)));
    }

    #[test]
    fn the_sessionless_connection_timeout_is_zookeepers() {
        assert_eq!(Config::parse("clientPort=1").expect("cfg").sessionless_cnxn_timeout_ms, 10_000);
        let c = Config::parse("clientPort=1\nzookeeper.nio.sessionlessCnxnTimeout=1500").expect("cfg");
        assert_eq!(c.sessionless_cnxn_timeout_ms, 1500);
    }

    #[test]
    fn invalid_values_name_their_key() {
        let e = Config::parse("clientPort=x").map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("clientPort"), "{e}");
        let e = Config::parse("clientPort=1\nsecureClientPort=2").map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("secureClientPort"), "{e}");
    }

    #[test]
    fn system_property_spelling_is_accepted() {
        let c = Config::parse("clientPort=1\nzookeeper.extendedTypesEnabled=true\nzookeeper.DigestAuthenticationProvider.superDigest=super:abc").expect("cfg");
        assert!(c.extended_types);
        assert_eq!(c.super_digest.as_deref(), Some("super:abc"));
    }

    #[test]
    fn the_fsync_delay_knob_is_off_unless_set() {
        assert_eq!(Config::parse("clientPort=1").expect("cfg").test_fsync_delay_ms, 0);
        let c = Config::parse("clientPort=1\npaddock.testFsyncDelayMs=50").expect("cfg");
        assert_eq!(c.test_fsync_delay_ms, 50);
        let e = Config::parse("clientPort=1\npaddock.testFsyncDelayMs=-1").map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("paddock.testFsyncDelayMs"), "{e}");
    }
}
