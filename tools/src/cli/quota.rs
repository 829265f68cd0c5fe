//! setquota, listquota and delquota: client-side bookkeeping under `/zookeeper/quota`, done with
//! the same reads and writes as zkCli 3.8 (`SetQuotaCommand`, `ListQuotaCommand`,
//! `DelQuotaCommand`, `StatsTrack`), so the nodes they leave match byte for byte.

use std::collections::BTreeMap;

use node::proto::{create_flags, op, Request, Response};

use super::commands::{self, cli, decode, keeper, Failure, Outcome};
use super::format::{self, code};
use super::parse::{self, Opt, Spec};
use super::session::Session;
use super::{err, out};

const QUOTA_ZOOKEEPER: &str = "/zookeeper/quota";
const LIMIT_NODE: &str = "zookeeper_limits";
const STAT_NODE: &str = "zookeeper_stats";

/// `StatsTrack`: `count=..,bytes=..` and, when other keys are set, zkCli 3.8's odd tail
/// `=;byteHardLimit=..;countHardLimit=..` (which the server's parser splits on `[,;]+`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsTrack {
    stats: BTreeMap<String, i64>,
}

impl StatsTrack {
    /// Parses node data; pieces that do not parse are skipped (zkCli would throw).
    pub fn parse(data: &[u8]) -> StatsTrack {
        let text = String::from_utf8_lossy(data);
        let mut stats = BTreeMap::new();
        for pair in text.split([',', ';']).filter(|p| !p.is_empty()) {
            let kv = format::java_split(pair, '=');
            let value = match kv.get(1) {
                Some(&"") => Some(-1),
                Some(v) => format::parse_java_long(v).ok(),
                None => None,
            };
            if let (Some(k), Some(v)) = (kv.first(), value) {
                stats.insert(k.to_string(), v);
            }
        }
        StatsTrack { stats }
    }

    fn get(&self, key: &str) -> i64 {
        self.stats.get(key).copied().unwrap_or(-1)
    }

    fn set(&mut self, key: &str, v: i64) {
        self.stats.insert(key.to_string(), v);
    }

    /// `StatsTrack.toString()`.
    pub fn render(&self) -> String {
        let mut s = format!("count={},bytes={}", self.get("count"), self.get("bytes"));
        let others: Vec<_> = self.stats.iter().filter(|(k, _)| *k != "count" && *k != "bytes").collect();
        if !others.is_empty() {
            s.push('=');
            for (k, v) in others {
                s.push_str(&format!(";{k}={v}"));
            }
        }
        s
    }
}

/// What the quota helpers throw, kept apart so each command maps them as its Java does.
enum Thrown {
    /// `IllegalArgumentException` (bad path, missing node, nested quota).
    Illegal(String),
    /// A `KeeperException` with the client path it names.
    Keeper(i32, String),
    /// Already a command failure.
    Done(Failure),
}

impl From<Failure> for Thrown {
    fn from(f: Failure) -> Thrown {
        Thrown::Done(f)
    }
}

type Q<T> = Result<T, Thrown>;

fn call(s: &Session, opcode: i32, req: Request, path: &str) -> Q<Vec<u8>> {
    match s.call(opcode, req) {
        Ok((h, body)) if h.err == 0 => Ok(body),
        Ok((h, _)) => Err(Thrown::Keeper(h.err, path.to_string())),
        Err(c) => Err(Thrown::Keeper(c, path.to_string())),
    }
}

fn checked(path: &str) -> Q<()> {
    format::validate_path(path).map_err(Thrown::Illegal)
}

fn exists(s: &Session, path: &str) -> Q<bool> {
    checked(path)?;
    match call(s, op::EXISTS, Request::Exists { path: s.server_path(path), watch: false }, path) {
        Ok(_) => Ok(true),
        Err(Thrown::Keeper(code::NO_NODE, _)) => Ok(false),
        Err(e) => Err(e),
    }
}

fn get_data(s: &Session, path: &str) -> Q<Vec<u8>> {
    checked(path)?;
    let body = call(s, op::GET_DATA, Request::GetData { path: s.server_path(path), watch: false }, path)?;
    match decode(op::GET_DATA, &body)? {
        Response::Data(d, _) => Ok(d),
        _ => Err(Thrown::Done(cli("unexpected reply to getData"))),
    }
}

fn children(s: &Session, path: &str) -> Q<Vec<String>> {
    checked(path)?;
    let body = call(s, op::GET_CHILDREN, Request::GetChildren { path: s.server_path(path), watch: false }, path)?;
    match decode(op::GET_CHILDREN, &body)? {
        Response::Children(c) => Ok(c),
        _ => Err(Thrown::Done(cli("unexpected reply to getChildren"))),
    }
}

