//! Differential test: every script of `tests/corpus/*.zks` runs against Apache ZooKeeper 3.8 (the
//! reference) and against Paddock; the two transcripts of replies and watch events, normalised,
//! must be equal. A coverage table (opcode × error code, watch type × event type) is computed
//! from what the corpus exercised against ZooKeeper and must hold a required list, so a thin
//! corpus fails. Where the two differ, Paddock changes, not the corpus.
//!
//! # The script language (`.zks`)
//!
//! One step a line; `#` starts a comment; blank lines are ignored. Tokens are separated by
//! spaces; `"..."` quotes a token (escapes `\" \\ \n \t \0 \xHH` up to `\x7f`), `""` is the empty
//! string.
//! A path token starting with `~` is relative to the file's own root `/<file stem>`, so the
//! files can share one server (`~` is the root itself, `~/x` a node below it); other paths are
//! taken literally (`/zookeeper/quota`, `bad`, `/a//b`).
//!
//! ```text
//! session NAME [timeout=MS] [legacy]   open a session (default timeout 30000 ms); legacy: a
//!                                      ConnectRequest without the readOnly flag (pre-3.4)
//! NAME create   PATH [DATA] [mode=M] [acl=ACL]     opcode create (1)
//! NAME create2  PATH [DATA] [mode=M] [acl=ACL]     create2 (15)
//! NAME createContainer PATH [DATA] [mode=M] [acl=ACL]   createContainer (19), mode default container
//! NAME createTTL PATH [DATA] [mode=M] [acl=ACL] [ttl=MS] createTTL (21), mode default ttl
//! NAME delete PATH [VERSION]           delete (2), version default -1
//! NAME deleteContainer PATH            deleteContainer (20), ZooKeeper's internal opcode
//! NAME exists PATH [watch]             exists (3)
//! NAME get PATH [watch]                getData (4)
//! NAME set PATH DATA [VERSION]         setData (5)
//! NAME getACL PATH                     getACL (6)
//! NAME setACL PATH ACL [VERSION]       setACL (7)
//! NAME ls PATH [watch]                 getChildren (8)
//! NAME ls2 PATH [watch]                getChildren2 (12)
//! NAME sync PATH                       sync (9)
//! NAME check PATH VERSION              check (13) as a top-level request
//! NAME multi {                         multi (14); one sub-op a line (create*, delete, set,
//!   SUB-OP ...                         check, get, ls), then `}` alone; `multi { }` is empty
//! }
//! NAME multiRead { ... }               multiRead (22), same block form
//! NAME auth SCHEME CREDENTIAL          auth (100)
//! NAME setWatches  [rel=R] [data=P,..] [exist=P,..] [child=P,..]                  (101)
//! NAME setWatches2 [rel=R] [data=..] [exist=..] [child=..] [persistent=..] [recursive=..] (105)
//!                                      R: 0 (default), last (the session's last zxid), @MARK
//! NAME addWatch PATH persistent|recursive|N        addWatch (106)
//! NAME checkWatches PATH TYPE          checkWatches (17); TYPE children|data|any|persistent|recursive|N
//! NAME removeWatches PATH TYPE         removeWatches (18)
//! NAME getEphemerals PREFIX            getEphemerals (103)
//! NAME count PATH                      getAllChildrenNumber (104)
//! NAME whoami                          whoAmI (107)
//! NAME ping                            ping (11)
//! NAME reconfig [joining=S] [leaving=S] [members=S] [config=N]   reconfig (16)
//! NAME close                           closeSession (-11); the connection ends with it
//! NAME raw OPCODE [HEX]                a request frame with the next xid, any opcode, any body
//! NAME mark MARK                       remember the session's last zxid (nothing is sent)
//! NAME disconnect                      drop the socket; the session lives on
//! NAME reconnect [badpw] [future]      a new connection resuming the session (right or wrong
//!                                      password; `future` claims a last zxid ahead of the
//!                                      server's); records the handshake's answer
//! NAME probe [badpw]                   a separate handshake with this session's id, closed at
//!                                      once; the session's own connection is kept
//! NAME expect-closed                   whether the server closes this connection (bounded wait)
//! ```
//!
//! DATA: a token's UTF-8 bytes, or `hex:0001ff`, or `fill:N` (N bytes of `x`). Bodies or data
//! longer than 200 bytes are shown by length and a hash.
//!
//! Modes: persistent ephemeral sequential ephemeral_sequential container ttl sequential_ttl or a
//! number. ACLs: `open`, `read`, `creator` (auth::rwcda), `none` (an empty list) or a comma list
//! of `scheme:id:perms`, perms as letters of `rwcda` or a number; the id may hold colons.
//!
//! # What is compared
//!
//! Every step gives one reply line: the header's error and zxid and the decoded body (every
//! Stat field; bytes the decoder left over are shown in hex, so a body where ZooKeeper sends
//! none, or the reverse, is a difference). Zxids are replaced by their rank of first appearance
//! in the transcript (header zxids and the Stat's czxid, mzxid and pzxid through one map, 0 and -1
//! kept), times by `t` (a plausible wall-clock time) or `0`, session ids by the session's name,
//! passwords by their length; getChildren, getEphemerals and whoAmI lists are sorted, and so are
//! the events of a closeSession (ZooKeeper deletes the ephemerals in hash-set order). Digests
//! are kept: they are computed deterministically.
//!
//! After every step, each session's watch events are recorded in arrival order. No sleeps: a
//! session's own events arrive before its reply; for every other connected session the runner
//! sends a ping and reads up to its answer, and since a server queues a change's events before
//! the reply that completes the change, every event due from the step has arrived by then. A
//! step that expects no event thus costs one ping round trip, not a wait. The only bounded wait
//! is `expect-closed` (2 s, and only when the server keeps the connection open); a reply that
//! never comes costs `REPLY_TIMEOUT` and is recorded as a lost connection.
//!
//! ZooKeeper that cannot start fails the test (the harness panics; with CI=true
//! `scripts/zookeeper-run` never skips): there is no skip path here.
//!
//! Knobs: `PADDOCK_DIFF_FILES=a,b` runs only those files (and skips the coverage assertion),
//! `PADDOCK_DIFF_AGAINST=zookeeper` compares ZooKeeper with a second ZooKeeper (to validate the
//! corpus and the normalisation), `PADDOCK_DIFF_DUMP=dir` writes both transcripts there.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use engine::{code, perms, Acl, Id, Stat};
use node::proto::{
    add_watch_mode, create_flags, event, op, watcher_type, xid, ConnectRequest, ConnectResponse, Packet, Reader,
    ReplyHeader, Request, Response, SetWatches, WatcherEvent, Writer,
};
use paddock_tests::{repo_root, ServerProcess};

/// Session timeout asked for by default; the servers get `maxSessionTimeout` to grant it, so no
/// session expires while other sessions work.
const SESSION_TIMEOUT_MS: i32 = 30_000;
/// Extra zoo.cfg lines for both servers.
const EXTRA_CFG: &str = "maxSessionTimeout=60000";
/// How long a reply may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// `expect-closed`: how long to wait for the server to close a connection.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------------------------
// Scripts

#[derive(Debug, Clone)]
enum Rel {
    Num(i64),
    Last,
    Mark(String),
}

#[derive(Debug, Clone)]
enum Cmd {
    /// A new session; `legacy` leaves out the readOnly flag, as clients before 3.4 do.
    Open {
        timeout_ms: i32,
        legacy: bool,
    },
    Req {
        op: i32,
        req: Request,
    },
    SetWatches {
        op: i32,
        rel: Rel,
        sw: SetWatches,
    },
    Raw {
        op: i32,
        body: Vec<u8>,
    },
    Mark(String),
    Disconnect,
    /// `future`: claims a last zxid ahead of the server's.
    Reconnect {
        badpw: bool,
        future: bool,
    },
    Probe {
        badpw: bool,
    },
    ExpectClosed,
}

