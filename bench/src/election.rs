//! `paddock bench election`: against a running ensemble (Paddock or Apache ZooKeeper), repeated
//! trials of: find the leader with `srvr`, kill it with the command given, and time how long
//! until another server leads and until a write succeeds; then restart it and wait for the
//! ensemble to be whole again. Prints each trial and the medians.

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use node::proto::{op, Request};

use crate::client::{four_letter, Client};

/// Options of `paddock bench election`.
#[derive(Debug, Clone, clap::Args)]
pub struct ElectionArgs {
    /// Client addresses of the members, in server id order (host:port[,host:port...]).
    #[arg(long, value_delimiter = ',', required = true)]
    pub servers: Vec<String>,
    /// Shell command that SIGKILLs member {id} (its 1-based position in --servers).
    #[arg(long)]
    pub kill_cmd: String,
    /// Shell command that starts member {id} again.
    #[arg(long)]
    pub restart_cmd: String,
    /// Trials to run.
    #[arg(long, default_value_t = 5)]
    pub trials: usize,
    /// Seconds to wait for the ensemble to be whole, and for a write, per trial.
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The `Mode:` line of `srvr`: leader, follower, observer, standalone; None when not serving.
pub(crate) fn mode(addr: &str) -> Option<String> {
    let text = four_letter(addr, "srvr").ok()?;
    text.lines().find_map(|l| l.strip_prefix("Mode: ")).map(|m| m.trim().to_string())
}

fn shell(template: &str, id: usize) -> bool {
    let cmd = template.replace("{id}", &id.to_string());
    Command::new("sh").arg("-c").arg(&cmd).status().is_ok_and(|s| s.success())
}

/// Waits until every member serves and exactly one leads; returns the leader's id.
fn whole(servers: &[String], deadline: Instant) -> Option<usize> {
    while Instant::now() < deadline {
        let modes: Vec<Option<String>> = servers.iter().map(|s| mode(s)).collect();
        let leaders: Vec<usize> = (0..servers.len()).filter(|&i| modes[i].as_deref() == Some("leader")).collect();
        if modes.iter().all(Option::is_some) && leaders.len() == 1 {
            return Some(leaders[0] + 1);
        }
        std::thread::sleep(Duration::from_millis(20)); // polling interval; the deadline bounds it
    }
    None
}

/// One write through any live member other than `dead`, with short timeouts.
fn try_write(servers: &[String], dead: usize, path: &str) -> bool {
    servers.iter().enumerate().filter(|(i, _)| i + 1 != dead).any(|(_, s)| {
        let Ok(mut c) = Client::connect(s.as_str(), 4000) else { return false };
        let req = Request::Create {
            path: path.to_string(),
            data: Vec::new(),
            acl: engine::acl::open_acl_unsafe(),
            flags: 0,
            ttl: -1,
        };
        let ok = c.call(op::CREATE, req).is_ok_and(|r| r.err() == 0 || r.err() == engine::code::NODE_EXISTS);
        let _ = c.call(op::CLOSE_SESSION, Request::CloseSession);
        ok
    })
}

fn median(v: &mut [u128]) -> u128 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// Runs the trials.
pub fn main(args: &ElectionArgs) -> ExitCode {
    let timeout = Duration::from_secs_f64(args.timeout);
    let (mut to_leader, mut to_write) = (Vec::new(), Vec::new());
    for trial in 1..=args.trials {
        let Some(leader) = whole(&args.servers, Instant::now() + timeout) else {
            eprintln!("paddock bench election: the ensemble is not whole (every member serving, one leader)");
            return ExitCode::from(1);
        };
        let killed_at = Instant::now();
        if !shell(&args.kill_cmd, leader) {
            eprintln!("paddock bench election: kill command failed for member {leader}");
            return ExitCode::from(1);
        }
        let deadline = killed_at + timeout;
        let mut leader_ms = None;
        let mut write_ms = None;
        let mut n = 0;
        while Instant::now() < deadline && (leader_ms.is_none() || write_ms.is_none()) {
            if write_ms.is_none() {
                n += 1;
                if try_write(&args.servers, leader, &format!("/paddock-bench-election-{trial}-{n}")) {
                    write_ms = Some(killed_at.elapsed().as_millis());
                }
            }
            if leader_ms.is_none() {
                let new_leader = args
                    .servers
                    .iter()
                    .enumerate()
                    .any(|(i, s)| i + 1 != leader && mode(s).as_deref() == Some("leader"));
                if new_leader {
                    leader_ms = Some(killed_at.elapsed().as_millis());
                }
            }
        }
        let (Some(l), Some(w)) = (leader_ms, write_ms) else {
            eprintln!("paddock bench election: trial {trial}: no new leader or no write within {:?}", timeout);
            return ExitCode::from(1);
        };
        // A leader seen only after the write was timed is no later than the write.
        let l = l.min(w);
        println!("trial {trial}: killed member {leader}; new leader after {l} ms, first write after {w} ms");
        to_leader.push(l);
        to_write.push(w);
        if !shell(&args.restart_cmd, leader) {
            eprintln!("paddock bench election: restart command failed for member {leader}");
            return ExitCode::from(1);
        }
    }
    let (l, w) = (median(&mut to_leader), median(&mut to_write));
    if args.json {
        println!(
            "{{\"trials\":{},\"median_new_leader_ms\":{l},\"median_first_write_ms\":{w},\"new_leader_ms\":{:?},\"first_write_ms\":{:?}}}",
            args.trials, to_leader, to_write
        );
    } else {
        println!("median of {} trials: new leader after {l} ms, first write after {w} ms", args.trials);
    }
    ExitCode::SUCCESS
}
