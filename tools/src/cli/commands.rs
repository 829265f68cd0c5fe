//! zkCli 3.8's commands (`org.apache.zookeeper.cli.*Command`): each parses its words with the
//! same options, checks what the Java client checks before sending, sends the same request and
//! prints the same lines to the same stream.

use std::collections::VecDeque;

use engine::{Acl, Stat};
use node::proto::{add_watch_mode, create_flags, op, watcher_type, Reader, Request, Response};

use super::format::{self, code, removed, state};
use super::parse::{self, Opt, Parsed, Spec};
use super::quota;
use super::session::{Reply, Session};
use super::{err, out};

/// Why a command failed, as zkCli reports it.
#[derive(Debug)]
pub enum Failure {
    /// A `CliException`: its message goes to stderr and its code becomes the exit code.
    Cli(String, u8),
    /// An exception zkCli does not catch: the JVM prints `Exception in thread "main" ...` and
    /// exits 1.
    Crash(String),
}

/// A command's outcome.
pub type Outcome = Result<(), Failure>;

/// A `CliException` with the default exit code 1.
pub fn cli(msg: impl Into<String>) -> Failure {
    Failure::Cli(msg.into(), 1)
}

/// `CliWrapperException` of a `KeeperException`.
pub fn keeper(code: i32, path: Option<&str>) -> Failure {
    cli(format::wrapper_message(code, path))
}

/// One command of the shell.
pub struct Command {
    /// What the user types.
    pub name: &'static str,
    /// What `usage()` prints after the name (`getOptionStr`).
    pub options: &'static str,
    /// Whether `usage()` lists it (false only for `rmr`, which 3.8 no longer has).
    pub listed: bool,
    /// Parses the words (the name first) and runs; the session is live when it is called.
    pub run: fn(&Session, &mut [String]) -> Outcome,
}

const fn o(name: &'static str, takes_value: bool, description: &'static str) -> Opt {
    Opt { name, takes_value, description }
}

/// Every command zkCli 3.8 knows besides the shell's own (connect, history, redo,
/// printwatches, quit), in `usage()` order.
pub const COMMANDS: &[Command] = &[
    Command {
        name: "addWatch",
        options: "[-m mode] path # optional mode is one of [PERSISTENT, PERSISTENT_RECURSIVE] - default is \
                  PERSISTENT_RECURSIVE",
        listed: true,
        run: add_watch,
    },
    Command { name: "addauth", options: "scheme auth", listed: true, run: add_auth },
    Command { name: "close", options: "", listed: true, run: close },
    Command { name: "config", options: "[-c] [-w] [-s]", listed: true, run: config },
    Command { name: "create", options: "[-s] [-e] [-c] [-t ttl] path [data] [acl]", listed: true, run: create },
    Command { name: "delete", options: "[-v version] path", listed: true, run: delete },
    Command { name: "deleteall", options: "path [-b batch size]", listed: true, run: delete_all },
    Command { name: "delquota", options: "[-n|-b|-N|-B] path", listed: true, run: quota::del_quota },
    Command { name: "get", options: "[-s] [-w] path", listed: true, run: get },
    Command { name: "getAcl", options: "[-s] path", listed: true, run: get_acl },
    Command { name: "getAllChildrenNumber", options: "path", listed: true, run: get_all_children_number },
    Command { name: "getEphemerals", options: "path", listed: true, run: get_ephemerals },
    Command { name: "listquota", options: "path", listed: true, run: quota::list_quota },
    Command { name: "ls", options: "[-s] [-w] [-R] path", listed: true, run: ls },
    Command {
        name: "reconfig",
        options: "[-s] [-v version] [[-file path] | [-members serverID=host:port1:port2;port3[,...]*]] | [-add \
                  serverId=host:port1:port2;port3[,...]]* [-remove serverId[,...]*]",
        listed: true,
        run: reconfig,
    },
    Command { name: "removewatches", options: "path [-c|-d|-a] [-l]", listed: true, run: remove_watches },
    Command { name: "rmr", options: "path [-b batch size]", listed: false, run: delete_all },
    Command { name: "set", options: "[-s] [-v version] path data", listed: true, run: set },
    Command { name: "setAcl", options: "[-s] [-v version] [-R] path acl", listed: true, run: set_acl },
    Command { name: "setquota", options: "-n|-b|-N|-B val path", listed: true, run: quota::set_quota },
    Command { name: "stat", options: "[-w] path", listed: true, run: stat },
    Command { name: "sync", options: "path", listed: true, run: sync },
    Command { name: "version", options: "", listed: true, run: version },
    Command { name: "whoami", options: "", listed: true, run: who_am_i },
];