#[derive(Debug, Clone)]
struct Step {
    /// 1-based line in the file.
    line: usize,
    /// The step as written (a multi's block joined with `;`).
    text: String,
    session: String,
    cmd: Cmd,
}

struct Script {
    name: String,
    root: String,
    steps: Vec<Step>,
}

fn tokenize(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&c) = chars.peek() else { break };
        if c == '#' {
            break;
        }
        let mut tok = String::new();
        if c == '"' {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("unterminated quote".into()),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some('n') => tok.push('\n'),
                        Some('t') => tok.push('\t'),
                        Some('0') => tok.push('\0'),
                        Some('x') => {
                            let h: String = [chars.next(), chars.next()].iter().flatten().collect();
                            let b = u8::from_str_radix(&h, 16).map_err(|_| format!("bad \\x escape {h}"))?;
                            if b >= 0x80 {
                                return Err("\\x escapes stop at 7f; write binary data as hex:...".into());
                            }
                            tok.push(b as char);
                        }
                        Some(o) => tok.push(o),
                        None => return Err("dangling backslash".into()),
                    },
                    Some(o) => tok.push(o),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                tok.push(c);
                chars.next();
            }
        }
        out.push(tok);
    }
    Ok(out)
}

/// Positional arguments and `key=value` options of one command.
struct Args {
    pos: Vec<String>,
    opts: HashMap<String, String>,
}

const OPTION_KEYS: &[&str] = &[
    "mode",
    "acl",
    "ttl",
    "rel",
    "data",
    "exist",
    "child",
    "persistent",
    "recursive",
    "joining",
    "leaving",
    "members",
    "config",
    "timeout",
];

impl Args {
    fn new(tokens: &[String]) -> Args {
        let mut pos = Vec::new();
        let mut opts = HashMap::new();
        for t in tokens {
            match t.split_once('=') {
                Some((k, v)) if OPTION_KEYS.contains(&k) => {
                    opts.insert(k.to_string(), v.to_string());
                }
                _ => pos.push(t.clone()),
            }
        }
        Args { pos, opts }
    }

    fn at(&self, i: usize, what: &str) -> Result<&str, String> {
        self.pos.get(i).map(String::as_str).ok_or_else(|| format!("missing {what}"))
    }

    fn flag(&self, i: usize, word: &str) -> Result<bool, String> {
        match self.pos.get(i).map(String::as_str) {
            None => Ok(false),
            Some(w) if w == word => Ok(true),
            Some(w) => Err(format!("expected `{word}`, got `{w}`")),
        }
    }
}

fn num<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("not a number: `{s}`"))
}

fn expand(path: &str, root: &str) -> String {
    match path.strip_prefix('~') {
        Some(rest) => format!("{root}{rest}"),
        None => path.to_string(),
    }
}

fn parse_perms(p: &str) -> Result<i32, String> {
    if let Ok(n) = p.parse::<i32>() {
        return Ok(n);
    }
    p.chars().try_fold(0, |acc, c| {
        Ok(acc
            | match c {
                'r' => perms::READ,
                'w' => perms::WRITE,
                'c' => perms::CREATE,
                'd' => perms::DELETE,
                'a' => perms::ADMIN,
                o => return Err(format!("bad permission letter `{o}`")),
            })
    })
}

fn parse_acl(s: &str) -> Result<Vec<Acl>, String> {
    Ok(match s {
        "open" => engine::acl::open_acl_unsafe(),
        "read" => engine::acl::read_acl_unsafe(),
        "creator" => vec![Acl { perms: perms::ALL, id: Id::new("auth", "") }],
        "none" => vec![],
        _ => s
            .split(',')
            .map(|e| {
                let (scheme, rest) = e.split_once(':').ok_or_else(|| format!("bad ACL entry `{e}`"))?;
                let (id, p) = rest.rsplit_once(':').ok_or_else(|| format!("bad ACL entry `{e}`"))?;
                Ok(Acl { perms: parse_perms(p)?, id: Id::new(scheme, id) })
            })
            .collect::<Result<_, String>>()?,
    })
}

fn parse_mode(s: &str) -> Result<i32, String> {
    Ok(match s {
        "persistent" => create_flags::PERSISTENT,
        "ephemeral" => create_flags::EPHEMERAL,
        "sequential" => create_flags::PERSISTENT_SEQUENTIAL,
        "ephemeral_sequential" => create_flags::EPHEMERAL_SEQUENTIAL,
        "container" => create_flags::CONTAINER,
        "ttl" => create_flags::PERSISTENT_WITH_TTL,
        "sequential_ttl" => create_flags::PERSISTENT_SEQUENTIAL_WITH_TTL,
        n => num(n)?,
    })
}

fn parse_watcher_type(s: &str) -> Result<i32, String> {
    Ok(match s {
        "children" => watcher_type::CHILDREN,
        "data" => watcher_type::DATA,
        "any" => watcher_type::ANY,
        "persistent" => watcher_type::PERSISTENT,
        "recursive" => watcher_type::PERSISTENT_RECURSIVE,
        n => num(n)?,
    })
}

/// A data token: `hex:0001ff` is binary, `fill:N` N bytes of `x`, anything else its UTF-8 bytes.
fn parse_data(s: &str) -> Result<Vec<u8>, String> {
    if let Some(n) = s.strip_prefix("fill:") {
        return Ok(vec![b'x'; num(n)?]);
    }
    match s.strip_prefix("hex:") {
        Some(h) => parse_hex(h),
        None => Ok(s.as_bytes().to_vec()),
    }
}

fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("odd hex `{s}`"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| format!("bad hex `{s}`")))
        .collect()
}