fn create(s: &Session, path: &str, data: Option<&[u8]>) -> Q<()> {
    let acl = engine::acl::open_acl_unsafe();
    match commands::create_node(s, path, data, &acl, create_flags::PERSISTENT, None) {
        Ok(_) => Ok(()),
        Err(f) => Err(Thrown::Done(f)),
    }
}

/// Like [`create`], a node that already exists being fine.
fn ensure(s: &Session, path: &str) -> Q<()> {
    let server_path = s.server_path(path);
    let acl = engine::acl::open_acl_unsafe();
    match s.call_frame(|x| commands::create_frame(x, op::CREATE, &server_path, None, &acl, 0, -1)) {
        Ok((h, _)) if h.err == 0 || h.err == -110 => Ok(()),
        Ok((h, _)) => Err(Thrown::Keeper(h.err, path.to_string())),
        Err(c) => Err(Thrown::Keeper(c, path.to_string())),
    }
}

fn set_data(s: &Session, path: &str, data: &[u8]) -> Q<()> {
    checked(path)?;
    call(s, op::SET_DATA, Request::SetData { path: s.server_path(path), data: data.to_vec(), version: -1 }, path)?;
    Ok(())
}

fn delete(s: &Session, path: &str) -> Q<()> {
    checked(path)?;
    call(s, op::DELETE, Request::Delete { path: s.server_path(path), version: -1 }, path)?;
    Ok(())
}

/// The usual mapping: an `IllegalArgumentException` is a `MalformedPathException`, a
/// `KeeperException` a `CliWrapperException`.
fn plain(t: Thrown) -> Failure {
    match t {
        Thrown::Illegal(m) => cli(m),
        Thrown::Keeper(c, p) => keeper(c, Some(&p)),
        Thrown::Done(f) => f,
    }
}

const fn o(name: &'static str, takes_value: bool, description: &'static str) -> Opt {
    Opt { name, takes_value, description }
}

const SET_QUOTA: Spec = Spec {
    opts: &[
        o("n", true, "num soft quota"),
        o("b", true, "bytes soft quota"),
        o("N", true, "num hard quota"),
        o("B", true, "bytes hard quota"),
    ],
    group: Some((&["n", "b", "N", "B"], true)),
};

/// `setquota -n|-b|-N|-B val path`.
pub fn set_quota(s: &Session, words: &mut [String]) -> Outcome {
    let p = parse_command(&SET_QUOTA, words)?;
    let path = p.args[1].clone();
    if path.starts_with(QUOTA_ZOOKEEPER) {
        err(&format!("cannot set a quota under the path: {QUOTA_ZOOKEEPER}"));
        return Ok(());
    }
    let mut quota = StatsTrack::default();
    for k in ["count", "bytes", "countHardLimit", "byteHardLimit"] {
        quota.set(k, -1);
    }
    for (flag, key, count) in
        [("n", "count", true), ("b", "bytes", false), ("N", "countHardLimit", true), ("B", "byteHardLimit", false)]
    {
        let Some(v) = p.value(flag) else { continue };
        let parsed = if count { format::parse_java_int(v).map(i64::from) } else { format::parse_java_long(v) };
        match parsed {
            Err(_) => {
                err("NumberFormatException happens when parsing the option value");
                return Ok(());
            }
            Ok(n) if count && n <= 0 => {
                err("the num quota must be greater than zero");
                return Ok(());
            }
            Ok(n) if !count && n < 0 => {
                err("the bytes quota must be greater than or equal to zero");
                return Ok(());
            }
            Ok(n) => quota.set(key, n),
        }
    }
    create_quota(s, &path, &quota).map_err(plain)
}

fn parse_command(spec: &Spec, words: &[String]) -> Result<parse::Parsed, Failure> {
    let mut p = parse::parse(spec, &words[1..]).map_err(cli)?;
    p.args.insert(0, words[0].clone());
    if p.args.len() < 2 {
        let options = commands::find(&words[0]).map(|c| c.options).unwrap_or("");
        return Err(cli(format!("{} {options}", words[0])));
    }
    Ok(p)
}

