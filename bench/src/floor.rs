//! `paddock bench floor`: the physical floor under a replicated write on this machine, to
//! report commit latency against: one fdatasync of an overwrite into an already written,
//! preallocated log file, plus two loopback round trips (client to leader, leader to follower).

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Bytes written before each fdatasync: one block, as a single small txn costs the log.
const WRITE_BYTES: usize = 4096;
/// Bytes of a round-trip message: about a small request frame.
const MESSAGE_BYTES: usize = 64;

/// Options of `paddock bench floor`.
#[derive(Debug, Clone, clap::Args)]
pub struct FloorArgs {
    /// Directory for the scratch log file: the filesystem the servers' dataLogDir is on.
    #[arg(long, default_value = "/tmp")]
    pub dir: PathBuf,
    /// Samples of each measurement.
    #[arg(long, default_value_t = 1000)]
    pub samples: usize,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Median and 99th percentile of samples in ms.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    pub p50_ms: f64,
    pub p99_ms: f64,
}

fn spread(mut samples_ms: Vec<f64>) -> Spread {
    samples_ms.sort_by(f64::total_cmp);
    let at = |q: f64| samples_ms.get(((samples_ms.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0);
    Spread { p50_ms: at(0.5), p99_ms: at(0.99) }
}

/// fdatasync after overwriting one block of a file whose blocks were all written and synced
/// first, so that no sync extends the file or fills a hole (a preallocated, pre-zeroed segment).
pub fn fdatasync_overwrite(dir: &std::path::Path, samples: usize) -> std::io::Result<Spread> {
    let path = dir.join(format!("paddock-floor-{}.log", std::process::id()));
    let result = (|| {
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
        let zeros = vec![0u8; WRITE_BYTES];
        for i in 0..samples {
            file.write_at(&zeros, (i * WRITE_BYTES) as u64)?;
        }
        file.sync_all()?;
        let block = vec![0x5au8; WRITE_BYTES];
        let mut times = Vec::with_capacity(samples);
        for i in 0..samples {
            let t = Instant::now();
            file.write_at(&block, (i * WRITE_BYTES) as u64)?;
            file.sync_data()?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        Ok(spread(times))
    })();
    let _ = std::fs::remove_file(&path);
    result
}

/// Pins the calling thread to one CPU; false when that is not possible.
fn pin_to(cpu: usize) -> bool {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET writes inside it; pid 0 is this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// Round trips of a small message over a loopback TCP connection with Nagle off, the two ends
/// on different CPUs when there are two: as between two server processes, each wake-up crosses
/// CPUs (which on a virtual machine costs far more than the copy; on one CPU it is ≈ 5 µs).
pub fn loopback_round_trip(samples: usize) -> std::io::Result<Spread> {
    let two_cpus = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        if two_cpus {
            pin_to(1);
        }
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut buf = [0u8; MESSAGE_BYTES];
        loop {
            match s.read_exact(&mut buf) {
                Ok(()) => s.write_all(&buf)?,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    });
    let ping = std::thread::spawn(move || -> std::io::Result<Spread> {
        if two_cpus {
            pin_to(0);
        }
        let mut s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        let mut buf = [7u8; MESSAGE_BYTES];
        let mut times = Vec::with_capacity(samples);
        for _ in 0..samples {
            let t = Instant::now();
            s.write_all(&buf)?;
            s.read_exact(&mut buf)?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        Ok(spread(times))
    });
    let result = ping.join().map_err(|_| std::io::Error::other("ping thread panicked"))?;
    echo.join().map_err(|_| std::io::Error::other("echo thread panicked"))??;
    result
}

/// `paddock bench floor` as a command.
pub fn main(args: &FloorArgs) -> ExitCode {
    let samples = args.samples.clamp(10, 1_000_000);
    let measured = fdatasync_overwrite(&args.dir, samples).and_then(|f| Ok((f, loopback_round_trip(samples)?)));
    let (fsync, rtt) = match measured {
        Ok(m) => m,
        Err(e) => {
            eprintln!("paddock bench floor: {e}");
            return ExitCode::from(1);
        }
    };
    let floor_ms = fsync.p50_ms + 2.0 * rtt.p50_ms;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "samples": samples,
                "dir": args.dir,
                "fdatasync_ms": {"p50": fsync.p50_ms, "p99": fsync.p99_ms},
                "loopback_rtt_ms": {"p50": rtt.p50_ms, "p99": rtt.p99_ms},
                "commit_floor_ms": floor_ms,
            })
        );
    } else {
        println!(
            "fdatasync of a {WRITE_BYTES}-byte overwrite in {}: p50 {:.3} ms, p99 {:.3} ms",
            args.dir.display(),
            fsync.p50_ms,
            fsync.p99_ms
        );
        println!("loopback TCP round trip ({MESSAGE_BYTES} bytes): p50 {:.3} ms, p99 {:.3} ms", rtt.p50_ms, rtt.p99_ms);
        println!("commit floor (fdatasync + 2 round trips, medians): {floor_ms:.3} ms");
    }
    ExitCode::SUCCESS
}
