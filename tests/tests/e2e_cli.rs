//! `paddock cli` as scripts and people use zkCli.sh: one command per process and whole sessions
//! piped on stdin, checked line by line against Debian's zkCli.sh talking to Apache ZooKeeper
//! 3.8, and the interactive shell on a pseudo-terminal (completion, history).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bench::client::Client;
use node::proto::{op, Request};
use paddock_tests::{paddock_bin, wait_until, ServerProcess};

const ZKCLI: &str = "/usr/share/zookeeper/bin/zkCli.sh";

/// What one run of a shell printed, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Run {
    stdout: String,
    stderr: String,
    code: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shell {
    Paddock,
    ZkCli,
}

/// Runs a shell with `args` (after `-server`), feeding `stdin`; kills it after a minute.
fn run(shell: Shell, server: &str, args: &[&str], stdin: &str) -> Run {
    let mut cmd = match shell {
        Shell::Paddock => {
            let mut c = Command::new(paddock_bin());
            c.arg("cli");
            c
        }
        Shell::ZkCli => Command::new(ZKCLI),
    };
    cmd.arg("-server").arg(server).args(args);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {shell:?}: {e}"));
    let mut input = child.stdin.take().expect("stdin");
    let text = stdin.to_string();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(text.as_bytes());
    });
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{shell:?} {args:?} did not finish within a minute");
        }
        std::thread::sleep(Duration::from_millis(10)); // poll interval; the deadline bounds the wait
    };
    let _ = writer.join();
    let stderr = err.join().unwrap_or_default();
    // The JVM's logging noise is not zkCli's output.
    let stderr: String = stderr.lines().filter(|l| !l.starts_with("SLF4J:")).map(|l| format!("{l}\n")).collect();
    Run { stdout: out.join().unwrap_or_default(), stderr, code: status.code().unwrap_or(-1) }
}

/// Times, zxids, session ids and the address differ between any two runs; nothing else may.
fn normalise(text: &str) -> String {
    text.lines()
        .map(|l| {
            for key in ["ctime = ", "mtime = "] {
                if l.starts_with(key) {
                    return format!("{key}<time>");
                }
            }
            for key in ["cZxid = 0x", "mZxid = 0x", "pZxid = 0x"] {
                if l.starts_with(key) {
                    return format!("{key}<zxid>");
                }
            }
            if l.starts_with("ephemeralOwner = 0x") && l != "ephemeralOwner = 0x0" {
                return "ephemeralOwner = 0x<session>".into();
            }
            if l.starts_with("Connecting to ") {
                return "Connecting to <server>".into();
            }
            l.to_string()
        })
        .map(|l| l + "\n")
        .collect()
}

/// The first differing line of two outputs, with context, or None when they agree.
fn first_difference(want: &str, got: &str) -> Option<String> {
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    let i = (0..w.len().max(g.len())).find(|&i| w.get(i) != g.get(i))?;
    Some(format!(
        "line {}: zkCli {:?} / paddock {:?}\n--- zkCli:\n{want}--- paddock:\n{got}",
        i + 1,
        w.get(i).unwrap_or(&"<end>"),
        g.get(i).unwrap_or(&"<end>")
    ))
}

/// Takes the `WATCHER::` blocks out of stdout: zkCli prints them from its event thread, which
/// under load may fall behind the main thread's next lines. Returns the rest and the events, in
/// order each; the order between the two is pinned by the Paddock-only tests.
fn split_events(stdout: &str) -> (String, String) {
    let lines: Vec<&str> = stdout.lines().collect();
    let (mut rest, mut events) = (String::new(), String::new());
    let mut i = 0;
    while i < lines.len() {
        if lines[i..].len() >= 4
            && lines[i].is_empty()
            && lines[i + 1] == "WATCHER::"
            && lines[i + 2].is_empty()
            && lines[i + 3].starts_with("WatchedEvent ")
        {
            events.push_str(lines[i + 3]);
            events.push('\n');
            i += 4;
        } else {
            rest.push_str(lines[i]);
            rest.push('\n');
            i += 1;
        }
    }
    (rest, events)
}

fn assert_same(what: &str, want: &Run, got: &Run) {
    let (want_rest, want_events) = split_events(&normalise(&want.stdout));
    let (got_rest, got_events) = split_events(&normalise(&got.stdout));
    let stderrs = format!("--- stderr: zkCli {:?} / paddock {:?}", want.stderr, got.stderr);
    if let Some(d) = first_difference(&want_rest, &got_rest) {
        panic!("{what}: stdout differs at {d}{stderrs}");
    }
    if let Some(d) = first_difference(&want_events, &got_events) {
        panic!("{what}: watch events differ at {d}{stderrs}");
    }
    if let Some(d) = first_difference(&normalise(&want.stderr), &normalise(&got.stderr)) {
        panic!("{what}: stderr differs at {d}");
    }
    assert_eq!(want.code, got.code, "{what}: exit code (stdout {:?}, stderr {:?})", got.stdout, got.stderr);
}