/// `SetQuotaCommand.createQuota`.
fn create_quota(s: &Session, path: &str, quota: &StatsTrack) -> Q<()> {
    if !exists(s, path)? {
        return Err(Thrown::Illegal(format!("{path} does not exist.")));
    }
    check_child_quota(s, path)?;
    check_parent_quota(s, path)?;
    if !exists(s, QUOTA_ZOOKEEPER)? {
        ensure(s, "/zookeeper")?;
        ensure(s, QUOTA_ZOOKEEPER)?;
    }
    let splits = format::java_split(path, '/');
    let mut quota_path = QUOTA_ZOOKEEPER.to_string();
    for part in splits.iter().skip(1) {
        quota_path = format!("{quota_path}/{part}");
        if !exists(s, &quota_path)? {
            ensure(s, &quota_path)?;
        }
    }
    let stat_path = format!("{quota_path}/{STAT_NODE}");
    let limit_path = format!("{quota_path}/{LIMIT_NODE}");
    if !exists(s, &limit_path)? {
        create(s, &limit_path, Some(quota.render().as_bytes()))?;
        let mut stats = StatsTrack::default();
        stats.set("count", 0);
        stats.set("bytes", 0);
        create(s, &stat_path, Some(stats.render().as_bytes()))?;
        let limits = StatsTrack::parse(&get_data(s, &limit_path)?);
        let current = StatsTrack::parse(&get_data(s, &stat_path)?);
        warn_below_usage(&limits, &current);
    } else {
        let mut limits = StatsTrack::parse(&get_data(s, &limit_path)?);
        for key in ["count", "bytes", "countHardLimit", "byteHardLimit"] {
            if quota.get(key) > -1 {
                limits.set(key, quota.get(key));
            }
        }
        let current = StatsTrack::parse(&get_data(s, &stat_path)?);
        warn_below_usage(&limits, &current);
        set_data(s, &limit_path, limits.render().as_bytes())?;
    }
    Ok(())
}

/// `checkQuota`: a limit already below the usage is set anyway, with a warning on stdout.
fn warn_below_usage(limits: &StatsTrack, current: &StatsTrack) {
    let below = |soft: &str, hard: &str, used: &str| {
        (limits.get(soft) > -1 && limits.get(soft) < current.get(used))
            || (limits.get(hard) > -1 && limits.get(hard) < current.get(used))
    };
    if below("count", "countHardLimit", "count") {
        out(&format!(
            "[Warning]: the count quota you create is less than the existing count:{}\n",
            current.get("count")
        ));
    }
    if below("bytes", "byteHardLimit", "bytes") {
        out(&format!(
            "[Warning]: the bytes quota you create is less than the existing bytes:{}\n",
            current.get("bytes")
        ));
    }
}

/// `checkIfChildQuota`: no node below `path` may have a quota already.
fn check_child_quota(s: &Session, path: &str) -> Q<()> {
    let real = format!("{QUOTA_ZOOKEEPER}{path}");
    let own = real.clone();
    let mut found: Option<Thrown> = None;
    let visited = commands::visit_subtree(s, &real, false, &mut |s, quota_path| {
        let kids = match children(s, quota_path) {
            Ok(k) => k,
            Err(_) => return Ok(()),
        };
        if quota_path != own && kids.iter().any(|c| c == LIMIT_NODE) {
            found = Some(Thrown::Illegal(format!(
                "{path} has a child {} which has a quota",
                &quota_path[QUOTA_ZOOKEEPER.len()..]
            )));
            return Err(cli(""));
        }
        Ok(())
    });
    if let Some(t) = found {
        return Err(t);
    }
    match visited {
        Ok(()) => Ok(()),
        // The quota tree of `path` not existing yet is the usual case.
        Err(Failure::Cli(m, _)) if m == format::wrapper_message(code::NO_NODE, Some(&real)) => Ok(()),
        Err(f) => {
            // visitSubTreeDFS validates the path first: an IllegalArgumentException.
            if let Err(m) = format::validate_path(&real) {
                return Err(Thrown::Illegal(m));
            }
            Err(Thrown::Done(f))
        }
    }
}

/// `checkIfParentQuota`: no node above `path` may have a quota already.
fn check_parent_quota(s: &Session, path: &str) -> Q<()> {
    let splits = format::java_split(path, '/');
    let own = format!("{QUOTA_ZOOKEEPER}{path}");
    let mut quota_path = QUOTA_ZOOKEEPER.to_string();
    for part in splits.iter().take(splits.len().saturating_sub(1)).skip(1) {
        quota_path = format!("{quota_path}/{part}");
        let kids = match children(s, &quota_path) {
            Ok(k) => k,
            Err(Thrown::Keeper(code::NO_NODE, _)) => return Ok(()),
            Err(e) => return Err(e),
        };
        if kids.is_empty() {
            return Ok(());
        }
        if quota_path != own && kids.iter().any(|c| c == LIMIT_NODE) {
            return Err(Thrown::Illegal(format!(
                "{path} has a parent {} which has a quota",
                &quota_path[QUOTA_ZOOKEEPER.len()..]
            )));
        }
    }
    Ok(())
}

