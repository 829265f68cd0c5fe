//! `paddock`: the server and its tools in one binary.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use node::config::{Config, DEFAULT_CONFIG};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;
mod dump;
mod status;
mod zookeeper;

/// A ZooKeeper-compatible coordination service.
#[derive(Parser)]
#[command(name = "paddock", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a server from a zoo.cfg (or the embedded default: 127.0.0.1:2181, data in ./data).
    Server {
        /// Executors (cores) to run; default: the `cores` key, else every core.
        #[arg(long)]
        cores: Option<usize>,
        /// Path to zoo.cfg.
        config: Option<String>,
    },
    /// Print the server's mode, like `zkServer.sh status`; exit 1 if it does not answer.
    Status {
        /// Path to zoo.cfg (default: the embedded default's address).
        config: Option<String>,
    },
    /// A zkCli.sh-compatible shell: `paddock cli [-server host:port[,...][/chroot]] [-timeout ms]
    /// [command args...]`; interactive without a command.
    #[command(disable_help_flag = true)]
    Cli {
        /// zkCli's own arguments, passed through as zkCli reads them.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Transaction log tools (like zkTxnLogToolkit).
    Log {
        #[command(subcommand)]
        command: DumpCommand,
    },
    /// Snapshot tools (like zkSnapShotToolkit).
    Snap {
        #[command(subcommand)]
        command: DumpCommand,
    },
    /// Load generation and measurement against any ZooKeeper-protocol server.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Bring another server's data into Paddock's dataDir.
    Import {
        #[command(subcommand)]
        command: ImportCommand,
    },
    /// Write Paddock's data in another server's format.
    Export {
        #[command(subcommand)]
        command: ExportCommand,
    },
    /// Delete old snapshots and the logs only they need (like zkCleanup.sh).
    Purge {
        /// Snapshots to keep (at least 3).
        #[arg(short = 'n', long, default_value_t = 3)]
        count: usize,
        /// Path to zoo.cfg.
        config: Option<String>,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Drive servers with pipelined sessions; report throughput and latency percentiles.
    Load(bench::load::LoadArgs),
    /// Kill the leader of a running ensemble, repeatedly; time the new leader and first write.
    Election(bench::election::ElectionArgs),
    /// Measure the commit floor here: fdatasync of a preallocated log plus loopback round trips.
    Floor(bench::floor::FloorArgs),
    /// Wait until a server answers a session and a read; print the ms waited (restart timing).
    Ready(bench::ready::ReadyArgs),
    /// Render PERF.md's charts (latency by percentile from .hgrm files, grouped bars) to SVG.
    Plot(bench::plot::PlotArgs),
    /// Predict throughput and p99 of a topology from per-op costs calibrated on this machine.
    Plan(bench::plan::PlanArgs),
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Apache ZooKeeper 3.4-3.9: the newest valid snapshot plus the logs after it, replayed, as a
    /// Paddock snapshot in the config's dataDir (which must hold no data yet).
    Zookeeper {
        /// ZooKeeper's dataDir (the parent of its version-2/).
        #[arg(long)]
        data_dir: std::path::PathBuf,
        /// ZooKeeper's dataLogDir, if it differs from dataDir.
        #[arg(long)]
        log_dir: Option<std::path::PathBuf>,
        /// Path to Paddock's zoo.cfg (its dataDir receives the snapshot).
        config: Option<String>,
    },
}

#[derive(Subcommand)]
enum ExportCommand {
    /// Apache ZooKeeper 3.8: OUT/version-2/snapshot.<zxid>, from a stopped Paddock's data.
    Zookeeper {
        /// Path to Paddock's zoo.cfg.
        config: Option<String>,
        /// The directory to use as ZooKeeper's dataDir.
        #[arg(long)]
        out: std::path::PathBuf,
    },
}

#[derive(Subcommand)]
enum DumpCommand {
    /// Print a file's contents.
    Dump {
        /// The log segment or snapshot file.
        file: std::path::PathBuf,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn load(config: Option<&str>) -> Result<Config, String> {
    match config {
        Some(p) => Config::load(p).map_err(|e| e.to_string()),
        None => Config::parse(DEFAULT_CONFIG).map_err(|e| e.to_string()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Server { .. }) {
        // Tools die quietly when their reader goes (`| head`), as Unix tools do. The server keeps
        // ignoring SIGPIPE: a client closing its socket must never stop it.
        // SAFETY: setting a signal disposition before any thread starts.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env("PADDOCK_LOG").unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    match cli.command {
        Command::Server { cores, config } => {
            let cfg = match load(config.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("paddock: {e}");
                    return ExitCode::from(2);
                }
            };
            // ZooKeeper creates its data directories at start-up; so does Paddock.
            for dir in std::iter::once(&cfg.data_dir).chain(cfg.data_log_dir.as_ref()) {
                if let Err(e) = std::fs::create_dir_all(dir) {
                    eprintln!("paddock: cannot create {}: {e}", dir.display());
                    return ExitCode::from(2);
                }
            }
            let all = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            let cores = cores.or(cfg.cores).unwrap_or(all);
            match node::runtime::run(cfg, cores) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("paddock: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Cli { args } => cli::run(&args),
        Command::Bench { command: BenchCommand::Load(args) } => bench::load::main(&args),
        Command::Bench { command: BenchCommand::Election(args) } => bench::election::main(&args),
        Command::Bench { command: BenchCommand::Plot(args) } => bench::plot::main(&args),
        Command::Bench { command: BenchCommand::Floor(args) } => bench::floor::main(&args),
        Command::Bench { command: BenchCommand::Ready(args) } => bench::ready::main(&args),
        Command::Bench { command: BenchCommand::Plan(args) } => bench::plan::main(&args),
        Command::Log { command: DumpCommand::Dump { file, json } } => dump::log_dump(&file, json),
        Command::Snap { command: DumpCommand::Dump { file, json } } => dump::snap_dump(&file, json),
        Command::Purge { count, config } => match load(config.as_deref()) {
            Ok(cfg) => dump::purge(&cfg, count),
            Err(e) => {
                eprintln!("paddock: {e}");
                ExitCode::from(2)
            }
        },
        Command::Import { command: ImportCommand::Zookeeper { data_dir, log_dir, config } } => {
            match load(config.as_deref()) {
                Ok(cfg) => zookeeper::import(&cfg, &data_dir, log_dir.as_deref()),
                Err(e) => {
                    eprintln!("paddock: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Export { command: ExportCommand::Zookeeper { config, out } } => match load(config.as_deref()) {
            Ok(cfg) => zookeeper::export(&cfg, &out),
            Err(e) => {
                eprintln!("paddock: {e}");
                ExitCode::from(2)
            }
        },
        Command::Status { config } => match load(config.as_deref()) {
            Ok(cfg) => status::run(&cfg),
            Err(e) => {
                eprintln!("paddock: {e}");
                ExitCode::from(2)
            }
        },
    }
}