/// Creates `path` with a direct client: the chroots the shells run in.
fn create(addr: std::net::SocketAddr, path: &str) {
    let mut c = Client::connect(addr, 10_000).expect("connect");
    let reply = c
        .call(
            op::CREATE,
            Request::Create {
                path: path.into(),
                data: Vec::new(),
                acl: engine::acl::open_acl_unsafe(),
                flags: 0,
                ttl: -1,
            },
        )
        .expect("create");
    assert_eq!(reply.err(), 0, "create {path}");
    let _ = c.call(op::CLOSE_SESSION, Request::CloseSession);
}

/// A session piped on stdin: sequential and ephemeral nodes (which live through the script),
/// listings, Stat blocks, versions, watches, and the usual errors.
const SESSION: &str = "\
create /s top
create -s /s/seq- a
create -s /s/seq- b
create -e -s /s/eph- c
create -e /s/e d
ls /s
ls -R /s
get -s /s/e
set -v 0 /s/e d2
set -v 0 /s/e d3
set -s /s/e d4
stat /s/e
stat /s/nope
get -w /s/e
set /s/e d5
ls -w /s
create /s/w x
addWatch /s
create /s/w/deep y
removewatches /s
removewatches /s
getAllChildrenNumber /s
delete /s
delete -v 5 /s/w/deep
delete /s/w/deep
delete /s/nope
create /s/e/child x
deleteall /s
ls /
create x
create /a/b
create -c -e /c
nosuchcommand
get
create -s /s/seq-
ls /s /extra
history
redo 1
printwatches
get /zookeeper
";

/// One command per process: each starts a fresh session (and leaves its ephemerals behind, as
/// zkCli does, until the session times out).
const ONE_SHOTS: &[&[&str]] = &[
    &["create", "/one", "hello"],
    &["create", "/one", "again"],
    &["create", "-e", "/eph", "x"],
    &["ls", "/"],
    &["get", "-s", "/one"],
    &["set", "-v", "9", "/one", "x"],
    &["get", "/nope"],
    &["ls"],
    &["nosuchcommand"],
    &["deleteall", "/one"],
];

/// zkCli.sh needs Java and Debian's package: CI must have them, a developer may not.
fn zkcli_present() -> bool {
    if Path::new(ZKCLI).exists() {
        return true;
    }
    assert!(std::env::var("CI").map_or(true, |v| v != "true"), "{ZKCLI} is missing (scripts/zookeeper-run --install)");
    eprintln!("skipping: {ZKCLI} is missing");
    false
}

#[test]
fn scripts_print_what_zkcli_prints_against_zookeeper() {
    if !zkcli_present() {
        return;
    }
    let (zk, paddock) = std::thread::scope(|sc| {
        let zk = sc.spawn(|| ServerProcess::zookeeper(""));
        let paddock = sc.spawn(|| ServerProcess::paddock(2, ""));
        (zk.join().expect("zookeeper"), paddock.join().expect("paddock"))
    });
    // Each shell gets its own subtree (chroot) so all three runs start from the same empty tree.
    for root in ["/zkcli", "/paddock"] {
        create(zk.addr, root);
    }
    create(paddock.addr, "/paddock");
    let reference = format!("{}/zkcli", zk.connect_string());
    let ours_on_zk = format!("{}/paddock", zk.connect_string());
    let ours_on_paddock = format!("{}/paddock", paddock.connect_string());

    let want = run(Shell::ZkCli, &reference, &[], SESSION);
    // zkCli against ZooKeeper is the reference: paddock cli must print the same talking to
    // ZooKeeper (the client alone) and talking to Paddock (the whole stack).
    assert_same("session, paddock cli on ZooKeeper", &want, &run(Shell::Paddock, &ours_on_zk, &[], SESSION));
    assert_same("session, paddock cli on Paddock", &want, &run(Shell::Paddock, &ours_on_paddock, &[], SESSION));

    for args in ONE_SHOTS {
        let want = run(Shell::ZkCli, &reference, args, "");
        let what = format!("one-shot {args:?}");
        assert_same(&format!("{what} on ZooKeeper"), &want, &run(Shell::Paddock, &ours_on_zk, args, ""));
        assert_same(&format!("{what} on Paddock"), &want, &run(Shell::Paddock, &ours_on_paddock, args, ""));
    }
}