/// The shell's own commands with their option strings, for `usage()` and completion.
pub const BUILTINS: &[(&str, &str)] =
    &[("connect", "host:port"), ("history", ""), ("printwatches", "on|off"), ("quit", ""), ("redo", "cmdno")];

/// Looks a command up by name.
pub fn find(name: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| c.name == name)
}

/// `getUsageStr()`: the name, a space, the options.
fn usage_of(words: &[String]) -> String {
    let name = words.first().map(String::as_str).unwrap_or("");
    let options = find(name).map(|c| c.options).unwrap_or("");
    format!("{name} {options}")
}

/// Parses with `spec`; a parse error is a `CliParseException` of the commons-cli exception.
fn parse_words(spec: &Spec, words: &[String]) -> Result<Parsed, Failure> {
    parse::parse(spec, &words[1..])
        .map(|mut p| {
            p.args.insert(0, words[0].clone());
            p
        })
        .map_err(cli)
}

/// The usual first step: parse, and require `min` words (name included).
fn parse_min(spec: &Spec, words: &[String], min: usize) -> Result<Parsed, Failure> {
    let p = parse_words(spec, words)?;
    if p.args.len() < min {
        return Err(cli(usage_of(words)));
    }
    Ok(p)
}

/// `retainCompatibility` of get, ls and stat: a third word was the old `watch` flag, so zkCli
/// overwrites it with `-w` in place and parses again.
fn old_watch_syntax(spec: &Spec, words: &mut [String], p: Parsed, what: &str) -> Result<Parsed, Failure> {
    if p.args.len() <= 2 {
        return Ok(p);
    }
    words[2] = "-w".into();
    err(&format!("'{what} path [watch]' has been deprecated. Please use '{}' instead.", deprecated_hint(what)));
    let mut again = parse::parse(spec, &words[1..]).map_err(cli)?;
    again.args.insert(0, words[0].clone());
    Ok(again)
}

fn deprecated_hint(what: &str) -> &'static str {
    match what {
        "get" => "get [-s] [-w] path",
        "ls" => "ls [-w] path",
        _ => "stat [-w] path",
    }
}

/// The client's path check: an `IllegalArgumentException`, which commands turn into a
/// `MalformedPathException` (exit 1, the message alone).
fn valid(path: &str) -> Result<(), Failure> {
    format::validate_path(path).map_err(cli)
}

/// Sends and checks the reply's error code; errors carry `path` as the client names it.
pub fn request(s: &Session, opcode: i32, req: Request, path: Option<&str>) -> Result<Reply, Failure> {
    match s.call(opcode, req) {
        Ok((h, _)) if h.err != 0 => Err(keeper(h.err, path)),
        Ok(reply) => Ok(reply),
        Err(c) => Err(keeper(c, path)),
    }
}

/// Decodes a successful reply's body for `opcode`.
pub fn decode(opcode: i32, body: &[u8]) -> Result<Response, Failure> {
    Response::decode(opcode, &mut Reader::new(body)).map_err(|e| cli(format!("undecodable reply: {e}")))
}

/// getData: the data (None for a null buffer, which zkCli prints as `null`) and the Stat.
pub fn get_data(s: &Session, path: &str, watch: bool) -> Result<(Option<Vec<u8>>, Stat), Failure> {
    let (_, body) = request(s, op::GET_DATA, Request::GetData { path: s.server_path(path), watch }, Some(path))?;
    if watch {
        s.watches().data.insert(path.to_string());
    }
    let is_null = body.get(..4) == Some(&[0xff, 0xff, 0xff, 0xff][..]);
    match decode(op::GET_DATA, &body)? {
        Response::Data(d, st) => Ok((if is_null { None } else { Some(d) }, st)),
        _ => Err(cli("unexpected reply to getData")),
    }
}

/// getChildren (with its Stat, as `getChildren(path, watch, stat)` asks for).
pub fn get_children(s: &Session, path: &str, watch: bool) -> Result<(Vec<String>, Stat), Failure> {
    let (_, body) =
        request(s, op::GET_CHILDREN2, Request::GetChildren { path: s.server_path(path), watch }, Some(path))?;
    if watch {
        s.watches().child.insert(path.to_string());
    }
    match decode(op::GET_CHILDREN2, &body)? {
        Response::Children2(c, st) => Ok((c, st)),
        _ => Err(cli("unexpected reply to getChildren")),
    }
}