/// A request command (one that maps to one opcode and one record), also used for multi sub-ops.
fn parse_request(cmd: &str, a: &Args, root: &str) -> Result<(i32, Request), String> {
    let path = |i: usize| -> Result<String, String> { Ok(expand(a.at(i, "path")?, root)) };
    let version = |i: usize| -> Result<i32, String> { a.pos.get(i).map_or(Ok(-1), |v| num(v)) };
    let create = |opcode: i32, default_mode: i32| -> Result<(i32, Request), String> {
        let flags = a.opts.get("mode").map_or(Ok(default_mode), |m| parse_mode(m))?;
        let acl = a.opts.get("acl").map_or_else(|| Ok(engine::acl::open_acl_unsafe()), |s| parse_acl(s))?;
        let ttl = match a.opts.get("ttl") {
            Some(t) => num(t)?,
            None if opcode == op::CREATE_TTL => 60 * 60 * 1000,
            None => -1,
        };
        let data = a.pos.get(1).map_or(Ok(vec![]), |d| parse_data(d))?;
        if a.pos.len() > 2 {
            return Err(format!("unexpected `{}`", a.pos[2]));
        }
        Ok((opcode, Request::Create { path: path(0)?, data, acl, flags, ttl }))
    };
    Ok(match cmd {
        "create" => create(op::CREATE, create_flags::PERSISTENT)?,
        "create2" => create(op::CREATE2, create_flags::PERSISTENT)?,
        "createContainer" => create(op::CREATE_CONTAINER, create_flags::CONTAINER)?,
        "createTTL" => create(op::CREATE_TTL, create_flags::PERSISTENT_WITH_TTL)?,
        "delete" => (op::DELETE, Request::Delete { path: path(0)?, version: version(1)? }),
        "deleteContainer" => (op::DELETE_CONTAINER, Request::Delete { path: path(0)?, version: -1 }),
        "exists" => (op::EXISTS, Request::Exists { path: path(0)?, watch: a.flag(1, "watch")? }),
        "get" => (op::GET_DATA, Request::GetData { path: path(0)?, watch: a.flag(1, "watch")? }),
        "set" => (
            op::SET_DATA,
            Request::SetData { path: path(0)?, data: parse_data(a.at(1, "data")?)?, version: version(2)? },
        ),
        "getACL" => (op::GET_ACL, Request::GetAcl { path: path(0)? }),
        "setACL" => {
            (op::SET_ACL, Request::SetAcl { path: path(0)?, acl: parse_acl(a.at(1, "acl")?)?, version: version(2)? })
        }
        "ls" => (op::GET_CHILDREN, Request::GetChildren { path: path(0)?, watch: a.flag(1, "watch")? }),
        "ls2" => (op::GET_CHILDREN2, Request::GetChildren { path: path(0)?, watch: a.flag(1, "watch")? }),
        "sync" => (op::SYNC, Request::Sync { path: path(0)? }),
        "check" => (op::CHECK, Request::Check { path: path(0)?, version: num(a.at(1, "version")?)? }),
        "auth" => (
            op::AUTH,
            Request::Auth {
                auth_type: 0,
                scheme: a.at(0, "scheme")?.to_string(),
                auth: a.at(1, "credential")?.as_bytes().to_vec(),
            },
        ),
        "addWatch" => {
            let mode = match a.at(1, "mode")? {
                "persistent" => add_watch_mode::PERSISTENT,
                "recursive" => add_watch_mode::PERSISTENT_RECURSIVE,
                n => num(n)?,
            };
            (op::ADD_WATCH, Request::AddWatch { path: path(0)?, mode })
        }
        "checkWatches" | "removeWatches" => (
            if cmd == "checkWatches" { op::CHECK_WATCHES } else { op::REMOVE_WATCHES },
            Request::Watches { path: path(0)?, watcher_type: parse_watcher_type(a.at(1, "watcher type")?)? },
        ),
        "getEphemerals" => (op::GET_EPHEMERALS, Request::GetEphemerals { prefix: path(0)? }),
        "count" => (op::GET_ALL_CHILDREN_NUMBER, Request::GetAllChildrenNumber { path: path(0)? }),
        "whoami" => (op::WHO_AM_I, Request::WhoAmI),
        "ping" => (op::PING, Request::Ping),
        "close" => (op::CLOSE_SESSION, Request::CloseSession),
        "reconfig" => {
            let s = |k: &str| a.opts.get(k).cloned().unwrap_or_default();
            let config_id = a.opts.get("config").map_or(Ok(-1), |c| num(c))?;
            (
                op::RECONFIG,
                Request::Reconfig {
                    joining: s("joining"),
                    leaving: s("leaving"),
                    new_members: s("members"),
                    config_id,
                },
            )
        }
        other => return Err(format!("unknown command `{other}`")),
    })
}

fn parse_script(path: &Path) -> Script {
    let name = path.file_stem().and_then(|s| s.to_str()).expect("corpus file name").to_string();
    let root = format!("/{name}");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let lines: Vec<&str> = text.lines().collect();
    let mut steps = Vec::new();
    let mut sessions = BTreeSet::new();
    let mut i = 0;
    while i < lines.len() {
        let line_no = i + 1;
        let fail = |msg: String| -> ! { panic!("{}:{line_no}: {msg}\n  {}", path.display(), lines[line_no - 1]) };
        let tokens = tokenize(lines[i]).unwrap_or_else(|e| fail(e));
        i += 1;
        if tokens.is_empty() {
            continue;
        }
        let mut text = lines[line_no - 1].trim().to_string();
        if tokens[0] == "session" {
            let a = Args::new(&tokens[1..]);
            let name = a.at(0, "session name").unwrap_or_else(|e| fail(e)).to_string();
            let timeout_ms =
                a.opts.get("timeout").map_or(Ok(SESSION_TIMEOUT_MS), |t| num(t)).unwrap_or_else(|e| fail(e));
            if !sessions.insert(name.clone()) {
                fail(format!("session {name} opened twice"));
            }
            let legacy = a.flag(1, "legacy").unwrap_or_else(|e| fail(e));
            steps.push(Step { line: line_no, text, session: name, cmd: Cmd::Open { timeout_ms, legacy } });
            continue;
        }
        let session = tokens[0].clone();
        if !sessions.contains(&session) {
            fail(format!("unknown session `{session}` (open it with `session {session}`)"));
        }
        let cmd = tokens.get(1).map(String::as_str).unwrap_or_else(|| fail("missing command".into()));
        let a = Args::new(&tokens[2..]);
        let parsed = match cmd {
            "multi" | "multiRead" => {
                let opcode = if cmd == "multi" { op::MULTI } else { op::MULTI_READ };
                let mut ops = Vec::new();
                match a.pos.as_slice() {
                    [b, e] if b == "{" && e == "}" => {}
                    [b] if b == "{" => loop {
                        let sub_line = i + 1;
                        let sub = lines.get(i).unwrap_or_else(|| fail("multi block not closed".into()));
                        i += 1;
                        let t = tokenize(sub).unwrap_or_else(|e| panic!("{}:{sub_line}: {e}", path.display()));
                        if t.is_empty() {
                            continue;
                        }
                        if t[0] == "}" {
                            break;
                        }
                        let sa = Args::new(&t[1..]);
                        let r = parse_request(&t[0], &sa, &root)
                            .unwrap_or_else(|e| panic!("{}:{sub_line}: {e}\n  {sub}", path.display()));
                        text.push_str(&format!(" {};", sub.trim()));
                        ops.push(r);
                    },
                    _ => fail(format!("`{cmd}` takes a block: `{cmd} {{` ... `}}`")),
                }
                if text.ends_with(';') {
                    text.push_str(" }");
                }
                Ok(Cmd::Req { op: opcode, req: Request::Multi(ops) })
            }
            "setWatches" | "setWatches2" => (|| {
                let opcode = if cmd == "setWatches" { op::SET_WATCHES } else { op::SET_WATCHES2 };
                let list = |k: &str| -> Vec<String> {
                    a.opts
                        .get(k)
                        .map(|v| v.split(',').filter(|p| !p.is_empty()).map(|p| expand(p, &root)).collect())
                        .unwrap_or_default()
                };
                let rel = match a.opts.get("rel").map(String::as_str) {
                    None => Rel::Num(0),
                    Some("last") => Rel::Last,
                    Some(m) if m.starts_with('@') => Rel::Mark(m[1..].to_string()),
                    Some(n) => Rel::Num(num(n)?),
                };
                let sw = SetWatches {
                    relative_zxid: 0,
                    data: list("data"),
                    exist: list("exist"),
                    child: list("child"),
                    persistent: list("persistent"),
                    persistent_recursive: list("recursive"),
                };
                if opcode == op::SET_WATCHES && !(sw.persistent.is_empty() && sw.persistent_recursive.is_empty()) {
                    return Err("setWatches has no persistent lists; use setWatches2".to_string());
                }
                Ok(Cmd::SetWatches { op: opcode, rel, sw })
            })(),
            "raw" => (|| {
                let opcode = num(a.at(0, "opcode")?)?;
                let body = a.pos.get(1).map_or(Ok(vec![]), |h| parse_hex(h))?;
                Ok(Cmd::Raw { op: opcode, body })
            })(),
            "mark" => a.at(0, "mark name").map(|m| Cmd::Mark(m.to_string())),
            "disconnect" => Ok(Cmd::Disconnect),
            "reconnect" => match a.pos.iter().find(|w| *w != "badpw" && *w != "future") {
                Some(w) => Err(format!("reconnect takes `badpw` and `future`, not `{w}`")),
                None => Ok(Cmd::Reconnect {
                    badpw: a.pos.iter().any(|w| w == "badpw"),
                    future: a.pos.iter().any(|w| w == "future"),
                }),
            },
            "probe" => a.flag(0, "badpw").map(|badpw| Cmd::Probe { badpw }),
            "expect-closed" => Ok(Cmd::ExpectClosed),
            _ => parse_request(cmd, &a, &root).map(|(op, req)| Cmd::Req { op, req }),
        };
        let cmd = parsed.unwrap_or_else(|e| fail(e));
        steps.push(Step { line: line_no, text, session, cmd });
    }
    Script { name, root, steps }
}

