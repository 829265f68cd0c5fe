//! The operator's surface: every four-letter word parsed the way ZooKeeper's own tools parse it,
//! the whitelist, Prometheus text through a parser, AdminServer JSON, and zktop's screen.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use bench::client::{four_letter, Client};
use node::proto::{op, Request};
use paddock_tests::{free_port, wait_until, ServerProcess};

/// A server with one session that owns an ephemeral node and watches a path.
fn busy_server(extra: &str) -> (ServerProcess, Client) {
    let server = ServerProcess::paddock(2, extra);
    let mut c = Client::connect(server.addr, 4000).expect("connect");
    let req = Request::Create {
        path: "/ops".into(),
        data: b"x".to_vec(),
        acl: engine::acl::open_acl_unsafe(),
        flags: 1,
        ttl: -1,
    };
    assert_eq!(c.call(op::CREATE, req).expect("create").err(), 0);
    assert_eq!(c.call(op::GET_DATA, Request::GetData { path: "/ops".into(), watch: true }).expect("get").err(), 0);
    (server, c)
}

/// `key: value` lines after the optional client list, as zktop and check_zookeeper read `stat`.
fn parse_stat(text: &str) -> (String, Vec<String>, HashMap<String, String>) {
    let mut lines = text.lines();
    let version = lines.next().unwrap_or_default();
    let version = version.split(": ").nth(1).and_then(|v| v.split('-').next()).unwrap_or_default().to_string();
    let mut clients = Vec::new();
    let mut fields = HashMap::new();
    for line in lines {
        if line == "Clients:" || line.is_empty() {
            continue;
        }
        if line.starts_with(" /") {
            clients.push(line.to_string());
            continue;
        }
        let parts: Vec<&str> = line.split(':').collect();
        assert_eq!(parts.len(), 2, "zktop splits on ':' and expects exactly two parts: {line:?}");
        fields.insert(parts[0].trim().to_string(), parts[1].trim().to_string());
    }
    (version, clients, fields)
}

/// The fields of a ` /ip:port[n](k=v,...)` connection line, as zktop's regex reads them.
fn parse_connection(line: &str) -> HashMap<String, String> {
    let inner = line.trim().strip_prefix('/').expect("starts with /");
    let (addr, rest) = inner.split_once('[').expect("[interest]");
    let (ip, port) = addr.rsplit_once(':').expect("ip:port");
    assert!(ip.parse::<std::net::IpAddr>().is_ok() && port.parse::<u16>().is_ok(), "{line}");
    let (interest, rest) = rest.split_once("](").expect("](");
    assert!(interest.parse::<u32>().is_ok(), "{line}");
    let body = rest.strip_suffix(')').expect(")");
    body.split(',').map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).expect("k=v")).collect()
}