#[test]
fn one_shot_commands_print_zkclis_lines_and_exit_codes() {
    let server = ServerProcess::paddock(1, "");
    let addr = server.connect_string();
    let connected =
        format!("Connecting to {addr}\n\nWATCHER::\n\nWatchedEvent state:SyncConnected type:None path:null\n");

    let r = run(Shell::Paddock, &addr, &["create", "/a", "hello"], "");
    assert_eq!((r.stdout.as_str(), r.stderr.as_str(), r.code), (connected.as_str(), "Created /a\n", 0));

    let r = run(Shell::Paddock, &addr, &["create", "/a"], "");
    assert_eq!((r.stderr.as_str(), r.code), ("Node already exists: /a\n", 1));

    let r = run(Shell::Paddock, &addr, &["get", "-s", "/a"], "");
    let body = r.stdout.strip_prefix(connected.as_str()).expect("connection lines first");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 12, "{body}");
    assert_eq!(lines[0], "hello");
    assert!(lines[1].starts_with("cZxid = 0x"), "{body}");
    assert!(lines[2].starts_with("ctime = ") && lines[2].len() >= 28, "a Java date: {body}");
    assert_eq!(
        &lines[6..],
        [
            "cversion = 0",
            "dataVersion = 0",
            "aclVersion = 0",
            "ephemeralOwner = 0x0",
            "dataLength = 5",
            "numChildren = 0"
        ]
    );

    let r = run(Shell::Paddock, &addr, &["stat", "/nope"], "");
    assert_eq!((r.stderr.as_str(), r.code), ("Node does not exist: /nope\n", 1));

    // A command that needs no server prints no connection event, as zkCli exits first.
    let r = run(Shell::Paddock, &addr, &["ls"], "");
    assert_eq!(
        (r.stdout, r.stderr.as_str(), r.code),
        (format!("Connecting to {addr}\n"), "ls [-s] [-w] [-R] path\n", 1)
    );

    let r = run(Shell::Paddock, &addr, &["frobnicate"], "");
    assert_eq!(r.code, 127);
    assert!(r.stderr.starts_with("ZooKeeper -server host:port -client-configuration properties-file cmd args\n"));
    assert!(r.stderr.contains("\tcreate [-s] [-e] [-c] [-t ttl] path [data] [acl]\n"), "{}", r.stderr);
    assert!(r.stderr.ends_with("Command not found: Command not found frobnicate\n"), "{}", r.stderr);

    let r = run(Shell::Paddock, &addr, &["set", "-v", "abc", "/a", "x"], "");
    assert_eq!(
        (r.stderr.as_str(), r.code),
        ("Exception in thread \"main\" java.lang.NumberFormatException: For input string: \"abc\"\n", 1)
    );

    let r = run(Shell::Paddock, &addr, &["rmr", "/a"], "");
    assert_eq!(r.code, 0, "rmr is deleteall: {r:?}");
    let r = run(Shell::Paddock, "127.0.0.1:1", &["ls", "/"], "");
    assert_eq!((r.stderr.as_str(), r.code), ("KeeperErrorCode = ConnectionLoss for /\n", 1));
}

#[test]
fn a_piped_session_keeps_its_ephemerals_and_prints_their_paths() {
    let server = ServerProcess::paddock(1, "");
    let script = "create /app\ncreate -e /app/lock x\ncreate -e -s /app/n- y\nls /app\ngetEphemerals /app\n\
                  create /app/lock z\nquit\n";
    let r = run(Shell::Paddock, &server.connect_string(), &[], script);
    assert_eq!(r.code, 1, "quit exits with the last command's code: {r:?}");
    assert_eq!(
        r.stderr,
        "Created /app\nCreated /app/lock\nCreated /app/n-0000000001\nNode already exists: /app/lock\n"
    );
    assert!(
        r.stdout.starts_with(&format!(
            "Connecting to {}\nWelcome to ZooKeeper!\nJLine support is disabled\n",
            server.connect_string()
        )),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("\n[lock, n-0000000001]\n[/app/lock, /app/n-0000000001]\n"), "{}", r.stdout);
    // quit closes the session: the ephemerals go at once.
    assert!(r.stdout.ends_with("\nWATCHER::\n\nWatchedEvent state:Closed type:None path:null\n"), "{}", r.stdout);
    let r = run(Shell::Paddock, &server.connect_string(), &["ls", "/app"], "");
    assert!(r.stdout.ends_with("\n[]\n"), "{}", r.stdout);
}