const NONE: Spec = Spec { opts: &[], group: None };

/// `listquota path`.
pub fn list_quota(s: &Session, words: &mut [String]) -> Outcome {
    let p = parse_command(&NONE, words)?;
    let path = &p.args[1];
    err(&format!("absolute path is {QUOTA_ZOOKEEPER}{path}/{LIMIT_NODE}"));
    let read = (|| -> Q<(StatsTrack, StatsTrack)> {
        let limits = StatsTrack::parse(&get_data(s, &format!("{QUOTA_ZOOKEEPER}{path}/{LIMIT_NODE}"))?);
        let stats = StatsTrack::parse(&get_data(s, &format!("{QUOTA_ZOOKEEPER}{path}/{STAT_NODE}"))?);
        Ok((limits, stats))
    })();
    match read {
        Ok((limits, stats)) => {
            out(&format!("Output quota for {path} {}\nOutput stat for {path} {}\n", limits.render(), stats.render()));
            Ok(())
        }
        Err(Thrown::Keeper(code::NO_NODE, _)) => {
            err(&format!("quota for {path} does not exist."));
            Ok(())
        }
        Err(t) => Err(plain(t)),
    }
}

const DEL_QUOTA: Spec = Spec {
    opts: &[
        o("n", false, "num soft quota"),
        o("b", false, "bytes soft quota"),
        o("N", false, "num hard quota"),
        o("B", false, "bytes hard quota"),
    ],
    group: Some((&["n", "b", "N", "B"], false)),
};

/// `delquota [-n|-b|-N|-B] path`.
pub fn del_quota(s: &Session, words: &mut [String]) -> Outcome {
    let p = parse_command(&DEL_QUOTA, words)?;
    let path = p.args[1].clone();
    let which: Vec<&str> = [("n", "count"), ("b", "bytes"), ("N", "countHardLimit"), ("B", "byteHardLimit")]
        .iter()
        .filter(|(f, _)| p.has(f))
        .map(|(_, k)| *k)
        .collect();
    match del(s, &path, &which) {
        Ok(()) => Ok(()),
        Err(Thrown::Keeper(code::NO_NODE, _)) => {
            err(&format!("quota for {path} does not exist."));
            Ok(())
        }
        Err(t) => Err(plain(t)),
    }
}

/// `DelQuotaCommand.delQuota`: all of the quota when no kind is named, else those limits.
fn del(s: &Session, path: &str, which: &[&str]) -> Q<()> {
    let parent = format!("{QUOTA_ZOOKEEPER}{path}");
    let limit_path = format!("{parent}/{LIMIT_NODE}");
    if !exists(s, &limit_path)? {
        out(&format!("Quota does not exist for {path}\n"));
        return Ok(());
    }
    let mut limits = StatsTrack::parse(&get_data(s, &limit_path)?);
    if which.is_empty() {
        for c in children(s, &parent)? {
            delete(s, &format!("{parent}/{c}"))?;
        }
        trim_proc_quotas(s, &parent)
    } else {
        for key in which {
            limits.set(key, -1);
        }
        set_data(s, &limit_path, limits.render().as_bytes())
    }
}

/// `trimProcQuotas`: removes the quota tree's now empty nodes upwards.
fn trim_proc_quotas(s: &Session, path: &str) -> Q<()> {
    let mut path = path.to_string();
    while path != QUOTA_ZOOKEEPER {
        if !children(s, &path)?.is_empty() {
            return Ok(());
        }
        delete(s, &path)?;
        path = path[..path.rfind('/').unwrap_or(0)].to_string();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_track_renders_as_zookeeper_3_8_does() {
        let mut q = StatsTrack::default();
        for k in ["count", "bytes", "countHardLimit", "byteHardLimit"] {
            q.set(k, -1);
        }
        q.set("count", 5);
        assert_eq!(q.render(), "count=5,bytes=-1=;byteHardLimit=-1;countHardLimit=-1");
        assert_eq!(StatsTrack::parse(q.render().as_bytes()), q);
        assert_eq!(StatsTrack::parse(b"count=1,bytes=0").render(), "count=1,bytes=0");
    }
}