// ---------------------------------------------------------------------------------------------
// Names

fn op_name(o: i32) -> String {
    match o {
        op::CREATE => "create",
        op::DELETE => "delete",
        op::EXISTS => "exists",
        op::GET_DATA => "getData",
        op::SET_DATA => "setData",
        op::GET_ACL => "getACL",
        op::SET_ACL => "setACL",
        op::GET_CHILDREN => "getChildren",
        op::SYNC => "sync",
        op::PING => "ping",
        op::GET_CHILDREN2 => "getChildren2",
        op::CHECK => "check",
        op::MULTI => "multi",
        op::CREATE2 => "create2",
        op::RECONFIG => "reconfig",
        op::CHECK_WATCHES => "checkWatches",
        op::REMOVE_WATCHES => "removeWatches",
        op::CREATE_CONTAINER => "createContainer",
        op::DELETE_CONTAINER => "deleteContainer",
        op::CREATE_TTL => "createTTL",
        op::MULTI_READ => "multiRead",
        op::AUTH => "auth",
        op::SET_WATCHES => "setWatches",
        op::SASL => "sasl",
        op::GET_EPHEMERALS => "getEphemerals",
        op::GET_ALL_CHILDREN_NUMBER => "getAllChildrenNumber",
        op::SET_WATCHES2 => "setWatches2",
        op::ADD_WATCH => "addWatch",
        op::WHO_AM_I => "whoAmI",
        op::CLOSE_SESSION => "closeSession",
        op::ERROR => "error",
        _ => return format!("unknownOp({o})"),
    }
    .to_string()
}

fn err_name(e: i32) -> String {
    match e {
        code::OK => "OK",
        code::SYSTEM_ERROR => "SystemError",
        code::RUNTIME_INCONSISTENCY => "RuntimeInconsistency",
        code::DATA_INCONSISTENCY => "DataInconsistency",
        code::CONNECTION_LOSS => "ConnectionLoss",
        code::MARSHALLING_ERROR => "MarshallingError",
        code::UNIMPLEMENTED => "Unimplemented",
        code::OPERATION_TIMEOUT => "OperationTimeout",
        code::BAD_ARGUMENTS => "BadArguments",
        code::UNKNOWN_SESSION => "UnknownSession",
        code::NEW_CONFIG_NO_QUORUM => "NewConfigNoQuorum",
        code::RECONFIG_IN_PROGRESS => "ReconfigInProgress",
        code::API_ERROR => "APIError",
        code::NO_NODE => "NoNode",
        code::NO_AUTH => "NoAuth",
        code::BAD_VERSION => "BadVersion",
        code::NO_CHILDREN_FOR_EPHEMERALS => "NoChildrenForEphemerals",
        code::NODE_EXISTS => "NodeExists",
        code::NOT_EMPTY => "NotEmpty",
        code::SESSION_EXPIRED => "SessionExpired",
        code::INVALID_CALLBACK => "InvalidCallback",
        code::INVALID_ACL => "InvalidACL",
        code::AUTH_FAILED => "AuthFailed",
        code::SESSION_MOVED => "SessionMoved",
        code::NOT_READ_ONLY => "NotReadOnly",
        code::EPHEMERAL_ON_LOCAL_SESSION => "EphemeralOnLocalSession",
        code::NO_WATCHER => "NoWatcher",
        code::REQUEST_TIMEOUT => "RequestTimeout",
        code::RECONFIG_DISABLED => "ReconfigDisabled",
        code::SESSION_CLOSED_REQUIRE_SASL_AUTH => "SessionClosedRequireSaslAuth",
        code::QUOTA_EXCEEDED => "QuotaExceeded",
        code::THROTTLED => "Throttled",
        _ => return format!("err({e})"),
    }
    .to_string()
}

fn event_name(t: i32) -> String {
    match t {
        event::NONE => "None",
        event::NODE_CREATED => "NodeCreated",
        event::NODE_DELETED => "NodeDeleted",
        event::NODE_DATA_CHANGED => "NodeDataChanged",
        event::NODE_CHILDREN_CHANGED => "NodeChildrenChanged",
        5 => "DataWatchRemoved",
        6 => "ChildWatchRemoved",
        7 => "PersistentWatchRemoved",
        _ => return format!("event({t})"),
    }
    .to_string()
}

// ---------------------------------------------------------------------------------------------
// Normalisation

/// Per-transcript maps: zxids to ranks, session ids to names, wall-clock times to `t`.
struct Norm {
    zxids: HashMap<i64, usize>,
    sessions: HashMap<i64, String>,
    time_lo: i64,
    time_hi: i64,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Norm {
    fn new() -> Norm {
        let now = now_ms();
        Norm { zxids: HashMap::new(), sessions: HashMap::new(), time_lo: now - 3_600_000, time_hi: now + 3_600_000 }
    }

    fn zxid(&mut self, z: i64) -> String {
        if z <= 0 {
            return z.to_string();
        }
        let next = self.zxids.len() + 1;
        format!("z{}", self.zxids.entry(z).or_insert(next))
    }

    fn time(&self, t: i64) -> String {
        if t == 0 {
            "0".into()
        } else if (self.time_lo..=self.time_hi).contains(&t) {
            "t".into()
        } else {
            format!("time?{t}")
        }
    }

    fn session(&self, sid: i64) -> String {
        if sid == 0 {
            return "0".into();
        }
        self.sessions.get(&sid).cloned().unwrap_or_else(|| "session?".into())
    }

    fn stat(&mut self, s: &Stat) -> String {
        format!(
            "{{cz={} mz={} ct={} mt={} v={} cv={} av={} eph={} len={} nc={} pz={}}}",
            self.zxid(s.czxid),
            self.zxid(s.mzxid),
            self.time(s.ctime),
            self.time(s.mtime),
            s.version,
            s.cversion,
            s.aversion,
            self.session(s.ephemeral_owner),
            s.data_length,
            s.num_children,
            self.zxid(s.pzxid)
        )
    }

    fn response(&mut self, r: &Response) -> String {
        match r {
            Response::Empty => "-".into(),
            Response::Path(p) => format!("path={p:?}"),
            Response::PathStat(p, s) => format!("path={p:?} stat={}", self.stat(s)),
            Response::Stat(s) => format!("stat={}", self.stat(s)),
            Response::Data(d, s) => format!("data={} stat={}", bytes(d), self.stat(s)),
            Response::Acl(acl, s) => format!("acl={} stat={}", acls(acl), self.stat(s)),
            Response::Children(c) => format!("children={:?}", sorted(c)),
            Response::Children2(c, s) => format!("children={:?} stat={}", sorted(c), self.stat(s)),
            Response::Paths(p) => format!("paths={:?}", sorted(p)),
            Response::Count(n) => format!("count={n}"),
            Response::Code(n) => format!("code={n}"),
            Response::ClientInfo(infos) => {
                // ZooKeeper keeps a connection's identities in a hash set: their order is noise.
                let mut infos = infos.clone();
                infos.sort();
                format!("whoami={infos:?}")
            }
            Response::Multi(results) => {
                let parts: Vec<String> = results
                    .iter()
                    .map(|m| format!("{}:{} {}", op_name(m.op), err_name(m.err), self.response(&m.response)))
                    .collect();
                format!("results=[{}]", parts.join(" | "))
            }
        }
    }
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

fn bytes(d: &[u8]) -> String {
    if d.len() > 200 {
        let fnv = d.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3));
        return format!("<{} bytes, fnv {fnv:016x}>", d.len());
    }
    match std::str::from_utf8(d) {
        Ok(s) if !s.chars().any(char::is_control) => format!("{s:?}"),
        _ => format!("hex:{}", hex(d)),
    }
}

