//! The AdminServer (`/commands/<name>`, JSON) and the Prometheus endpoint (`/metrics`), as
//! ZooKeeper configures them: tiny HTTP/1.1 responders on core 0, one request per connection,
//! fed by the same values as the four-letter words.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpListener;

use crate::fourlw::{self, Value};
use crate::tree_core::TreeCore;

/// The largest request head read; more is refused.
const REQUEST_HEAD_MAX_BYTES: usize = 8 * 1024;
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A response: status, content type, body.
pub type HttpResponse = (u16, &'static str, String);

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_value(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::Float(f) if f.is_finite() => format!("{f}"),
        Value::Float(_) => "null".into(),
        Value::Text(t) => json_string(t),
    }
}

fn json_object(fields: &[(String, String)]) -> String {
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("{}:{v}", json_string(k))).collect();
    format!("{{{}}}", body.join(","))
}

/// The AdminServer's commands: (name, aliases).
pub const ADMIN_COMMANDS: &[(&str, &[&str])] = &[
    ("configuration", &["conf", "config"]),
    ("connection_stat_reset", &["crst"]),
    ("connections", &["cons"]),
    ("dirs", &[]),
    ("dump", &[]),
    ("environment", &["env", "envi"]),
    ("get_trace_mask", &["gtmk"]),
    ("is_read_only", &["isro"]),
    ("leader", &["lead"]),
    ("monitor", &["mntr"]),
    ("ruok", &[]),
    ("server_stats", &["srvr"]),
    ("stats", &["stat"]),
    ("stat_reset", &["srst"]),
    ("watch_summary", &["wchs"]),
    ("watches", &["wchc"]),
    ("watches_by_path", &["wchp"]),
];

/// Answers `/commands/<name>` and `/commands`.
pub(crate) fn admin(path: &str, core: &mut TreeCore) -> HttpResponse {
    let name = path.trim_start_matches("/commands").trim_start_matches('/').trim_end_matches('/');
    if name.is_empty() {
        let links: Vec<String> =
            ADMIN_COMMANDS.iter().map(|(n, _)| format!("<a href=\"/commands/{n}\">{n}</a><br/>")).collect();
        return (200, "text/html", format!("<html><body>{}</body></html>", links.join("\n")));
    }
    let Some((command, _)) = ADMIN_COMMANDS.iter().find(|(n, aliases)| *n == name || aliases.contains(&name)) else {
        let body = json_object(&[
            ("command".into(), json_string(name)),
            ("error".into(), json_string(&format!("Unknown command: {name}"))),
        ]);
        return (404, "application/json", body);
    };
    let mut fields: Vec<(String, String)> =
        vec![("command".into(), json_string(command)), ("error".into(), "null".into())];
    match *command {
        "connection_stat_reset" => core.reset_connection_stats(),
        "stat_reset" => core.reset_server_stats(),
        _ => {}
    }
    let server = &core.server;
    let rt = core.info();
    match *command {
        "monitor" => {
            for (k, v) in fourlw::monitor(server, &rt) {
                fields.push((k.trim_start_matches("zk_").to_string(), json_value(&v)));
            }
        }
        "configuration" => {
            for (k, v) in fourlw::configuration(rt.config) {
                fields.push((k.to_string(), json_string(&v)));
            }
        }
        "environment" => {
            let env: Vec<String> =
                fourlw::environment().iter().map(|(k, v)| json_object(&[(k.to_string(), json_string(v))])).collect();
            fields.push(("environment".into(), format!("[{}]", env.join(","))));
        }
        "is_read_only" => fields.push(("read_only".into(), "false".into())),
        "leader" => {
            fields.push(("is_leader".into(), "false".into()));
            fields.push(("leader_id".into(), "-1".into()));
        }
        "server_stats" | "stats" => {
            let tree = server.tree();
            fields.push(("version".into(), json_string(fourlw::VERSION)));
            fields.push(("read_only".into(), "false".into()));
            let stats = json_object(&[
                ("packets_sent".into(), server.counters().packets_sent.to_string()),
                ("packets_received".into(), server.counters().packets_received.to_string()),
                ("max_latency".into(), rt.latency.max_ms().to_string()),
                ("min_latency".into(), rt.latency.min_ms().to_string()),
                ("avg_latency".into(), format!("{}", rt.latency.avg_ms())),
                ("outstanding_requests".into(), rt.outstanding.to_string()),
                ("last_processed_zxid".into(), tree.last_zxid().to_string()),
                ("num_alive_client_connections".into(), rt.per_core_connections.iter().sum::<usize>().to_string()),
                ("server_state".into(), json_string("standalone")),
            ]);
            fields.push(("server_stats".into(), stats));
            fields.push(("node_count".into(), (tree.node_count() + 1).to_string()));
        }
        "connections" | "dump" => {
            let conns: Vec<String> = server
                .connections()
                .iter()
                .map(|(_, c)| {
                    json_object(&[
                        ("remote_socket_address".into(), json_string(&c.remote.to_string())),
                        ("session_id".into(), json_string(&format!("0x{:x}", c.session_id))),
                        ("packets_received".into(), c.received.to_string()),
                        ("packets_sent".into(), c.sent.to_string()),
                        ("session_timeout".into(), c.timeout_ms.to_string()),
                        ("last_operation".into(), json_string(c.last_op)),
                    ])
                })
                .collect();
            fields.push(("connections".into(), format!("[{}]", conns.join(","))));
            let tree = server.tree();
            let sessions: Vec<String> = tree.sessions().keys().map(|id| json_string(&format!("0x{id:x}"))).collect();
            fields.push(("sessions".into(), format!("[{}]", sessions.join(","))));
        }
        "watch_summary" => {
            let (sessions, paths, total) = fourlw::watch_summary(server);
            fields.push(("num_connections".into(), sessions.to_string()));
            fields.push(("num_paths".into(), paths.to_string()));
            fields.push(("num_total_watches".into(), total.to_string()));
        }
        "watches" => {
            let m: Vec<(String, String)> = fourlw::watches_by_session(server)
                .into_iter()
                .map(|(sid, paths)| {
                    let ps: Vec<String> = paths.iter().map(|p| json_string(p)).collect();
                    (format!("{sid}"), format!("[{}]", ps.join(",")))
                })
                .collect();
            fields.push(("session_id_to_watched_paths".into(), json_object(&m)));
        }
        "watches_by_path" => {
            let m: Vec<(String, String)> = fourlw::watches_by_path(server)
                .into_iter()
                .map(|(p, sids)| {
                    let ids: Vec<String> = sids.iter().map(|s| s.to_string()).collect();
                    (p, format!("[{}]", ids.join(",")))
                })
                .collect();
            fields.push(("path_to_session_ids".into(), json_object(&m)));
        }
        "get_trace_mask" => fields.push(("tracemask".into(), "0".into())),
        "dirs" => {
            let (data, log) = fourlw::dir_sizes(rt.config);
            fields.push(("datadir_size".into(), data.to_string()));
            fields.push(("logdir_size".into(), log.to_string()));
        }
        _ => {}
    }
    (200, "application/json", json_object(&fields))
}