/// exists: None for a missing node (an exists watch stays armed on it).
pub fn exists(s: &Session, path: &str, watch: bool) -> Result<Option<Stat>, Failure> {
    match s.call(op::EXISTS, Request::Exists { path: s.server_path(path), watch }) {
        Ok((h, body)) if h.err == 0 => {
            if watch {
                s.watches().data.insert(path.to_string());
            }
            match decode(op::EXISTS, &body)? {
                Response::Stat(st) => Ok(Some(st)),
                _ => Err(cli("unexpected reply to exists")),
            }
        }
        Ok((h, _)) if h.err == code::NO_NODE => {
            if watch {
                s.watches().exist.insert(path.to_string());
            }
            Ok(None)
        }
        Ok((h, _)) => Err(keeper(h.err, Some(path))),
        Err(c) => Err(keeper(c, Some(path))),
    }
}

/// A create frame; `data: None` is a null buffer, as zkCli sends for `create /x`.
#[allow(clippy::too_many_arguments)]
pub fn create_frame(
    x: i32,
    opcode: i32,
    path: &str,
    data: Option<&[u8]>,
    acl: &[Acl],
    flags: i32,
    ttl: i64,
) -> Vec<u8> {
    let mut w = node::proto::Writer::frame();
    w.i32(x).i32(opcode).string(path);
    match data {
        Some(d) => w.buffer(d),
        None => w.i32(-1),
    };
    w.acls(acl).i32(flags);
    if opcode == op::CREATE_TTL {
        w.i64(ttl);
    }
    w.finish_frame()
}

/// `ZooKeeper.create`: the client's checks, then the request; the created path, unchrooted.
pub fn create_node(
    s: &Session,
    path: &str,
    data: Option<&[u8]>,
    acl: &[Acl],
    flags: i32,
    ttl: Option<i64>,
) -> Result<String, Failure> {
    let sequential = matches!(
        flags,
        create_flags::PERSISTENT_SEQUENTIAL
            | create_flags::EPHEMERAL_SEQUENTIAL
            | create_flags::PERSISTENT_SEQUENTIAL_WITH_TTL
    );
    format::validate_create_path(path, sequential).map_err(cli)?;
    if acl.is_empty() {
        err(&format::keeper_message(code::INVALID_ACL, None));
        return Err(keeper(code::INVALID_ACL, None));
    }
    let opcode = match (ttl, flags) {
        (Some(_), _) => op::CREATE_TTL,
        (None, create_flags::CONTAINER) => op::CREATE_CONTAINER,
        (None, _) => op::CREATE,
    };
    let server_path = s.server_path(path);
    let reply = s.call_frame(|x| create_frame(x, opcode, &server_path, data, acl, flags, ttl.unwrap_or(-1)));
    let body = match reply {
        Ok((h, body)) if h.err == 0 => body,
        Ok((h, _)) => {
            match h.err {
                -120 => err("Unable to create ephemeral node on a local session"),
                code::INVALID_ACL => err(&format::keeper_message(h.err, Some(path))),
                _ => {}
            }
            return Err(keeper(h.err, Some(path)));
        }
        Err(c) => return Err(keeper(c, Some(path))),
    };
    match decode(opcode, &body)? {
        Response::Path(p) | Response::PathStat(p, _) => Ok(s.client_path(&p)),
        _ => Err(cli("unexpected reply to create")),
    }
}

/// `List.toString()` of children as zkCli prints them.
fn list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

const CREATE: Spec = Spec {
    opts: &[o("e", false, "ephemeral"), o("s", false, "sequential"), o("c", false, "container"), o("t", true, "ttl")],
    group: None,
};

/// `EphemeralType.TTL.maxValue()`.
const TTL_MAX: i64 = 0x0000_00ff_ffff_ffff;

