//! `paddock bench ready`: waits until a server answers a client request, for timing a restart
//! from the outside the same way for Paddock and Apache ZooKeeper (a listening port or `ruok`
//! can answer before the tree is loaded; a session and a read cannot).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use node::proto::{op, Request};

use crate::client::Client;

/// Options of `paddock bench ready`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReadyArgs {
    /// The server's client address (host:port).
    #[arg(long)]
    pub server: String,
    /// Seconds to keep trying before giving up (exit 1).
    #[arg(long, default_value_t = 120.0)]
    pub timeout: f64,
}

/// Whether `server` opens a session and answers `exists /`.
pub(crate) fn answers(server: &str) -> bool {
    let Ok(mut c) = Client::connect(server, 4000) else { return false };
    c.call(op::EXISTS, Request::Exists { path: "/".into(), watch: false }).is_ok_and(|r| r.err() == 0)
}

/// `paddock bench ready` as a command: prints the ms it waited.
pub fn main(args: &ReadyArgs) -> ExitCode {
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.timeout.clamp(0.0, 3600.0));
    while Instant::now() < deadline {
        if answers(&args.server) {
            println!("{}", start.elapsed().as_millis());
            return ExitCode::SUCCESS;
        }
        std::thread::sleep(Duration::from_millis(5)); // polling interval; the deadline bounds it
    }
    eprintln!("paddock bench ready: {} did not answer within {} s", args.server, args.timeout);
    ExitCode::from(1)
}