#[test]
fn quota_commands_keep_zookeepers_bookkeeping() {
    let server = ServerProcess::paddock(1, "");
    let script = "create /q\ncreate /q/a 1\nsetquota -n 5 /q\nsetquota -B 10 /q\nlistquota /q\nsetquota -n 2 /q/a\n\
                  delquota -n /q\nlistquota /q\ndelquota /q\nlistquota /q\nls /zookeeper/quota\n";
    let r = run(Shell::Paddock, &server.connect_string(), &[], script);
    let stdout: Vec<&str> = r.stdout.lines().skip(7).collect();
    assert_eq!(
        stdout,
        [
            "Output quota for /q count=5,bytes=-1=;byteHardLimit=10;countHardLimit=-1",
            "Output stat for /q count=2,bytes=1",
            "Output quota for /q count=-1,bytes=-1=;byteHardLimit=10;countHardLimit=-1",
            "Output stat for /q count=2,bytes=1",
            "[]",
        ],
        "{}",
        r.stdout
    );
    assert!(r.stderr.contains("/q/a has a parent /q which has a quota\n"), "{}", r.stderr);
    assert!(
        r.stderr.ends_with("absolute path is /zookeeper/quota/q/zookeeper_limits\nquota for /q does not exist.\n"),
        "{}",
        r.stderr
    );
}

#[test]
fn watch_events_arrive_while_the_shell_waits_for_input() {
    let server = ServerProcess::paddock(1, "");
    let mut child = Command::new(paddock_bin())
        .args(["cli", "-server", &server.connect_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = child.stdout.take().expect("stdout");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = seen.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().expect("lock").push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let text = || seen.lock().expect("lock").clone();
    stdin.write_all(b"create /w v0\nget -w /w\n").expect("write");
    assert!(wait_until(Duration::from_secs(10), || text().contains("\nv0\n")), "{}", text());
    // The shell sits waiting for its next line when another client changes the node.
    let mut other = Client::connect(server.addr, 10_000).expect("connect");
    let reply = other
        .call(op::SET_DATA, Request::SetData { path: "/w".into(), data: b"v1".to_vec(), version: -1 })
        .expect("set");
    assert_eq!(reply.err(), 0);
    let event = "\nWATCHER::\n\nWatchedEvent state:SyncConnected type:NodeDataChanged path:/w\n";
    assert!(wait_until(Duration::from_secs(10), || text().contains(event)), "{}", text());
    drop(stdin);
    let _ = child.wait();
    let _ = reader.join();
}

#[test]
fn the_terminal_shell_completes_commands_and_paths_and_keeps_history() {
    let server = ServerProcess::paddock(1, "");
    create(server.addr, "/alpha");
    create(server.addr, "/alpha/one");
    create(server.addr, "/alpha/one/leaf");
    let mut cmd = Command::new(paddock_bin());
    cmd.args(["cli", "-server", &server.connect_string()]).env("TERM", "xterm");
    let mut p = rexpect::session::spawn_command(cmd, Some(20_000)).expect("spawn on a pty");
    p.exp_string("JLine support is enabled").expect("banner");
    let prompt = |n: usize| format!("[zk: {}(CONNECTED) {n}] ", server.connect_string());
    p.exp_string(&prompt(0)).expect("first prompt");

    // A command name, then a path, completed with Tab.
    p.send("getAllCh\t /al\t\r").expect("send");
    p.flush().expect("flush");
    // The redrawn line is full of cursor moves; the command's answer shows both completions
    // worked (`getAllCh /al` itself is no command).
    p.exp_string("\r\n2\r\n").expect("the completed command ran");
    p.exp_string(&prompt(1)).expect("second prompt");

    p.send("ls /alpha/\t\r").expect("send");
    p.flush().expect("flush");
    p.exp_string("[leaf]").expect("child completed and listed");
    p.exp_string(&prompt(2)).expect("third prompt");

    // Up-arrow recalls the previous line.
    p.send("\x1b[A\r").expect("send");
    p.flush().expect("flush");
    p.exp_string("[leaf]").expect("recalled command ran again");
    p.exp_string(&prompt(3)).expect("fourth prompt");

    p.send_line("history").expect("send");
    p.exp_string("0 - getAllChildrenNumber /alpha").expect("history numbers lines");
    p.exp_string("2 - ls /alpha/one").expect("recalled line in history");
    p.exp_string("3 - history").expect("history lists itself");
    p.exp_string(&prompt(4)).expect("fifth prompt");

    p.send_control('d').expect("ctrl-d");
    p.exp_eof().expect("end of input ends the shell");
}
