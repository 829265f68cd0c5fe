//! `paddock bench load` end to end: it drives Paddock and Apache ZooKeeper through the same
//! protocol code, reports JSON a script can trust, leaves no znodes behind, and turns an
//! unreachable server or a server lost mid-run into a failing exit code.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};

use bench::client::Client;
use node::proto::{op, Request, Response};
use paddock_tests::{free_port, paddock_bin, ServerProcess};
use serde_json::Value;

fn load(addr: SocketAddr, args: &[&str]) -> Output {
    Command::new(paddock_bin())
        .args(["bench", "load", "--servers", &addr.to_string(), "--json"])
        .args(args)
        .output()
        .expect("run paddock bench load")
}

/// The JSON report of a run that must have succeeded.
fn report(out: &Output) -> Value {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}; stderr:\n{stderr}", out.status.code());
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn f(v: &Value, path: &[&str]) -> f64 {
    path.iter().fold(v, |v, k| &v[k]).as_f64().unwrap_or_else(|| panic!("{path:?} missing in {v}"))
}

/// Throughput, zero errors and ordered percentiles: what every clean run reports.
fn assert_clean(r: &Value) {
    assert!(f(r, &["throughput_ops_s"]) > 0.0, "{r}");
    assert!(f(r, &["ok"]) > 0.0, "{r}");
    assert_eq!(f(r, &["errors"]), 0.0, "{r}");
    assert_eq!(r["errors_by_code"], serde_json::json!({}), "{r}");
    assert_eq!(r["sessions_lost"], 0, "{r}");
    let p = |q: &str| f(r, &["latency_ms", q]);
    assert!(0.0 < p("p50") && p("p50") <= p("p90") && p("p90") <= p("p99") && p("p99") <= p("max"), "{r}");
}

/// No `/bench-*` prefix is left at the root once a run is over.
fn assert_no_key_space_left(addr: SocketAddr) {
    let mut c = Client::connect(addr, 4000).expect("connect");
    let reply = c.call(op::GET_CHILDREN, Request::GetChildren { path: "/".into(), watch: false }).expect("ls /");
    let Some(Response::Children(children)) = reply.response else { panic!("ls / failed: {reply:?}") };
    assert!(children.iter().all(|c| !c.starts_with("bench-")), "left behind: {children:?}");
}

#[test]
fn a_mixed_run_against_paddock_reports_throughput_with_no_errors() {
    let server = ServerProcess::paddock(2, "");
    let hist = server.dir.join("latency.hgrm");
    let hist_arg = hist.to_string_lossy().into_owned();
    let out = load(
        server.addr,
        &["--duration", "3", "--warmup", "0.5", "--sessions", "4", "--in-flight", "8", "--hist-out", &hist_arg],
    );
    let r = report(&out);
    assert_clean(&r);
    assert_eq!(r["ops_kind"], "mixed");
    // The window, plus the last replies to requests sent inside it.
    assert!((3.0..3.5).contains(&f(&r, &["elapsed_s"])), "{r}");
    assert!(f(&r, &["by_kind", "get", "ok"]) > f(&r, &["by_kind", "set", "ok"]), "90% reads: {r}");
    // A progress line per second goes to stderr.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.lines().filter(|l| l.contains("ops/s") && l.contains("p99")).count() >= 3, "{stderr}");
    // HdrHistogram's percentile distribution, whose total is every successful op.
    let text = std::fs::read_to_string(&hist).expect("--hist-out file");
    assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)\n\n"), "{text}");
    let total = format!("Total count    = {:>12}]", f(&r, &["ok"]));
    assert!(text.contains(&total), "{total} not in:\n{text}");
    assert_no_key_space_left(server.addr);
}

#[test]
fn write_kinds_and_a_target_rate_run_clean_against_paddock() {
    let server = ServerProcess::paddock(2, "");
    for kind in ["create-delete", "multi", "set"] {
        let r = report(&load(server.addr, &["--ops-kind", kind, "--ops", "3000", "--warmup", "0", "--duration", "30"]));
        assert_clean(&r);
        assert!(f(&r, &["ops"]) <= 3000.0, "bounded by --ops: {r}");
    }
    let r = report(&load(server.addr, &["--ops-kind", "get", "--rate", "2000", "--duration", "2", "--warmup", "0"]));
    assert_clean(&r);
    assert_eq!(f(&r, &["rate_target_ops_s"]), 2000.0);
    // An open loop sends on schedule, 2000/s for 2 s, never more; what a stall kept back past
    // the drain grace is reported as unsent rather than silently dropped.
    let (ops, unsent) = (f(&r, &["ops"]), f(&r, &["unsent_ops"]));
    assert!(ops <= 4000.0 && (3900.0..=4000.0).contains(&(ops + unsent)), "{r}");
    assert_no_key_space_left(server.addr);
}

#[test]
fn the_same_load_drives_apache_zookeeper() {
    let zk = ServerProcess::zookeeper("");
    let r = report(&load(zk.addr, &["--duration", "2", "--warmup", "0.5", "--sessions", "4", "--in-flight", "8"]));
    assert_clean(&r);
    let r = report(&load(zk.addr, &["--ops-kind", "multi", "--ops", "1000", "--warmup", "0"]));
    assert_clean(&r);
    assert_no_key_space_left(zk.addr);
}

#[test]
fn an_unreachable_server_fails_fast_with_exit_code_2() {
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let out = load(addr, &["--duration", "1"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot reach") && stderr.contains(&addr.to_string()), "{stderr}");
}

#[test]
fn a_server_lost_mid_run_counts_connection_loss_and_fails_the_run() {
    let mut server = ServerProcess::paddock(1, "");
    let mut child = Command::new(paddock_bin())
        .args(["bench", "load", "--servers", &server.addr.to_string(), "--json", "--duration", "30"])
        .args(["--warmup", "0", "--sessions", "2", "--ops-kind", "set"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run paddock bench load");
    let stderr = child.stderr.take().expect("piped stderr");
    let mut lines = BufReader::new(stderr).lines();
    // The first progress line says the load is running: then the server dies.
    let first = lines.find_map(|l| l.ok().filter(|l| l.contains("ops/s")));
    assert!(first.is_some(), "no progress line");
    server.kill();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let out = child.wait_with_output().expect("wait for paddock bench load");
    assert_eq!(out.status.code(), Some(1), "stderr:\n{}", rest.join("\n"));
    let r: Value = serde_json::from_slice(&out.stdout).expect("JSON even when the run fails");
    assert_eq!(r["errors_by_code"]["-4"]["name"], "CONNECTIONLOSS", "{r}");
    assert_eq!(r["sessions_lost"], 2, "{r}");
    assert!(rest.iter().any(|l| l.contains("2 of 2 sessions lost")), "{}", rest.join("\n"));
}