#[test]
fn every_four_letter_word_parses_as_zookeepers_tools_read_it() {
    let (server, _c) = busy_server("");
    let ruok = four_letter(server.addr, "ruok").expect("ruok");
    assert_eq!(ruok, "imok");
    assert_eq!(four_letter(server.addr, "isro").expect("isro"), "rw");

    for cmd in ["srvr", "stat"] {
        let (version, clients, f) = parse_stat(&four_letter(server.addr, cmd).expect(cmd));
        assert_eq!(version, "3.8.0", "{cmd}: the x.y.z tools extract");
        for key in
            ["Latency min/avg/max", "Received", "Sent", "Connections", "Outstanding", "Zxid", "Mode", "Node count"]
        {
            assert!(f.contains_key(key), "{cmd} lacks {key}: {f:?}");
        }
        assert_eq!(f["Mode"], "standalone");
        assert_eq!(f["Latency min/avg/max"].split('/').count(), 3);
        assert!(f["Zxid"].starts_with("0x"));
        if cmd == "stat" {
            assert_eq!(clients.len(), 1, "the session's connection");
            let conn = parse_connection(&clients[0]);
            assert!(conn.contains_key("queued") && conn.contains_key("recved") && conn.contains_key("sent"));
        }
    }

    let mntr = four_letter(server.addr, "mntr").expect("mntr");
    let m: HashMap<&str, &str> =
        mntr.lines().map(|l| l.split_once('\t').unwrap_or_else(|| panic!("mntr line without a tab: {l:?}"))).collect();
    for key in [
        "zk_version",
        "zk_server_state",
        "zk_avg_latency",
        "zk_max_latency",
        "zk_min_latency",
        "zk_packets_received",
        "zk_packets_sent",
        "zk_num_alive_connections",
        "zk_outstanding_requests",
        "zk_znode_count",
        "zk_watch_count",
        "zk_ephemerals_count",
        "zk_approximate_data_size",
        "zk_open_file_descriptor_count",
        "zk_max_file_descriptor_count",
        "paddock_core_0_connections",
        "paddock_txns_per_fsync_avg",
        "paddock_fsync_latency_us_p99",
    ] {
        assert!(m.contains_key(key), "mntr lacks {key}");
    }
    assert_eq!(m["zk_ephemerals_count"], "1");
    assert_eq!(m["zk_watch_count"], "1");
    assert!(m["zk_open_file_descriptor_count"].parse::<u64>().is_ok_and(|n| n > 0));

    let cons = four_letter(server.addr, "cons").expect("cons");
    let line = cons.lines().find(|l| l.starts_with(" /")).expect("a connection line");
    let fields = parse_connection(line);
    for key in ["sid", "lop", "est", "to", "lcxid", "lzxid", "lresp", "llat", "minlat", "avglat", "maxlat"] {
        assert!(fields.contains_key(key), "cons lacks {key}: {line}");
    }
    assert_eq!(fields["lop"], "GETD");

    let conf = four_letter(server.addr, "conf").expect("conf");
    let kv: HashMap<&str, &str> = conf.lines().filter_map(|l| l.split_once('=')).collect();
    assert_eq!(kv.get("clientPort"), Some(&server.addr.port().to_string().as_str()));
    assert_eq!(kv.get("tickTime"), Some(&"200"));
    assert!(four_letter(server.addr, "envi").expect("envi").lines().any(|l| l.starts_with("zookeeper.version=3.8.0")));
    let wchs = four_letter(server.addr, "wchs").expect("wchs");
    assert!(wchs.starts_with("1 connections watching 1 paths\nTotal watches:1"), "{wchs}");
    assert!(four_letter(server.addr, "wchc").expect("wchc").contains("\t/ops"));
    assert!(four_letter(server.addr, "wchp").expect("wchp").starts_with("/ops\n\t0x"));
    assert!(four_letter(server.addr, "dump").expect("dump").contains("/ops"));
    let dirs = four_letter(server.addr, "dirs").expect("dirs");
    assert!(dirs.starts_with("datadir_size: ") && dirs.contains("\nlogdir_size: "), "{dirs}");
    assert_eq!(four_letter(server.addr, "srst").expect("srst"), "Server stats reset.\n");
    assert_eq!(four_letter(server.addr, "crst").expect("crst"), "Connection stats reset.\n");
}

#[test]
fn words_outside_the_whitelist_get_zookeepers_refusal() {
    let server = ServerProcess::paddock(1, "4lw.commands.whitelist=srvr, stat");
    assert!(four_letter(server.addr, "srvr").expect("srvr").contains("Mode: standalone"));
    assert!(four_letter(server.addr, "stat").expect("stat").contains("Clients:"));
    for cmd in ["mntr", "ruok", "conf", "cons", "envi", "wchs", "dump"] {
        assert_eq!(
            four_letter(server.addr, cmd).expect(cmd),
            format!("{cmd} is not executed because it is not in the whitelist.\n")
        );
    }
}

fn curl(url: &str) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", url])
        .output()
        .expect("curl (scripts/install-deps installs it)");
    assert!(out.status.success(), "curl {url}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Checks Prometheus text exposition format 0.0.4 line by line; returns the samples.
fn parse_prometheus(text: &str) -> HashMap<String, f64> {
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut typed: HashMap<String, String> = HashMap::new();
    let mut samples = HashMap::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("HELP"), Some(name), _) => assert!(valid_name(name), "{line}"),
                (Some("TYPE"), Some(name), Some(kind)) => {
                    assert!(valid_name(name), "{line}");
                    assert!(["counter", "gauge", "summary", "histogram", "untyped"].contains(&kind), "{line}");
                    assert!(typed.insert(name.to_string(), kind.to_string()).is_none(), "TYPE twice: {line}");
                }
                _ => panic!("bad comment line {line:?}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value: {line:?}"));
        let name = series.split('{').next().unwrap_or_default();
        assert!(valid_name(name), "{line}");
        if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
            let inner = labels.strip_prefix('{').and_then(|l| l.strip_suffix('}')).unwrap_or_else(|| panic!("{line}"));
            for pair in inner.split(',') {
                let (k, v) = pair.split_once('=').unwrap_or_else(|| panic!("{line}"));
                assert!(valid_name(k) && v.starts_with('"') && v.ends_with('"'), "{line}");
            }
        }
        let family = name.trim_end_matches("_sum").trim_end_matches("_count");
        assert!(typed.contains_key(name) || typed.contains_key(family), "sample before its TYPE: {line}");
        samples.insert(series.to_string(), value);
    }
    samples
}