fn create(s: &Session, words: &mut [String]) -> Outcome {
    let p = parse_min(&CREATE, words, 2)?;
    let (e, sq, c, t) = (p.has("e"), p.has("s"), p.has("c"), p.has("t"));
    if c && (e || sq) {
        return Err(cli("-c cannot be combined with -s or -e. Containers cannot be ephemeral or sequential."));
    }
    let ttl = match p.value("t") {
        Some(v) if t => format::parse_java_long(v).map_err(|_| cli("-t argument must be a long value"))?,
        _ => 0,
    };
    if t && e {
        return Err(cli("TTLs cannot be used with Ephemeral znodes"));
    }
    if t && c {
        return Err(cli("TTLs cannot be used with Container znodes"));
    }
    let flags = match (e, sq, c) {
        (true, true, _) => create_flags::EPHEMERAL_SEQUENTIAL,
        (true, false, _) => create_flags::EPHEMERAL,
        (false, true, _) if t => create_flags::PERSISTENT_SEQUENTIAL_WITH_TTL,
        (false, true, _) => create_flags::PERSISTENT_SEQUENTIAL,
        (false, false, true) => create_flags::CONTAINER,
        _ if t => create_flags::PERSISTENT_WITH_TTL,
        _ => create_flags::PERSISTENT,
    };
    if t && (ttl > TTL_MAX || ttl <= 0) {
        return Err(cli(format!("ttl must be positive and cannot be larger than: {TTL_MAX}")));
    }
    let path = &p.args[1];
    let data = p.args.get(2).map(|d| d.as_bytes().to_vec());
    let acl = match p.args.get(3) {
        Some(a) => format::parse_acl(a, &mut |w| err(&w)),
        None => engine::acl::open_acl_unsafe(),
    };
    let created = create_node(s, path, data.as_deref(), &acl, flags, t.then_some(ttl))?;
    err(&format!("Created {created}"));
    Ok(())
}

const GET: Spec = Spec { opts: &[o("s", false, "stats"), o("w", false, "watch")], group: None };

fn get(s: &Session, words: &mut [String]) -> Outcome {
    let p = parse_min(&GET, words, 2)?;
    let p = old_watch_syntax(&GET, words, p, "get")?;
    let path = &p.args[1];
    valid(path)?;
    let (data, st) = get_data(s, path, p.has("w"))?;
    out(&format!("{}\n", data.map(|d| String::from_utf8_lossy(&d).into_owned()).unwrap_or_else(|| "null".into())));
    if p.has("s") {
        out(&format::stat_block(&st));
    }
    Ok(())
}

const LS: Spec = Spec {
    opts: &[o("?", false, "help"), o("s", false, "stat"), o("w", false, "watch"), o("R", false, "recurse")],
    group: None,
};

fn ls(s: &Session, words: &mut [String]) -> Outcome {
    let p = parse_words(&LS, words)?;
    if p.has("?") {
        out("usage: ls [options] path\n -?   help\n -R   recurse\n -s   stat\n -w   watch\n");
    }
    let p = old_watch_syntax(&LS, words, p, "ls")?;
    if p.args.len() < 2 {
        return Err(cli(usage_of(words)));
    }
    let path = &p.args[1];
    let watch = p.has("w");
    valid(path)?;
    if p.has("R") {
        return visit_subtree(s, path, watch, &mut |_, p| {
            out(&format!("{p}\n"));
            Ok(())
        });
    }
    let (mut children, st) = get_children(s, path, watch)?;
    children.sort();
    out(&format!("{}\n", list(&children)));
    if p.has("s") {
        out(&format::stat_block(&st));
    }
    Ok(())
}

/// `ZKUtil.visitSubTreeDFS`: the root, then each node's children listed before any of them
/// is descended into; nodes that vanish meanwhile are skipped.
pub fn visit_subtree(
    s: &Session,
    path: &str,
    watch: bool,
    visit: &mut dyn FnMut(&Session, &str) -> Outcome,
) -> Outcome {
    valid(path)?;
    get_data(s, path, watch)?;
    visit(s, path)?;
    visit_children(s, path, watch, visit)
}

fn visit_children(s: &Session, path: &str, watch: bool, visit: &mut dyn FnMut(&Session, &str) -> Outcome) -> Outcome {
    let mut children = match s.call(op::GET_CHILDREN2, Request::GetChildren { path: s.server_path(path), watch }) {
        Ok((h, body)) if h.err == 0 => {
            if watch {
                s.watches().child.insert(path.to_string());
            }
            match decode(op::GET_CHILDREN2, &body)? {
                Response::Children2(c, _) => c,
                _ => return Err(cli("unexpected reply to getChildren")),
            }
        }
        Ok((h, _)) if h.err == code::NO_NODE => return Ok(()),
        Ok((h, _)) => return Err(keeper(h.err, Some(path))),
        Err(c) => return Err(keeper(c, Some(path))),
    };
    children.sort();
    let join = |c: &str| if path == "/" { format!("/{c}") } else { format!("{path}/{c}") };
    for c in &children {
        visit(s, &join(c))?;
    }
    for c in &children {
        visit_children(s, &join(c), watch, visit)?;
    }
    Ok(())
}

const STAT: Spec = Spec { opts: &[o("w", false, "watch")], group: None };