/// Prometheus text exposition of the monitor values, with ZooKeeper's metric names (its
/// Prometheus provider drops the `zk_` prefix) and Paddock's own.
pub(crate) fn prometheus(core: &TreeCore) -> String {
    let server = &core.server;
    let rt = core.info();
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, lines: &[String]| {
        out.push_str(&format!("# HELP {name} {name}\n# TYPE {name} {kind}\n"));
        for l in lines {
            out.push_str(l);
            out.push('\n');
        }
    };
    for (k, v) in fourlw::monitor(server, &rt) {
        let name = k.trim_start_matches("zk_");
        let number = match v {
            Value::Int(i) => i as f64,
            Value::Float(f) => f,
            Value::Text(_) => continue,
        };
        if name.starts_with("paddock_core_") || name.starts_with("paddock_fsync_latency_us_") {
            continue;
        }
        let kind = if matches!(name, "packets_received" | "packets_sent" | "paddock_fsync_count" | "paddock_fsync_txns")
        {
            "counter"
        } else {
            "gauge"
        };
        metric(name, kind, &[format!("{name} {number:?}")]);
    }
    let per_core: Vec<String> = rt
        .per_core_connections
        .iter()
        .enumerate()
        .map(|(core, n)| format!("paddock_core_connections{{core=\"{core}\"}} {:?}", *n as f64))
        .collect();
    metric("paddock_core_connections", "gauge", &per_core);
    let h = &rt.log.fsync_latency_us;
    let mut lines: Vec<String> = [0.5, 0.9, 0.99]
        .iter()
        .map(|q| format!("fsynctime{{quantile=\"{q}\"}} {:?}", h.value_at_quantile(*q) as f64 / 1000.0))
        .collect();
    lines.push(format!("fsynctime_count {:?}", h.len() as f64));
    lines.push(format!("fsynctime_sum {:?}", h.mean() * h.len() as f64 / 1000.0));
    metric("fsynctime", "summary", &lines);
    out
}

/// Binds `addr` and answers each request with `handler`, on the calling core, until the process
/// ends. A bind failure is logged and the server runs on without this endpoint, as ZooKeeper does.
pub(crate) async fn serve(
    what: &'static str,
    addr: SocketAddr,
    core: Rc<RefCell<TreeCore>>,
    handler: fn(&str, &mut TreeCore) -> HttpResponse,
) {
    let listener = match crate::runtime::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(%addr, error = %e, "{what} not started");
            return;
        }
    };
    tracing::info!(%addr, "{what} listening");
    // SAFETY: a bound, listening, non-blocking socket that nothing else owns.
    let listener = unsafe { TcpListener::from_raw_fd(listener.into_raw_fd()) };
    loop {
        let Ok(stream) = listener.accept().await else { continue };
        let core = core.clone();
        glommio::spawn_local(async move {
            let mut stream = stream;
            let _ = stream.set_read_timeout(Some(REQUEST_TIMEOUT));
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < REQUEST_HEAD_MAX_BYTES {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&head);
            let mut parts = text.split_whitespace();
            let (status, kind, body) = match (parts.next(), parts.next()) {
                (Some("GET"), Some(target)) => {
                    let path = target.split('?').next().unwrap_or("/");
                    handler(path, &mut core.borrow_mut())
                }
                _ => (405, "text/plain", "only GET is served\n".to_string()),
            };
            let reason = match status {
                200 => "OK",
                404 => "Not Found",
                _ => "Method Not Allowed",
            };
            let response = format!(
                "HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.close().await;
        })
        .detach();
    }
}

/// The handler of the Prometheus endpoint.
pub(crate) fn metrics(path: &str, core: &mut TreeCore) -> HttpResponse {
    if path == "/metrics" || path == "/" {
        (200, "text/plain; version=0.0.4; charset=utf-8", prometheus(core))
    } else {
        (404, "text/plain", "not found\n".into())
    }
}
