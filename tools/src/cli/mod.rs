//! `paddock cli`: a zkCli.sh-compatible shell. The same options, commands, output lines (on
//! the same streams) and exit codes as ZooKeeper 3.8's `ZooKeeperMain`, so scripts written
//! against zkCli keep working; line editing, history and completion when stdin is a terminal.

mod commands;
mod editor;
mod format;
mod parse;
mod quota;
mod session;

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use commands::Failure;
use session::{Printer, Session, State};

/// Writes to stdout; a closed stdout is not worth a panic.
pub(crate) fn out(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes());
    let _ = o.flush();
}

/// Writes a line to stderr.
pub(crate) fn err(line: &str) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "{line}");
}

/// The command-line options zkCli takes before its command (`MyCommandOptions.parseOptions`).
struct Options {
    server: String,
    timeout: String,
    read_only: bool,
    wait_for_connection: bool,
    /// The one-shot command and its words, if any.
    command: Option<Vec<String>>,
}

fn parse_options(args: &[String]) -> Options {
    let mut o = Options {
        server: "localhost:2181".into(),
        timeout: "30000".into(),
        read_only: false,
        wait_for_connection: false,
        command: None,
    };
    let mut it = args.iter();
    while let Some(opt) = it.next() {
        let mut value = |name: &str| match it.next() {
            Some(v) => Some(v.clone()),
            None => {
                err(&format!("Error: no argument found for option {name}"));
                None
            }
        };
        match opt.as_str() {
            "-server" => match value("-server") {
                Some(v) => o.server = v,
                None => return o,
            },
            "-timeout" => match value("-timeout") {
                Some(v) => o.timeout = v,
                None => return o,
            },
            // TLS and SASL settings live in this file; Paddock does not speak either yet.
            "-client-configuration" if value("-client-configuration").is_none() => return o,
            "-r" => o.read_only = true,
            "-waitforconnection" => o.wait_for_connection = true,
            _ => {}
        }
        if !opt.starts_with('-') {
            let mut words = vec![opt.clone()];
            words.extend(it.cloned());
            o.command = Some(words);
            return o;
        }
    }
    o
}

/// The shell: one session at a time, zkCli's numbered history, and the exit code of the last
/// command (which is what zkCli exits with).
struct Shell {
    host: String,
    timeout_ms: i32,
    read_only: bool,
    /// None until a command needs the server (one-shot mode connects lazily, which is when
    /// zkCli's connection event appears in practice).
    session: Option<Session>,
    /// The session the line editor's completer asks for children.
    completer_session: Arc<Mutex<Option<Session>>>,
    printer: Arc<Printer>,
    history: BTreeMap<i32, String>,
    command_count: i32,
    exit_code: u8,
}

impl Shell {
    fn open(&mut self) -> Result<Session, Failure> {
        if let Some(s) = &self.session {
            return Ok(s.clone());
        }
        let target = session::parse_connect_string(&self.host)
            .map_err(|m| Failure::Crash(format!("java.lang.IllegalArgumentException: {m}")))?;
        let s = Session::open(target, self.timeout_ms, self.read_only, self.printer.clone());
        self.session = Some(s.clone());
        if let Ok(mut c) = self.completer_session.lock() {
            *c = Some(s.clone());
        }
        Ok(s)
    }

    /// `connectToZK`: closes a live session (printing its Closed event) and opens another.
    fn connect(&mut self, host: String) -> Result<Session, Failure> {
        if let Some(s) = self.session.take() {
            s.close();
        }
        self.host = host;
        self.open()
    }

    fn is_alive(&self) -> bool {
        self.session.as_ref().is_none_or(|s| s.state().is_alive())
    }

    fn state(&self) -> State {
        self.session.as_ref().map_or(State::Connecting, Session::state)
    }

    /// `executeLine`: non-empty lines are numbered and kept for `history` and `redo`.
    fn execute_line(&mut self, line: &str) {
        if line.is_empty() {
            return;
        }
        let words = parse::split_line(line);
        self.history.insert(self.command_count, line.to_string());
        if !words.is_empty() {
            self.process(words);
        }
        self.command_count += 1;
    }

    /// `processCmd`: runs one command and keeps its exit code; errors go to stderr.
    fn process(&mut self, words: Vec<String>) {
        match self.process_zk(words) {
            Ok(()) => self.exit_code = 0,
            Err(Failure::Cli(msg, code)) => {
                err(&msg);
                self.exit_code = code;
            }
            Err(Failure::Crash(msg)) => {
                err(&format!("Exception in thread \"main\" {msg}"));
                self.exit_code = 1;
            }
        }
    }