fn stat(s: &Session, words: &mut [String]) -> Outcome {
    let p = parse_min(&STAT, words, 2)?;
    let p = old_watch_syntax(&STAT, words, p, "stat")?;
    let path = &p.args[1];
    valid(path)?;
    match exists(s, path, p.has("w"))? {
        Some(st) => {
            out(&format::stat_block(&st));
            Ok(())
        }
        None => Err(keeper(code::NO_NODE, Some(path))),
    }
}

const SET: Spec = Spec { opts: &[o("s", false, "stats"), o("v", true, "version")], group: None };

/// A `-v` value: `Integer.parseInt`, whose failure zkCli does not catch.
fn version_of(p: &Parsed) -> Result<i32, Failure> {
    match p.value("v") {
        Some(v) if p.has("v") => format::parse_java_int(v).map_err(Failure::Crash),
        _ => Ok(-1),
    }
}

fn set(s: &Session, words: &mut [String]) -> Outcome {
    let p = parse_min(&SET, words, 3)?;
    let (path, data) = (&p.args[1], p.args[2].as_bytes().to_vec());
    let version = version_of(&p)?;
    valid(path)?;
    let (_, body) =
        request(s, op::SET_DATA, Request::SetData { path: s.server_path(path), data, version }, Some(path))?;
    if p.has("s") {
        if let Response::Stat(st) = decode(op::SET_DATA, &body)? {
            out(&format::stat_block(&st));
        }
    }
    Ok(())
}

const DELETE: Spec = Spec { opts: &[o("v", true, "version")], group: None };

fn delete(s: &Session, words: &mut [String]) -> Outcome {
    let p = parse_min(&DELETE, words, 2)?;
    if p.args.len() > 2 {
        err("'delete path [version]' has been deprecated. Please use 'delete [-v version] path' instead.");
    }
    let path = &p.args[1];
    let version = version_of(&p)?;
    valid(path)?;
    // The Java client sends `/` unchrooted so that deleting the root fails the same way.
    let server_path = if path == "/" { path.clone() } else { s.server_path(path) };
    request(s, op::DELETE, Request::Delete { path: server_path, version }, Some(path))?;
    Ok(())
}

const DELETE_ALL: Spec = Spec { opts: &[o("b", true, "batch size")], group: None };

fn delete_all(s: &Session, words: &mut [String]) -> Outcome {
    let p = parse_min(&DELETE_ALL, words, 2)?;
    let batch = match p.value("b") {
        Some(v) if p.has("b") => format::parse_java_int(v).map_err(|_| cli("-b argument must be an int value"))?,
        _ => 1000,
    };
    let path = &p.args[1];
    valid(path)?;
    if !delete_recursive(s, path, batch)? {
        err("Failed to delete some node(s) in the subtree!");
    }
    Ok(())
}

