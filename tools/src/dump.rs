//! `paddock log dump` and `paddock snap dump` (like zkTxnLogToolkit and zkSnapShotToolkit), and
//! `paddock purge` (like zkCleanup.sh): the engine's files for operators, as text or JSON.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use engine::log::{self, LogEnd};
use engine::{Acl, Txn, TxnHeader};

/// A JSON string literal.
fn js(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Data shown as text when it is printable, else as hex (as the ZooKeeper toolkits do).
fn data_text(d: &[u8]) -> String {
    match std::str::from_utf8(d) {
        Ok(s) if s.chars().all(|c| !c.is_control() || c == '\n') => s.to_string(),
        _ => d.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(""),
    }
}

fn acl_text(acl: &[Acl]) -> String {
    acl.iter().map(|a| format!("{}:{}:{}", a.id.scheme, a.id.id, a.perms)).collect::<Vec<_>>().join(",")
}

fn txn_text(t: &Txn) -> String {
    match t {
        Txn::CreateSession { timeout_ms } => format!("createSession timeout={timeout_ms}"),
        Txn::CloseSession => "closeSession".into(),
        Txn::Create { path, data, acl, ephemeral_owner, parent_cversion } => format!(
            "create {path} data={} acl=[{}] ephemeralOwner={ephemeral_owner:#x} parentCversion={parent_cversion}",
            data_text(data),
            acl_text(acl)
        ),
        Txn::Delete { path } => format!("delete {path}"),
        Txn::SetData { path, data, version } => format!("setData {path} data={} version={version}", data_text(data)),
        Txn::SetAcl { path, acl, version } => format!("setACL {path} acl=[{}] aversion={version}", acl_text(acl)),
        Txn::Check { path } => format!("check {path}"),
        Txn::Multi(txns) => format!("multi [{}]", txns.iter().map(txn_text).collect::<Vec<_>>().join("; ")),
        Txn::Error { err } => format!("error {err}"),
    }
}

fn txn_json(t: &Txn) -> String {
    match t {
        Txn::CreateSession { timeout_ms } => format!("{{\"type\":\"createSession\",\"timeout\":{timeout_ms}}}"),
        Txn::CloseSession => "{\"type\":\"closeSession\"}".into(),
        Txn::Create { path, data, acl, ephemeral_owner, parent_cversion } => format!(
            "{{\"type\":\"create\",\"path\":{},\"data\":{},\"acl\":{},\"ephemeralOwner\":{ephemeral_owner},\"parentCversion\":{parent_cversion}}}",
            js(path),
            js(&data_text(data)),
            js(&acl_text(acl))
        ),
        Txn::Delete { path } => format!("{{\"type\":\"delete\",\"path\":{}}}", js(path)),
        Txn::SetData { path, data, version } => {
            format!("{{\"type\":\"setData\",\"path\":{},\"data\":{},\"version\":{version}}}", js(path), js(&data_text(data)))
        }
        Txn::SetAcl { path, acl, version } => {
            format!("{{\"type\":\"setACL\",\"path\":{},\"acl\":{},\"aversion\":{version}}}", js(path), js(&acl_text(acl)))
        }
        Txn::Check { path } => format!("{{\"type\":\"check\",\"path\":{}}}", js(path)),
        Txn::Multi(txns) => {
            format!("{{\"type\":\"multi\",\"txns\":[{}]}}", txns.iter().map(txn_json).collect::<Vec<_>>().join(","))
        }
        Txn::Error { err } => format!("{{\"type\":\"error\",\"err\":{err}}}"),
    }
}

fn header_text(h: &TxnHeader) -> String {
    format!("zxid {:#x} time {} session {:#x} cxid {:#x}", h.zxid, h.time_ms, h.session_id, h.cxid)
}

/// Prints every record of a log segment and how it ends; exit 1 if it is corrupt.
pub fn log_dump(file: &Path, json: bool) -> ExitCode {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("paddock: {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let scan = match log::scan(&bytes) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("paddock: {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let end = match scan.end {
        LogEnd::Clean { append_at } => format!("clean, next append at offset {append_at}"),
        LogEnd::Torn { offset, .. } => format!("torn write at offset {offset} (recovery truncates it)"),
        LogEnd::Corrupt { offset } => format!("CORRUPT at offset {offset} (valid records follow a damaged one)"),
    };
    let mut rows = Vec::new();
    for r in &scan.records {
        match engine::codec::decode_txn(&bytes[r.payload.clone()]) {
            Ok((h, t)) if json => rows.push(format!(
                "{{\"offset\":{},\"zxid\":{},\"time\":{},\"session\":{},\"cxid\":{},\"txn\":{}}}",
                r.offset,
                h.zxid,
                h.time_ms,
                h.session_id,
                h.cxid,
                txn_json(&t)
            )),
            Ok((h, t)) => rows.push(format!("{} {}", header_text(&h), txn_text(&t))),
            Err(e) => rows.push(format!("undecodable record at offset {}: {e}", r.offset)),
        }
    }
    if json {
        println!(
            "{{\"file\":{},\"firstZxid\":{},\"records\":[{}],\"end\":{}}}",
            js(&file.display().to_string()),
            scan.first_zxid,
            rows.join(","),
            js(&end)
        );
    } else {
        println!("Paddock transaction log {} (first zxid {:#x})", file.display(), scan.first_zxid);
        for r in &rows {
            println!("{r}");
        }
        println!("EOF: {} records, {end}", scan.records.len());
    }
    if matches!(scan.end, LogEnd::Corrupt { .. }) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Prints a snapshot's sessions and nodes; exit 1 if it is damaged.
pub fn snap_dump(file: &Path, json: bool) -> ExitCode {
    let s = match engine::snapshot::load(file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("paddock: {e}");
            return ExitCode::from(1);
        }
    };
    let mut nodes = s.nodes;
    nodes.sort_by(|a, b| a.0.cmp(&b.0));
    if json {
        let sessions: Vec<String> =
            s.sessions.iter().map(|(id, t)| format!("{{\"id\":{id},\"timeout\":{t}}}")).collect();
        let rows: Vec<String> = nodes
            .iter()
            .map(|(p, n)| {
                let st = &n.stat;
                format!(
                    "{{\"path\":{},\"czxid\":{},\"mzxid\":{},\"pzxid\":{},\"ctime\":{},\"mtime\":{},\"version\":{},\"cversion\":{},\"aversion\":{},\"ephemeralOwner\":{},\"dataLength\":{},\"data\":{},\"acl\":{}}}",
                    js(p), st.czxid, st.mzxid, st.pzxid, st.ctime, st.mtime, st.version, st.cversion, st.aversion,
                    st.ephemeral_owner, n.data.len(), js(&data_text(&n.data)), js(&acl_text(&n.acl))
                )
            })
            .collect();
        println!(
            "{{\"file\":{},\"zxid\":{},\"time\":{},\"sessions\":[{}],\"nodes\":[{}]}}",
            js(&file.display().to_string()),
            s.zxid,
            s.time_ms,
            sessions.join(","),
            rows.join(",")
        );
    } else {
        println!("Paddock snapshot {} (zxid {:#x}, taken at {})", file.display(), s.zxid, s.time_ms);
        println!("Sessions ({}):", s.sessions.len());
        for (id, t) in &s.sessions {
            println!("  {id:#x} timeout {t}");
        }
        println!("Nodes ({}):", nodes.len());
        for (p, n) in &nodes {
            let st = &n.stat;
            println!(
                "{p}\n  cZxid = {:#x} mZxid = {:#x} pZxid = {:#x} version = {} cversion = {} aclVersion = {} ephemeralOwner = {:#x} dataLength = {}",
                st.czxid, st.mzxid, st.pzxid, st.version, st.cversion, st.aversion, st.ephemeral_owner, n.data.len()
            );
        }
    }
    ExitCode::SUCCESS
}

/// Deletes all but the newest `retain` snapshots and the log segments only they needed.
pub fn purge(cfg: &node::config::Config, retain: usize) -> ExitCode {
    let dirs = match node::persist::Dirs::create(cfg) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("paddock: {e}");
            return ExitCode::from(2);
        }
    };
    match engine::purge::purge(&dirs.snapshots, &dirs.log, retain) {
        Ok(r) => {
            for p in r.snapshots.iter().chain(r.segments.iter()) {
                println!("removed {}", p.display());
            }
            println!("kept the newest {} snapshots and the logs they need", retain.max(3));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("paddock: purge failed: {e}");
            ExitCode::from(1)
        }
    }
}