    /// `processZKCmd`.
    fn process_zk(&mut self, mut words: Vec<String>) -> Result<(), Failure> {
        let cmd = words[0].clone();
        let builtin = commands::BUILTINS.iter().any(|(n, _)| *n == cmd);
        if !builtin && commands::find(&cmd).is_none() {
            usage();
            return Err(Failure::Cli(format!("Command not found: Command not found {cmd}"), 127));
        }
        match cmd.as_str() {
            "quit" => {
                if let Ok(s) = self.open() {
                    s.close();
                }
                std::process::exit(i32::from(self.exit_code));
            }
            "redo" if words.len() >= 2 => {
                let i = format::parse_java_decode(&words[1]).map_err(Failure::Crash)?;
                if self.command_count <= i || i < 0 {
                    return Err(commands::cli("Command index out of range"));
                }
                let line = self.history.get(&i).cloned().unwrap_or_default();
                let again = parse::split_line(&line);
                if again.first().is_some_and(|c| c == "redo") {
                    return Err(commands::cli("No redoing redos"));
                }
                self.history.insert(self.command_count, line);
                if !again.is_empty() {
                    self.process(again);
                }
            }
            "history" => {
                let mut text = String::new();
                for i in (self.command_count - 10).max(0)..=self.command_count {
                    let line = self.history.get(&i).map_or("null", String::as_str);
                    text.push_str(&format!("{i} - {line}\n"));
                }
                out(&text);
            }
            "printwatches" => {
                if words.len() == 1 {
                    let on = self.printer.on.load(std::sync::atomic::Ordering::SeqCst);
                    out(&format!("printwatches is {}\n", if on { "on" } else { "off" }));
                } else {
                    self.printer.on.store(words[1] == "on", std::sync::atomic::Ordering::SeqCst);
                }
            }
            "connect" => {
                let host = words.get(1).cloned().unwrap_or_else(|| self.host.clone());
                self.connect(host)?;
            }
            _ => {}
        }
        // Everything below needs a live session, zkCli's own commands included.
        if !self.is_alive() {
            out("Not connected\n");
            return Ok(());
        }
        match commands::find(&cmd) {
            Some(c) if !builtin => {
                let s = self.open()?;
                (c.run)(&s, &mut words)
            }
            _ => Ok(()),
        }
    }
}

/// `ZooKeeperMain.usage()`, on stderr.
fn usage() {
    let mut all: Vec<(&str, &str)> =
        commands::COMMANDS.iter().filter(|c| c.listed).map(|c| (c.name, c.options)).collect();
    all.extend(commands::BUILTINS.iter().copied());
    all.sort();
    let mut text = String::from("ZooKeeper -server host:port -client-configuration properties-file cmd args\n");
    for (name, options) in all {
        text.push_str(&format!("\t{name} {options}\n"));
    }
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Runs `paddock cli` with zkCli's arguments; returns the exit code zkCli would.
pub fn run(args: &[String]) -> ExitCode {
    let opts = parse_options(args);
    out(&format!("Connecting to {}\n", opts.server));
    let timeout_ms = match format::parse_java_int(&opts.timeout) {
        Ok(t) => t,
        Err(m) => {
            err(&format!("Exception in thread \"main\" {m}"));
            return ExitCode::from(1);
        }
    };
    let mut shell = Shell {
        host: opts.server.clone(),
        timeout_ms,
        read_only: opts.read_only,
        session: None,
        completer_session: Arc::new(Mutex::new(None)),
        printer: Arc::new(Printer::new()),
        history: BTreeMap::new(),
        command_count: 0,
        exit_code: 0,
    };
    let interactive = opts.command.is_none();
    let terminal = std::io::stdin().is_terminal();
    if interactive {
        let jline = if terminal { "enabled" } else { "disabled" };
        out(&format!("Welcome to ZooKeeper!\nJLine support is {jline}\n"));
    }
    if interactive || opts.wait_for_connection {
        // An interactive zkCli connects at once, and its connection event comes before the
        // first command's output.
        match shell.open() {
            Ok(s) => {
                s.wait_first_attempt();
                if opts.wait_for_connection && s.state() != State::Connected {
                    err("Exception in thread \"main\" java.io.IOException: \
                         org.apache.zookeeper.KeeperException$ConnectionLossException: KeeperErrorCode = ConnectionLoss");
                    return ExitCode::from(1);
                }
            }
            Err(Failure::Crash(m) | Failure::Cli(m, _)) => {
                err(&format!("Exception in thread \"main\" {m}"));
                return ExitCode::from(1);
            }
        }
    }
    match opts.command {
        Some(words) => shell.process(words),
        None if terminal => editor::run(&mut shell),
        None => read_lines(&mut shell),
    }
    // Leaving does not close the session, as zkCli's exit does not: its ephemerals live on
    // until the session times out.
    if let Some(s) = &shell.session {
        s.abandon();
    }
    ExitCode::from(shell.exit_code)
}

/// Commands piped in: one per line, no prompt (Debian's zkCli runs without JLine).
fn read_lines(shell: &mut Shell) {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut raw = Vec::new();
    loop {
        raw.clear();
        match input.read_until(b'\n', &mut raw) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&raw);
        let line = line.strip_suffix('\n').unwrap_or(&line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        shell.execute_line(line);
    }
}
