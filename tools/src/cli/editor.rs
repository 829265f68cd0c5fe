//! The terminal front end: rustyline with zkCli's prompt, in-memory history and completion of
//! command names and znode paths as `JLineZNodeCompleter` completes them.

use std::sync::{Arc, Mutex};

use node::proto::{op, Request, Response};
use rustyline::completion::{Completer, Pair};
use rustyline::config::{CompletionType, Config};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

use super::session::Session;
use super::{commands, Shell};

/// Completes from the shell's current session (swapped by `connect`).
struct ZkHelper {
    session: Arc<Mutex<Option<Session>>>,
}

impl ZkHelper {
    fn children(&self, dir: &str) -> Vec<String> {
        let Some(s) = self.session.lock().ok().and_then(|g| g.clone()) else { return Vec::new() };
        if !s.state().is_alive() {
            return Vec::new();
        }
        match s.call(op::GET_CHILDREN, Request::GetChildren { path: s.server_path(dir), watch: false }) {
            Ok((h, body)) if h.err == 0 => match commands::decode(op::GET_CHILDREN, &body) {
                Ok(Response::Children(c)) => c,
                _ => Vec::new(),
            },
            _ => Vec::new(),
        }
    }
}

/// Every name `usage()` lists, sorted: what a first word completes to.
fn command_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = commands::COMMANDS.iter().filter(|c| c.listed).map(|c| c.name).collect();
    names.extend(commands::BUILTINS.iter().map(|(n, _)| *n));
    names.sort();
    names
}

/// `JLineZNodeCompleter.complete`: the last space-separated token of the text before the
/// cursor is a znode path when it starts with `/`, else a command name. Returns the start of
/// the replaced text and the candidates.
fn complete_with(buffer: &str, children: &dyn Fn(&str) -> Vec<String>) -> (usize, Vec<String>) {
    let token = if buffer.ends_with(' ') { "" } else { buffer.rsplit(' ').next().unwrap_or("") };
    if token.starts_with('/') {
        let idx = token.rfind('/').map_or(0, |i| i + 1);
        let prefix = &token[idx..];
        let dir = if idx == 1 { "/" } else { &token[..idx - 1] };
        let mut found: Vec<String> = children(dir).into_iter().filter(|c| c.starts_with(prefix)).collect();
        found.sort();
        let start = if found.is_empty() { buffer.len() } else { buffer.rfind('/').map_or(0, |i| i + 1) };
        return (start, found);
    }
    let found = command_names().into_iter().filter(|c| c.starts_with(token)).map(String::from).collect();
    (buffer.rfind(' ').map_or(0, |i| i + 1), found)
}

impl Completer for ZkHelper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, found) = complete_with(&line[..pos], &|dir| self.children(dir));
        Ok((start, found.into_iter().map(|c| Pair { display: c.clone(), replacement: c }).collect()))
    }
}

impl Hinter for ZkHelper {
    type Hint = String;
}
impl Highlighter for ZkHelper {}
impl Validator for ZkHelper {}
impl Helper for ZkHelper {}

/// The interactive loop on a terminal: `[zk: host(STATE) n] ` prompts until end of input.
pub fn run(shell: &mut Shell) {
    let config = Config::builder()
        .completion_type(CompletionType::List)
        .auto_add_history(false)
        // No cursor-position query: it would stall terminals (and tests) that never answer.
        .check_cursor_position(false)
        .build();
    let mut editor: Editor<ZkHelper, rustyline::history::DefaultHistory> = match Editor::with_config(config) {
        Ok(e) => e,
        Err(_) => return super::read_lines(shell),
    };
    editor.set_helper(Some(ZkHelper { session: shell.completer_session.clone() }));
    if let Ok(p) = editor.create_external_printer() {
        shell.printer.use_editor(p);
    }
    loop {
        let prompt = format!("[zk: {}({}) {}] ", shell.host, shell.state().name(), shell.command_count);
        match editor.readline(&prompt) {
            Ok(line) => {
                if !line.is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                shell.execute_line(&line);
            }
            // Ctrl-C ends zkCli (SIGINT kills its JVM); 130 is what a shell reports for that.
            Err(ReadlineError::Interrupted) => {
                if let Some(s) = &shell.session {
                    s.abandon();
                }
                std::process::exit(130);
            }
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_words_complete_to_commands() {
        let (start, found) = complete_with("getE", &|_| Vec::new());
        assert_eq!((start, found), (0, vec!["getEphemerals".to_string()]));
        let (_, found) = complete_with("", &|_| Vec::new());
        assert!(found.len() > 25);
    }

    #[test]
    fn paths_complete_to_children() {
        let kids = |dir: &str| match dir {
            "/" => vec!["zookeeper".to_string(), "alpha".to_string(), "apple".to_string()],
            "/alpha" => vec!["one".to_string()],
            _ => Vec::new(),
        };
        assert_eq!(complete_with("ls /a", &kids), (4, vec!["alpha".to_string(), "apple".to_string()]));
        assert_eq!(complete_with("ls /alpha/", &kids), (10, vec!["one".to_string()]));
        assert_eq!(complete_with("ls /x", &kids), (5, Vec::new()));
    }
}