fn hex(d: &[u8]) -> String {
    d.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn acls(a: &[Acl]) -> String {
    let v: Vec<String> = a.iter().map(|a| format!("{}:{}:{}", a.id.scheme, a.id.id, a.perms)).collect();
    format!("[{}]", v.join(","))
}

// ---------------------------------------------------------------------------------------------
// Coverage

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum WatchKind {
    Data,
    Exist,
    Child,
    Persistent,
    Recursive,
}

impl WatchKind {
    fn name(self) -> &'static str {
        match self {
            WatchKind::Data => "data",
            WatchKind::Exist => "exist",
            WatchKind::Child => "child",
            WatchKind::Persistent => "persistent",
            WatchKind::Recursive => "persistentRecursive",
        }
    }
}

/// What the corpus exercised: (opcode, error) pairs, multi sub-ops as `multi/<op>`, the
/// handshake as `connect`; and (watch kind, event type) pairs.
#[derive(Default)]
struct Coverage {
    ops: BTreeSet<(String, String)>,
    watches: BTreeSet<(String, String)>,
}

/// What the corpus must exercise against ZooKeeper.
const REQUIRED_OPS: &[(&str, &[&str])] = &[
    ("connect", &["OK", "SessionExpired"]),
    ("create", &["OK", "NodeExists", "NoNode", "NoChildrenForEphemerals", "InvalidACL", "NoAuth", "BadArguments"]),
    ("create2", &["OK", "NodeExists", "NoNode"]),
    ("createContainer", &["OK", "NodeExists"]),
    ("createTTL", &["OK", "BadArguments"]),
    ("delete", &["OK", "NoNode", "NotEmpty", "BadVersion", "NoAuth", "BadArguments"]),
    ("exists", &["OK", "NoNode"]),
    ("getData", &["OK", "NoNode", "NoAuth"]),
    ("setData", &["OK", "NoNode", "BadVersion", "NoAuth"]),
    ("getACL", &["OK", "NoNode", "NoAuth"]),
    ("setACL", &["OK", "NoNode", "BadVersion", "InvalidACL", "NoAuth"]),
    ("getChildren", &["OK", "NoNode", "NoAuth"]),
    ("getChildren2", &["OK", "NoNode"]),
    ("sync", &["OK"]),
    // A top-level check that passes gets no reply from ZooKeeper 3.8: only its failures count.
    ("check", &["BadVersion", "NoNode"]),
    ("multi", &["OK"]),
    ("multi/create", &["OK", "NodeExists", "NoNode", "RuntimeInconsistency"]),
    ("multi/delete", &["OK", "NoNode", "NotEmpty", "BadVersion", "RuntimeInconsistency"]),
    ("multi/setData", &["OK", "BadVersion", "RuntimeInconsistency"]),
    ("multi/check", &["OK", "BadVersion", "NoNode", "RuntimeInconsistency"]),
    ("multiRead", &["OK"]),
    ("multiRead/getData", &["OK", "NoNode"]),
    ("multiRead/getChildren", &["OK", "NoNode"]),
    ("auth", &["OK", "AuthFailed"]),
    ("setWatches", &["OK"]),
    ("setWatches2", &["OK"]),
    ("addWatch", &["OK"]),
    ("checkWatches", &["OK", "NoWatcher"]),
    ("removeWatches", &["OK", "NoWatcher"]),
    ("getEphemerals", &["OK"]),
    ("getAllChildrenNumber", &["OK", "NoNode"]),
    ("whoAmI", &["OK"]),
    ("closeSession", &["OK"]),
    ("ping", &["OK"]),
    ("reconfig", &["ReconfigDisabled"]),
    ("unknownOp(999)", &["Unimplemented"]),
];

const REQUIRED_WATCHES: &[(&str, &[&str])] = &[
    ("data", &["NodeDataChanged", "NodeDeleted"]),
    ("exist", &["NodeCreated", "NodeDataChanged", "NodeDeleted"]),
    ("child", &["NodeChildrenChanged", "NodeDeleted"]),
    ("persistent", &["NodeCreated", "NodeDataChanged", "NodeDeleted", "NodeChildrenChanged"]),
    ("persistentRecursive", &["NodeCreated", "NodeDataChanged", "NodeDeleted"]),
];

impl Coverage {
    fn merge(&mut self, other: Coverage) {
        self.ops.extend(other.ops);
        self.watches.extend(other.watches);
    }

    fn op(&mut self, op: &str, err: i32) {
        self.ops.insert((op.to_string(), err_name(err)));
    }

    fn missing(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (o, errs) in REQUIRED_OPS {
            for e in *errs {
                if !self.ops.contains(&(o.to_string(), e.to_string())) {
                    out.push(format!("{o} × {e}"));
                }
            }
        }
        for (w, evs) in REQUIRED_WATCHES {
            for e in *evs {
                if !self.watches.contains(&(w.to_string(), e.to_string())) {
                    out.push(format!("{w} watch × {e}"));
                }
            }
        }
        out
    }

    fn table(&self) -> String {
        let mut by_op: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (o, e) in &self.ops {
            by_op.entry(o).or_default().push(e);
        }
        let mut s = String::from("coverage, opcode × error code (as ZooKeeper answered the corpus):\n");
        for (o, errs) in by_op {
            let _ = writeln!(s, "  {o:<24} {}", errs.join(" "));
        }
        let mut by_watch: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (w, e) in &self.watches {
            by_watch.entry(w).or_default().push(e);
        }
        s.push_str("coverage, watch type × event type:\n");
        for (w, evs) in by_watch {
            let _ = writeln!(s, "  {w:<24} {}", evs.join(" "));
        }
        s
    }
}

fn is_ancestor_or_self(anc: &str, path: &str) -> bool {
    anc == path || anc == "/" || (path.starts_with(anc) && path.as_bytes().get(anc.len()) == Some(&b'/'))
}

/// The client-side model of which watches a session holds, used only to attribute events to
/// watch kinds for the coverage table.
fn attribute(watches: &mut Vec<(String, WatchKind)>, e: &WatcherEvent, cov: &mut Coverage) {
    let ev = event_name(e.event_type);
    let mut fired = BTreeSet::new();
    watches.retain(|(p, k)| {
        let hit = match k {
            WatchKind::Data => p == &e.path && matches!(e.event_type, event::NODE_DATA_CHANGED | event::NODE_DELETED),
            WatchKind::Exist => {
                p == &e.path
                    && matches!(e.event_type, event::NODE_CREATED | event::NODE_DATA_CHANGED | event::NODE_DELETED)
            }
            WatchKind::Child => {
                p == &e.path && matches!(e.event_type, event::NODE_CHILDREN_CHANGED | event::NODE_DELETED)
            }
            WatchKind::Persistent => p == &e.path,
            WatchKind::Recursive => is_ancestor_or_self(p, &e.path) && e.event_type != event::NODE_CHILDREN_CHANGED,
        };
        if hit {
            fired.insert(*k);
        }
        !(hit && matches!(k, WatchKind::Data | WatchKind::Exist | WatchKind::Child))
    });
    for k in fired {
        cov.watches.insert((k.name().to_string(), ev.clone()));
    }
}