#[test]
fn prometheus_text_and_admin_json_are_served_where_zookeeper_serves_them() {
    let (admin_port, metrics_port) = (free_port(), free_port());
    let extra = format!(
        "admin.enableServer=true\nadmin.serverAddress=127.0.0.1\nadmin.serverPort={admin_port}\n\
         metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider\n\
         metricsProvider.httpPort={metrics_port}\n"
    );
    let (server, _c) = busy_server(&extra);
    let metrics = format!("http://127.0.0.1:{metrics_port}/metrics");
    assert!(wait_until(Duration::from_secs(10), || Command::new("curl")
        .args(["-sf", &metrics])
        .output()
        .is_ok_and(|o| o.status.success())));
    let samples = parse_prometheus(&curl(&metrics));
    for name in [
        "znode_count",
        "watch_count",
        "ephemerals_count",
        "num_alive_connections",
        "packets_received",
        "fsynctime_count",
        "paddock_txns_per_fsync_avg",
    ] {
        assert!(samples.contains_key(name), "metrics lack {name}");
    }
    assert_eq!(samples["ephemerals_count"], 1.0);
    assert!(samples.keys().any(|k| k.starts_with("paddock_core_connections{core=\"1\"}")));

    let admin = format!("http://127.0.0.1:{admin_port}/commands");
    for cmd in ["monitor", "ruok", "stats", "conf", "cons", "envi", "srvr", "wchs", "dump", "leader", "is_read_only"] {
        let body = curl(&format!("{admin}/{cmd}"));
        // Python's json module is the strict parser here (the test suite installs Python).
        let check = Command::new("python3")
            .args(["-c", "import json,sys; d=json.load(sys.stdin); assert d['error'] is None, d; print(d['command'])"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut p| {
                use std::io::Write;
                p.stdin.take().map(|mut i| i.write_all(body.as_bytes())).transpose()?;
                p.wait_with_output()
            })
            .expect("python3");
        assert!(check.status.success(), "{cmd}: not valid JSON: {body}");
    }
    let monitor = curl(&format!("{admin}/mntr"));
    assert!(monitor.contains("\"command\":\"monitor\"") && monitor.contains("\"znode_count\":"), "{monitor}");
    let _ = server;
}

#[test]
fn zktop_shows_the_server_in_a_terminal() {
    let (server, _c) = busy_server("4lw.commands.whitelist=stat, srst");
    let session = format!("paddock-zktop-{}", server.addr.port());
    let started = Command::new("tmux")
        .args(["new-session", "-d", "-s", &session, "-x", "120", "-y", "30"])
        .arg(format!("zktop --servers {}", server.connect_string()))
        .status()
        .expect("tmux (scripts/install-deps installs it and zktop)");
    assert!(started.success());
    let capture = || {
        Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &session])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let port = server.addr.port().to_string();
    let row_mode = |screen: &str| {
        let row = screen.lines().find(|l| l.contains(&port) && l.contains("127.0.0.1")).unwrap_or_default().to_string();
        row.split_whitespace().nth(3).map(str::to_string)
    };
    // zktop shows a row as soon as it polls; wait until it shows the server's mode.
    let shown = wait_until(Duration::from_secs(20), || {
        let screen = capture();
        screen.contains("nodecount:") && row_mode(&screen).is_some_and(|m| m != "U")
    });
    let screen = capture();
    let _ = Command::new("tmux").args(["kill-session", "-t", &session]).status();
    assert!(shown, "zktop did not show the server:\n{screen}");
    assert_eq!(row_mode(&screen).as_deref(), Some("S"), "mode column shows standalone:\n{screen}");
}

#[test]
fn a_client_that_half_closes_after_its_word_still_gets_the_answer() {
    use std::io::{Read, Write};
    // zktop and `nc -N` shut their sending side right after the command; the answer comes from
    // core 0 and must still be written (it was lost about one time in ten before).
    let server = ServerProcess::paddock(2, "");
    for i in 0..100 {
        let cmd = if i % 2 == 0 { "stat" } else { "mntr" };
        let mut s = std::net::TcpStream::connect(server.addr).expect("connect");
        s.write_all(cmd.as_bytes()).expect("send");
        s.shutdown(std::net::Shutdown::Write).expect("half-close");
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("read");
        assert!(!answer.is_empty(), "attempt {i}: {cmd} got no answer");
    }
}