/// `ZKUtil.deleteRecursive`: list the subtree breadth first, then delete it deepest first in
/// multis of `batch` deletes; false when a multi failed (the rest is not attempted).
pub fn delete_recursive(s: &Session, root: &str, batch: i32) -> Result<bool, Failure> {
    let mut tree = vec![root.to_string()];
    let mut queue = VecDeque::from([root.to_string()]);
    while let Some(node) = queue.pop_front() {
        let (_, body) = request(
            s,
            op::GET_CHILDREN,
            Request::GetChildren { path: s.server_path(&node), watch: false },
            Some(&node),
        )?;
        if let Response::Children(children) = decode(op::GET_CHILDREN, &body)? {
            for c in children {
                let child = if node == "/" { format!("/{c}") } else { format!("{node}/{c}") };
                queue.push_back(child.clone());
                tree.push(child);
            }
        }
    }
    let mut ops = Vec::new();
    for (i, path) in tree.iter().enumerate().rev() {
        ops.push((op::DELETE, Request::Delete { path: s.server_path(path), version: -1 }));
        if ops.len() as i64 == i64::from(batch) || i == 0 {
            let ok = match s.call(op::MULTI, Request::Multi(std::mem::take(&mut ops))) {
                Ok((h, body)) if h.err == 0 => match decode(op::MULTI, &body)? {
                    Response::Multi(results) => results.iter().all(|r| r.err == 0),
                    _ => false,
                },
                _ => false,
            };
            if !ok {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

const GET_ACL: Spec = Spec { opts: &[o("s", false, "stats")], group: None };

fn get_acl(s: &Session, words: &mut [String]) -> Outcome {
    let p = parse_min(&GET_ACL, words, 2)?;
    let path = &p.args[1];
    valid(path)?;
    let (_, body) = request(s, op::GET_ACL, Request::GetAcl { path: s.server_path(path) }, Some(path))?;
    if let Response::Acl(acl, st) = decode(op::GET_ACL, &body)? {
        out(&acl.iter().map(format::acl_lines).collect::<String>());
        if p.has("s") {
            out(&format::stat_block(&st));
        }
    }
    Ok(())
}

const SET_ACL: Spec =
    Spec { opts: &[o("s", false, "stats"), o("v", true, "version"), o("R", false, "recursive")], group: None };

/// `ZooKeeper.setACL`: the path and ACL checks, then the request.
fn set_acl_on(s: &Session, path: &str, acl: &[Acl], version: i32) -> Result<Stat, Failure> {
    valid(path)?;
    if acl.is_empty() {
        return Err(keeper(code::INVALID_ACL, None));
    }
    let (_, body) =
        request(s, op::SET_ACL, Request::SetAcl { path: s.server_path(path), acl: acl.to_vec(), version }, Some(path))?;
    match decode(op::SET_ACL, &body)? {
        Response::Stat(st) => Ok(st),
        _ => Err(cli("unexpected reply to setAcl")),
    }
}

fn set_acl(s: &Session, words: &mut [String]) -> Outcome {
    let p = parse_min(&SET_ACL, words, 3)?;
    let path = &p.args[1];
    let acl = format::parse_acl(&p.args[2], &mut |w| err(&w));
    let version = version_of(&p)?;
    if p.has("R") {
        return visit_subtree(s, path, false, &mut |s, node| {
            // zkCli prints a failure's message with `print`, no newline, and goes on.
            if let Err(Failure::Cli(m, _)) = set_acl_on(s, node, &acl, version) {
                out(&m);
            }
            Ok(())
        });
    }
    let st = set_acl_on(s, path, &acl, version)?;
    if p.has("s") {
        out(&format::stat_block(&st));
    }
    Ok(())
}

const NONE: Spec = Spec { opts: &[], group: None };

fn sync(s: &Session, words: &mut [String]) -> Outcome {
    let p = parse_min(&NONE, words, 2)?;
    let path = &p.args[1];
    valid(path)?;
    let rc = match s.call(op::SYNC, Request::Sync { path: s.server_path(path) }) {
        Ok((h, _)) => h.err,
        Err(c) => c,
    };
    if rc == 0 {
        out("Sync is OK\n");
    } else {
        out(&format!("Sync has failed. rc={rc}\n"));
    }
    Ok(())
}

fn get_ephemerals(s: &Session, words: &mut [String]) -> Outcome {
    let p = parse_words(&NONE, words)?;
    // Unlike the other calls, 3.8's getEphemerals sends its prefix without the chroot.
    let prefix = p.args.get(1).cloned().unwrap_or_else(|| "/".into());
    valid(&prefix)?;
    let (_, body) = request(s, op::GET_EPHEMERALS, Request::GetEphemerals { prefix }, None)?;
    if let Response::Paths(paths) = decode(op::GET_EPHEMERALS, &body)? {
        out(&format!("{}\n", list(&paths)));
    }
    Ok(())
}

fn get_all_children_number(s: &Session, words: &mut [String]) -> Outcome {
    let p = parse_min(&NONE, words, 2)?;
    let path = &p.args[1];
    valid(path)?;
    let (_, body) = request(
        s,
        op::GET_ALL_CHILDREN_NUMBER,
        Request::GetAllChildrenNumber { path: s.server_path(path) },
        Some(path),
    )?;
    if let Response::Count(n) = decode(op::GET_ALL_CHILDREN_NUMBER, &body)? {
        out(&format!("{n}\n"));
    }
    Ok(())
}

const ADD_WATCH: Spec = Spec { opts: &[o("m", true, "")], group: None };

fn add_watch(s: &Session, words: &mut [String]) -> Outcome {
    let p = parse_words(&ADD_WATCH, words)?;
    if p.args.len() != 2 {
        return Err(cli(usage_of(words)));
    }
    let mode = match p.value("m").map(str::to_uppercase).as_deref() {
        None | Some("PERSISTENT_RECURSIVE") => add_watch_mode::PERSISTENT_RECURSIVE,
        Some("PERSISTENT") => add_watch_mode::PERSISTENT,
        Some(_) => return Err(cli(usage_of(words))),
    };
    let path = &p.args[1];
    // AddWatchCommand does not catch the client's IllegalArgumentException.
    format::validate_path(path).map_err(|m| Failure::Crash(format!("java.lang.IllegalArgumentException: {m}")))?;
    request(s, op::ADD_WATCH, Request::AddWatch { path: s.server_path(path), mode }, Some(path))?;
    let mut w = s.watches();
    if mode == add_watch_mode::PERSISTENT {
        w.persistent.insert(path.clone());
    } else {
        w.recursive.insert(path.clone());
    }
    Ok(())
}

const REMOVE_WATCHES: Spec = Spec {
    opts: &[
        o("c", false, "child watcher type"),
        o("d", false, "data watcher type"),
        o("a", false, "any watcher type"),
        o("l", false, "remove locally when there is no server connection"),
    ],
    group: None,
};

fn remove_watches(s: &Session, words: &mut [String]) -> Outcome {
    let p = parse_min(&REMOVE_WATCHES, words, 2)?;
    let path = p.args[1].clone();
    let kind = if p.has("c") {
        watcher_type::CHILDREN
    } else if p.has("d") {
        watcher_type::DATA
    } else {
        watcher_type::ANY
    };
    let local = p.has("l");
    valid(&path)?;
    let rc = match s.call(op::REMOVE_WATCHES, Request::Watches { path: s.server_path(&path), watcher_type: kind }) {
        Ok((h, _)) => h.err,
        Err(c) => c,
    };
    // `ZKWatchManager.removeWatcher`: the client must hold such a watch, then the server's
    // answer counts unless -l, then the watches go and each kind removed raises an event.
    let mut w = s.watches();
    let persistent = w.persistent.contains(&path) || w.recursive.contains(&path);
    let held = match kind {
        watcher_type::CHILDREN => w.child.contains(&path) || persistent,
        watcher_type::DATA => w.data.contains(&path) || w.exist.contains(&path) || persistent,
        _ => w.child.contains(&path) || w.data.contains(&path) || w.exist.contains(&path) || persistent,
    };
    if !held {
        return Err(keeper(code::NO_WATCHER, Some(&path)));
    }
    if !local && rc != 0 {
        return Err(keeper(rc, Some(&path)));
    }
    let (mut data, mut child, mut pers) = (false, false, false);
    if kind != watcher_type::DATA {
        child = w.child.remove(&path);
    }
    if kind != watcher_type::CHILDREN {
        data = w.data.remove(&path);
        data |= w.exist.remove(&path);
    }
    if kind == watcher_type::ANY {
        pers = w.persistent.remove(&path);
        pers |= w.recursive.remove(&path);
    }
    drop(w);
    if !(data || child || pers) {
        return Err(keeper(code::NO_WATCHER, Some(&path)));
    }
    let printer = |t| s.printer().event(state::SYNC_CONNECTED, t, Some(&path));
    for (hit, t) in [(data, removed::DATA), (child, removed::CHILD), (pers, removed::PERSISTENT)] {
        if hit {
            printer(t);
        }
    }
    Ok(())
}

fn who_am_i(s: &Session, _words: &mut [String]) -> Outcome {
    let mut text = String::from("Auth scheme: User\n");
    // whoAmI never throws: a failed call prints the header alone.
    if let Ok((h, body)) = s.call(op::WHO_AM_I, Request::WhoAmI) {
        if h.err == 0 {
            if let Ok(Response::ClientInfo(infos)) = decode(op::WHO_AM_I, &body) {
                for (scheme, user) in infos {
                    text.push_str(&format!("{scheme}: {user}\n"));
                }
            }
        }
    }
    out(&text);
    Ok(())
}

const CONFIG: Spec = Spec {
    opts: &[o("s", false, "stats"), o("w", false, "watch"), o("c", false, "client connection string")],
    group: None,
};

/// `ZooDefs.CONFIG_NODE`, read without the chroot.
const CONFIG_NODE: &str = "/zookeeper/config";

fn config(s: &Session, words: &mut [String]) -> Outcome {
    let p = parse_words(&CONFIG, words)?;
    let watch = p.has("w");
    let (_, body) = request(s, op::GET_DATA, Request::GetData { path: CONFIG_NODE.into(), watch }, Some(CONFIG_NODE))?;
    if watch {
        s.watches().data.insert(CONFIG_NODE.into());
    }
    let is_null = body.get(..4) == Some(&[0xff, 0xff, 0xff, 0xff][..]);
    let Response::Data(data, st) = decode(op::GET_DATA, &body)? else {
        return Err(cli("unexpected reply to getConfig"));
    };
    let text = if is_null { "null".to_string() } else { String::from_utf8_lossy(&data).into_owned() };
    if p.has("c") {
        out(&format!("{}\n", client_config(&text)));
    } else {
        out(&format!("{text}\n"));
    }
    if p.has("s") {
        out(&format::stat_block(&st));
    }
    Ok(())
}

/// `ConfigUtils.getClientConfigStr`: the config's version and the servers' client addresses.
fn client_config(text: &str) -> String {
    let mut version = "";
    let mut addrs = Vec::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else { continue };
        let (k, v) = (k.trim(), v.trim());
        if k == "version" {
            version = v;
        }
        if k.starts_with("server.") {
            if let Some((_, client)) = v.split_once(';') {
                match client.rsplit_once(':') {
                    Some((h, port)) => addrs.push(format!("{h}:{port}")),
                    None => addrs.push(format!("0.0.0.0:{client}")),
                }
            }
        }
    }
    format!("{version} {}", addrs.join(","))
}

fn add_auth(s: &Session, words: &mut [String]) -> Outcome {
    let p = parse_min(&NONE, words, 2)?;
    s.add_auth(&p.args[1], p.args.get(2).map(|a| a.as_bytes().to_vec()));
    Ok(())
}

fn close(s: &Session, _words: &mut [String]) -> Outcome {
    s.close();
    Ok(())
}

fn version(_s: &Session, words: &mut [String]) -> Outcome {
    let p = parse_words(&NONE, words)?;
    if p.args.len() > 1 {
        return Err(cli(usage_of(words)));
    }
    out(&format!("ZooKeeper CLI version: 3.8.0-paddock-{}\n", env!("CARGO_PKG_VERSION")));
    Ok(())
}

const RECONFIG: Spec = Spec {
    opts: &[
        o("s", false, "stats"),
        o("v", true, "required current config version"),
        o("file", true, "path of config file to parse for membership"),
        o("members", true, "comma-separated list of config strings for non-incremental reconfig"),
        o("add", true, "comma-separated list of config strings for new servers"),
        o("remove", true, "comma-separated list of server IDs to remove"),
    ],
    group: None,
};

fn reconfig(s: &Session, words: &mut [String]) -> Outcome {
    let p = parse_words(&RECONFIG, words)?;
    let (file, members, add, remove) = (p.has("file"), p.has("members"), p.has("add"), p.has("remove"));
    if !(file || members || add || remove) {
        return Err(cli(usage_of(words)));
    }
    let version = match p.value("v") {
        Some(v) => {
            i64::from_str_radix(v, 16).map_err(|_| cli("-v must be followed by a long (configuration version)"))?
        }
        None => -1,
    };
    if (file || members) && (add || remove) {
        return Err(cli(
            "Can't use -file or -members together with -add or -remove (mixing incremental and non-incremental \
             modes is not allowed)",
        ));
    }
    if file && members {
        return Err(cli("Can't use -file and -members together (conflicting non-incremental modes)"));
    }
    let joining = p.value("add").map(str::to_lowercase);
    let leaving = p.value("remove").map(str::to_lowercase);
    let mut new_members = p.value("members").map(str::to_lowercase);
    if let Some(f) = p.value("file") {
        let text = std::fs::read_to_string(f).map_err(|e| cli(format!("Error processing {f}{e}")))?;
        let servers: Vec<&str> = text.lines().map(str::trim).filter(|l| l.starts_with("server.")).collect();
        new_members = Some(servers.join("\n"));
    }
    let reply = s.call_frame(|x| {
        let mut w = node::proto::Writer::frame();
        w.i32(x).i32(op::RECONFIG);
        for v in [&joining, &leaving, &new_members] {
            match v {
                Some(v) => w.string(v),
                None => w.i32(-1),
            };
        }
        w.i64(version);
        w.finish_frame()
    });
    let body = match reply {
        Ok((h, body)) if h.err == 0 => body,
        Ok((h, _)) => return Err(keeper(h.err, None)),
        Err(c) => return Err(keeper(c, None)),
    };
    if let Response::Data(data, st) = decode(op::GET_DATA, &body)? {
        out(&format!("Committed new configuration:\n{}\n", String::from_utf8_lossy(&data)));
        if p.has("s") {
            out(&format::stat_block(&st));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_listed_in_usage_order() {
        let names: Vec<&str> = COMMANDS.iter().map(|c| c.name).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
    }

    #[test]
    fn client_config_lists_client_addresses() {
        assert_eq!(client_config("server.1=a:1:2:participant;b:3\nversion=10"), "10 b:3");
        assert_eq!(client_config(""), " ");
    }
}