// ---------------------------------------------------------------------------------------------
// The connection

fn read_frame(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    node::proto::read_frame(stream, 16 * 1024 * 1024)
}

fn handshake(addr: SocketAddr, req: &ConnectRequest) -> io::Result<(TcpStream, ConnectResponse)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
    let mut w = Writer::frame();
    req.encode(&mut w);
    stream.write_all(&w.finish_frame())?;
    let frame = read_frame(&mut stream)?;
    let rsp = ConnectResponse::decode(&mut Reader::new(&frame))
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    Ok((stream, rsp))
}

#[derive(Default)]
struct Sess {
    conn: Option<TcpStream>,
    sid: i64,
    password: Vec<u8>,
    timeout_ms: i32,
    last_zxid: i64,
    next_xid: i32,
    /// Events received and not yet recorded.
    events: Vec<WatcherEvent>,
    /// Things noticed outside a step's own reply (lost connection, stray frames).
    notes: Vec<String>,
    /// Known to be over (closed, or the server said expired).
    ended: bool,
    watches: Vec<(String, WatchKind)>,
}

impl Sess {
    fn lose(&mut self) {
        if let Some(s) = self.conn.take() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        self.watches.clear();
    }

    /// Reads frames until the reply with `want`; events on the way are kept.
    fn receive(&mut self, want: i32) -> io::Result<(ReplyHeader, Vec<u8>)> {
        let stream = self.conn.as_mut().ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "no connection"))?;
        loop {
            let frame = read_frame(stream)?;
            let mut r = Reader::new(&frame);
            let header =
                ReplyHeader::decode(&mut r).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            let body = frame[frame.len() - r.remaining()..].to_vec();
            if header.xid == xid::NOTIFICATION {
                match WatcherEvent::decode(&mut Reader::new(&body)) {
                    Ok(e) => self.events.push(e),
                    Err(e) => self.notes.push(format!("undecodable event ({e}): {}", hex(&body))),
                }
                continue;
            }
            if header.xid == want {
                return Ok((header, body));
            }
            self.notes.push(format!("stray reply xid={} err={}", header.xid, err_name(header.err)));
        }
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let stream = self.conn.as_mut().ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "no connection"))?;
        stream.write_all(bytes)
    }

    /// A ping round trip: every frame the server queued before it has arrived afterwards.
    fn barrier(&mut self) {
        if self.conn.is_none() {
            return;
        }
        let ping = Packet { xid: xid::PING, op: op::PING, request: Request::Ping }.encode();
        if self.write(&ping).and_then(|_| self.receive(xid::PING)).is_err() {
            self.notes.push("connection lost".into());
            self.lose();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Running a script

/// One step's outcome, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    reply: String,
    events: Vec<String>,
}

struct Run {
    addr: SocketAddr,
    sessions: BTreeMap<String, Sess>,
    marks: HashMap<String, i64>,
    norm: Norm,
    cov: Coverage,
}

impl Run {
    fn connect_line(&mut self, name: &str, rsp: &ConnectResponse) -> String {
        let expired = rsp.session_id == 0 || rsp.timeout_ms <= 0;
        if !expired {
            self.norm.sessions.entry(rsp.session_id).or_insert_with(|| name.to_string());
        }
        self.cov.op("connect", if expired { code::SESSION_EXPIRED } else { code::OK });
        format!(
            "{} timeout={} session={} password={}B readOnly={:?} protocol={}",
            if expired { "expired" } else { "connected" },
            rsp.timeout_ms,
            self.norm.session(rsp.session_id),
            rsp.password.len(),
            rsp.read_only,
            rsp.protocol_version
        )
    }

    fn open(&mut self, name: &str, req: &ConnectRequest, keep: bool) -> String {
        match handshake(self.addr, req) {
            Err(e) => {
                let s = self.sessions.entry(name.to_string()).or_default();
                if keep && s.sid == 0 {
                    s.ended = true;
                }
                format!("handshake failed: {}", io_kind(&e))
            }
            Ok((stream, rsp)) => {
                let line = self.connect_line(name, &rsp);
                let s = self.sessions.entry(name.to_string()).or_default();
                let expired = rsp.session_id == 0 || rsp.timeout_ms <= 0;
                if expired {
                    if keep {
                        s.ended = true;
                    }
                    let _ = stream.shutdown(std::net::Shutdown::Both);
                } else if keep {
                    s.lose();
                    s.conn = Some(stream);
                    s.sid = rsp.session_id;
                    s.password = rsp.password;
                    s.timeout_ms = rsp.timeout_ms;
                    s.ended = false;
                    if s.next_xid == 0 {
                        s.next_xid = 1;
                    }
                } else {
                    let _ = stream.shutdown(std::net::Shutdown::Both);
                }
                line
            }
        }
    }

    fn resume_request(&self, name: &str, badpw: bool) -> ConnectRequest {
        let s = &self.sessions[name];
        let mut password = s.password.clone();
        if badpw {
            password.iter_mut().for_each(|b| *b ^= 0x5a);
            if password.is_empty() {
                password = vec![1; 16];
            }
        }
        ConnectRequest::resume(s.sid, &password, s.last_zxid, s.timeout_ms)
    }

    /// Sends one request and formats its reply; coverage keeps (op, err).
    fn request(&mut self, name: &str, opcode: i32, req: &Request) -> String {
        let s = self.sessions.get_mut(name).expect("session");
        let x = match opcode {
            op::PING => xid::PING,
            op::AUTH => xid::AUTH,
            op::SET_WATCHES | op::SET_WATCHES2 => xid::SET_WATCHES,
            _ => {
                s.next_xid += 1;
                s.next_xid - 1
            }
        };
        let frame = Packet { xid: x, op: opcode, request: req.clone() }.encode();
        self.exchange(name, x, opcode, &frame, Some(req))
    }

    fn exchange(&mut self, name: &str, x: i32, opcode: i32, frame: &[u8], req: Option<&Request>) -> String {
        let s = self.sessions.get_mut(name).expect("session");
        if s.conn.is_none() {
            return "not connected".into();
        }
        let got = s.write(frame).and_then(|_| s.receive(x));
        let (header, body) = match got {
            Ok(r) => r,
            Err(e) => {
                s.lose();
                return format!("connection lost: {}", io_kind(&e));
            }
        };
        if header.zxid > s.last_zxid && !matches!(opcode, op::PING | op::AUTH) {
            s.last_zxid = header.zxid;
        }
        if header.err == 0 {
            self.track_watches(name, opcode, req);
        }
        if opcode == op::CLOSE_SESSION && header.err == 0 {
            let s = self.sessions.get_mut(name).expect("session");
            s.ended = true;
            s.lose();
        }
        self.cov.op(&op_name(opcode), header.err);
        let mut line = format!("err={} zxid={}", err_name(header.err), self.norm.zxid(header.zxid));
        if header.xid != x {
            let _ = write!(line, " xid={}", header.xid);
        }
        let _ = write!(line, " {}", self.body(opcode, header.err, &body, req));
        line
    }

    fn body(&mut self, opcode: i32, err: i32, body: &[u8], req: Option<&Request>) -> String {
        if body.is_empty() {
            return if err == 0 { "(no body)".into() } else { String::new() };
        }
        let multi = matches!(opcode, op::MULTI | op::MULTI_READ);
        if err != 0 && !multi {
            return format!("body=hex:{}", hex(body));
        }
        let mut r = Reader::new(body);
        match Response::decode(opcode, &mut r) {
            Err(e) => format!("undecodable ({e}): hex:{}", hex(body)),
            Ok(rsp) => {
                if let (Response::Multi(results), Some(Request::Multi(ops))) = (&rsp, req) {
                    let prefix = op_name(opcode);
                    for (i, m) in results.iter().enumerate() {
                        let sub = ops.get(i).map_or("extra".to_string(), |(o, _)| op_name(*o));
                        self.cov.op(&format!("{prefix}/{sub}"), m.err);
                    }
                    if results.len() != ops.len() {
                        self.cov.op(&format!("{prefix}/count-mismatch"), 0);
                    }
                }
                let mut s = self.norm.response(&rsp);
                // Jute's null buffer (-1) and an empty one decode alike: tell them apart.
                if opcode == op::GET_DATA && body.starts_with(&[0xff, 0xff, 0xff, 0xff]) {
                    s = s.replacen("data=\"\"", "data=null", 1);
                }
                if r.remaining() > 0 {
                    let _ = write!(s, " +bytes:{}", hex(&body[body.len() - r.remaining()..]));
                }
                s
            }
        }
    }

    /// Keeps the coverage model of the session's watches after a successful request.
    fn track_watches(&mut self, name: &str, opcode: i32, req: Option<&Request>) {
        let s = self.sessions.get_mut(name).expect("session");
        let mut add = |p: &str, k| s.watches.push((p.to_string(), k));
        match (opcode, req) {
            (op::GET_DATA, Some(Request::GetData { path, watch: true })) => add(path, WatchKind::Data),
            (op::EXISTS, Some(Request::Exists { path, watch: true })) => add(path, WatchKind::Exist),
            (op::GET_CHILDREN | op::GET_CHILDREN2, Some(Request::GetChildren { path, watch: true })) => {
                add(path, WatchKind::Child)
            }
            (op::ADD_WATCH, Some(Request::AddWatch { path, mode })) => add(
                path,
                if *mode == add_watch_mode::PERSISTENT_RECURSIVE {
                    WatchKind::Recursive
                } else {
                    WatchKind::Persistent
                },
            ),
            (op::SET_WATCHES | op::SET_WATCHES2, Some(Request::SetWatches(sw))) => {
                sw.data.iter().for_each(|p| add(p, WatchKind::Data));
                sw.exist.iter().for_each(|p| add(p, WatchKind::Exist));
                sw.child.iter().for_each(|p| add(p, WatchKind::Child));
                sw.persistent.iter().for_each(|p| add(p, WatchKind::Persistent));
                sw.persistent_recursive.iter().for_each(|p| add(p, WatchKind::Recursive));
            }
            (op::REMOVE_WATCHES, Some(Request::Watches { path, watcher_type: t })) => s.watches.retain(|(p, k)| {
                p != path
                    || !match *t {
                        watcher_type::CHILDREN => *k == WatchKind::Child,
                        watcher_type::DATA => matches!(k, WatchKind::Data | WatchKind::Exist),
                        watcher_type::PERSISTENT => *k == WatchKind::Persistent,
                        watcher_type::PERSISTENT_RECURSIVE => *k == WatchKind::Recursive,
                        _ => true,
                    }
            }),
            _ => {}
        }
    }

    fn step(&mut self, script: &Script, step: &Step) -> Entry {
        let name = step.session.as_str();
        let reply = match &step.cmd {
            Cmd::Open { timeout_ms, legacy } => {
                let read_only = if *legacy { None } else { Some(false) };
                let req = ConnectRequest { read_only, ..ConnectRequest::new_session(*timeout_ms) };
                self.open(name, &req, true)
            }
            Cmd::Req { op, req } => self.request(name, *op, req),
            Cmd::SetWatches { op, rel, sw } => {
                let relative_zxid = match rel {
                    Rel::Num(n) => *n,
                    Rel::Last => self.sessions[name].last_zxid,
                    Rel::Mark(m) => *self.marks.get(m).unwrap_or_else(|| panic!("{}: no mark @{m}", script.name)),
                };
                self.request(name, *op, &Request::SetWatches(SetWatches { relative_zxid, ..sw.clone() }))
            }
            Cmd::Raw { op, body } => {
                let s = self.sessions.get_mut(name).expect("session");
                s.next_xid += 1;
                let x = s.next_xid - 1;
                let mut frame = ((8 + body.len()) as i32).to_be_bytes().to_vec();
                frame.extend_from_slice(&x.to_be_bytes());
                frame.extend_from_slice(&op.to_be_bytes());
                frame.extend_from_slice(body);
                self.exchange(name, x, *op, &frame, None)
            }
            Cmd::Mark(m) => {
                let z = self.sessions[name].last_zxid;
                self.marks.insert(m.clone(), z);
                format!("mark {m} = {}", self.norm.zxid(z))
            }
            Cmd::Disconnect => {
                let s = self.sessions.get_mut(name).expect("session");
                s.lose();
                "disconnected".into()
            }
            Cmd::Reconnect { badpw, future } => {
                let mut req = self.resume_request(name, *badpw);
                if *future {
                    req.last_zxid_seen += 1_000_000;
                }
                self.sessions.get_mut(name).expect("session").lose();
                self.open(name, &req, true)
            }
            Cmd::Probe { badpw } => {
                let req = self.resume_request(name, *badpw);
                self.open(name, &req, false)
            }
            Cmd::ExpectClosed => {
                let s = self.sessions.get_mut(name).expect("session");
                match s.conn.as_mut() {
                    None => "not connected".into(),
                    Some(stream) => {
                        let deadline = Instant::now() + CLOSE_WAIT;
                        let closed = loop {
                            let left = deadline.saturating_duration_since(Instant::now());
                            if left.is_zero() {
                                break false;
                            }
                            let _ = stream.set_read_timeout(Some(left));
                            match read_frame(stream) {
                                Ok(frame) => {
                                    let mut r = Reader::new(&frame);
                                    match ReplyHeader::decode(&mut r) {
                                        Ok(h) if h.xid == xid::NOTIFICATION => {
                                            if let Ok(e) = WatcherEvent::decode(&mut r) {
                                                s.events.push(e);
                                            }
                                        }
                                        Ok(h) => s.notes.push(format!("stray reply xid={} err={}", h.xid, h.err)),
                                        Err(_) => s.notes.push("undecodable frame".into()),
                                    }
                                }
                                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                                    break false
                                }
                                Err(_) => break true,
                            }
                        };
                        if closed {
                            s.lose();
                            "closed by server".into()
                        } else {
                            let _ = stream.set_read_timeout(Some(REPLY_TIMEOUT));
                            format!("still open after {} ms", CLOSE_WAIT.as_millis())
                        }
                    }
                }
            }
        };
        // Events: the acting session's arrived before its reply; every other connected
        // session gets a ping round trip, after which everything due from this step is in.
        for (n, s) in self.sessions.iter_mut() {
            if n != name {
                s.barrier();
            }
        }
        let mut events = Vec::new();
        for (n, s) in self.sessions.iter_mut() {
            for e in std::mem::take(&mut s.events) {
                attribute(&mut s.watches, &e, &mut self.cov);
                let state =
                    if e.state == event::STATE_SYNC_CONNECTED { String::new() } else { format!(" state={}", e.state) };
                events.push(format!("{n}: {} {}{state}", event_name(e.event_type), e.path));
            }
            for note in s.notes.drain(..) {
                events.push(format!("{n}: {note}"));
            }
        }
        // A closing session's ephemerals go in ZooKeeper's hash-set order, which no client may
        // rely on: the events of a closeSession are compared as a set.
        if matches!(step.cmd, Cmd::Req { op: op::CLOSE_SESSION, .. }) {
            events.sort();
        }
        Entry { reply, events }
    }

    /// Ends every session the script left open (not recorded), so no session outlives its file
    /// and no expiry happens while a later file runs.
    fn cleanup(&mut self) {
        let names: Vec<String> = self.sessions.keys().cloned().collect();
        for name in names {
            if self.sessions[&name].ended {
                continue;
            }
            if self.sessions[&name].conn.is_none() {
                let req = self.resume_request(&name, false);
                if let Ok((stream, rsp)) = handshake(self.addr, &req) {
                    if rsp.session_id == 0 {
                        continue;
                    }
                    self.sessions.get_mut(&name).expect("session").conn = Some(stream);
                }
            }
            let s = self.sessions.get_mut(&name).expect("session");
            let x = s.next_xid.max(1);
            let frame = Packet { xid: x, op: op::CLOSE_SESSION, request: Request::CloseSession }.encode();
            let _ = s.write(&frame).and_then(|_| s.receive(x));
            s.lose();
        }
    }
}

fn io_kind(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timed out",
        io::ErrorKind::NotConnected => "not connected",
        io::ErrorKind::InvalidData => "invalid data",
        _ => "closed",
    }
}

struct Transcript {
    entries: Vec<Entry>,
    cov: Coverage,
}

fn run_script(addr: SocketAddr, script: &Script) -> Transcript {
    let mut run =
        Run { addr, sessions: BTreeMap::new(), marks: HashMap::new(), norm: Norm::new(), cov: Coverage::default() };
    let entries = script.steps.iter().map(|s| run.step(script, s)).collect();
    run.cleanup();
    Transcript { entries, cov: run.cov }
}

fn render(script: &Script, t: &Transcript) -> String {
    let mut s = String::new();
    for (i, (step, e)) in script.steps.iter().zip(&t.entries).enumerate() {
        let _ = writeln!(s, "#{} (line {}) {}\n    -> {}", i + 1, step.line, step.text, e.reply);
        for ev in &e.events {
            let _ = writeln!(s, "       event {ev}");
        }
    }
    s
}

/// The first differing step, readably, and how many steps differ in all.
fn compare(script: &Script, want: &Transcript, got: &Transcript, want_name: &str, got_name: &str) -> Option<String> {
    let differing: Vec<usize> = (0..script.steps.len()).filter(|&i| want.entries[i] != got.entries[i]).collect();
    let &first = differing.first()?;
    let step = &script.steps[first];
    let mut s = format!(
        "{}.zks: step #{} (line {}) differs: {}\n",
        script.name,
        first + 1,
        step.line,
        step.text.replace(&script.root, "~")
    );
    for i in first.saturating_sub(3)..first {
        let _ = writeln!(s, "    (before: #{} {} -> {})", i + 1, script.steps[i].text, want.entries[i].reply);
    }
    let (w, g) = (&want.entries[first], &got.entries[first]);
    let _ = writeln!(s, "    {want_name:>9}: {}", w.reply);
    let _ = writeln!(s, "    {got_name:>9}: {}", g.reply);
    if w.events != g.events {
        let _ = writeln!(s, "    {want_name:>9} events: {:?}", w.events);
        let _ = writeln!(s, "    {got_name:>9} events: {:?}", g.events);
    }
    if differing.len() > 1 {
        let more: Vec<String> = differing[1..].iter().take(20).map(|i| format!("#{}", i + 1)).collect();
        let _ = writeln!(s, "    {} more step(s) differ: {}", differing.len() - 1, more.join(" "));
    }
    Some(s)
}

fn corpus_files() -> Vec<PathBuf> {
    let dir = repo_root().join("tests/corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "zks"))
        .collect();
    files.sort();
    if let Ok(only) = std::env::var("PADDOCK_DIFF_FILES") {
        let only: Vec<&str> = only.split(',').collect();
        files.retain(|p| p.file_stem().and_then(|s| s.to_str()).is_some_and(|s| only.contains(&s)));
    }
    files
}

#[test]
fn paddock_answers_the_corpus_as_zookeeper_does() {
    let started = Instant::now();
    let subset = std::env::var("PADDOCK_DIFF_FILES").is_ok();
    let against_zk = std::env::var("PADDOCK_DIFF_AGAINST").is_ok_and(|v| v == "zookeeper");
    let scripts: Vec<Script> = corpus_files().iter().map(|p| parse_script(p)).collect();
    assert!(!scripts.is_empty(), "no corpus files in tests/corpus");
    let steps: usize = scripts.iter().map(|s| s.steps.len()).sum();

    // Both servers start at once: the JVM's start-up is the long pole. ZooKeeper that cannot
    // start makes the harness panic (never a skip).
    let (reference, candidate) = std::thread::scope(|sc| {
        let zk = sc.spawn(|| ServerProcess::zookeeper(EXTRA_CFG));
        let other = sc.spawn(move || {
            if against_zk {
                ServerProcess::zookeeper(EXTRA_CFG)
            } else {
                ServerProcess::paddock(2, EXTRA_CFG)
            }
        });
        let join = |h: std::thread::ScopedJoinHandle<'_, ServerProcess>| {
            h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
        };
        (join(zk), join(other))
    });
    let got_name = if against_zk { "ZooKeeper#2" } else { "Paddock" };
    eprintln!("servers up in {:.1} s; {} files, {steps} steps", started.elapsed().as_secs_f64(), scripts.len());

    let dump = std::env::var("PADDOCK_DIFF_DUMP").ok().map(PathBuf::from);
    let mut coverage = Coverage::default();
    let mut failures = Vec::new();
    for script in &scripts {
        let t0 = Instant::now();
        let (want, got) = std::thread::scope(|sc| {
            let w = sc.spawn(|| run_script(reference.addr, script));
            let g = sc.spawn(|| run_script(candidate.addr, script));
            let join = |h: std::thread::ScopedJoinHandle<'_, Transcript>| {
                h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
            };
            (join(w), join(g))
        });
        if let Some(dir) = &dump {
            std::fs::create_dir_all(dir).expect("dump dir");
            std::fs::write(dir.join(format!("{}.zookeeper.txt", script.name)), render(script, &want)).expect("dump");
            std::fs::write(dir.join(format!("{}.{}.txt", script.name, got_name.to_lowercase())), render(script, &got))
                .expect("dump");
        }
        let diff = compare(script, &want, &got, "ZooKeeper", got_name);
        eprintln!(
            "{:<14} {:>4} steps {:>6} ms  {}",
            script.name,
            script.steps.len(),
            t0.elapsed().as_millis(),
            if diff.is_some() { "DIFFERS" } else { "same" }
        );
        failures.extend(diff);
        coverage.merge(want.cov);
    }
    eprintln!("{}", coverage.table());
    eprintln!("differential run: {:.1} s", started.elapsed().as_secs_f64());

    let missing = if subset { vec![] } else { coverage.missing() };
    let mut msg = String::new();
    if !missing.is_empty() {
        let _ = writeln!(msg, "the corpus is too thin; never exercised against ZooKeeper:\n  {}", missing.join("\n  "));
    }
    if !failures.is_empty() {
        let _ = writeln!(msg, "{} of {} corpus files differ from ZooKeeper:\n", failures.len(), scripts.len());
        msg.push_str(&failures.join("\n"));
    }
    assert!(msg.is_empty(), "{msg}");
}
