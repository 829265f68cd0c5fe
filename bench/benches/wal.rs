//! The durable log's append + commit (write at a block boundary, then fdatasync) through
//! `engine::wal::Wal` on glommio's io_uring, at the group-commit batch sizes a server sees from
//! one client to hundreds. Criterion's time per iteration is the latency of one batch; its
//! throughput line is records/s. Needs a real filesystem: /tmp must not be tmpfs, which ignores
//! O_DIRECT and fsync and would report memory speed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use engine::wal::{Wal, WalSettings};
use glommio::{LocalExecutorBuilder, Placement};

mod common;

/// Records per append: one client, a few, many, and a saturated server.
const BATCH_SIZES: [usize; 4] = [1, 8, 64, 512];
/// Segment size: small enough to pre-zero quickly per sample, large enough that rolls (which
/// happen, pre-zeroed in the background, as in the server) are rare.
const SEGMENT_BYTES: usize = 8 << 20;
/// DMA memory of the executor, as the server's runtime gives each core.
const IO_MEMORY_BYTES: usize = 1 << 20;
/// Linux's statfs magic of tmpfs.
const TMPFS_MAGIC: i64 = 0x0102_1994;

static RUN: AtomicU64 = AtomicU64::new(0);

fn is_tmpfs(dir: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs writes into the zeroed struct we own; the path is a valid C string.
    unsafe {
        let mut s: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut s) == 0 && s.f_type as i64 == TMPFS_MAGIC
    }
}

fn fresh_dir() -> PathBuf {
    let n = RUN.fetch_add(1, Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("paddock-bench-wal-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create a temp dir for the log");
    d
}

/// Opens a fresh log in its own executor and times `iters` appends of `batch`.
fn appends(batch: &[u8], records: usize, iters: u64) -> Duration {
    let dir = fresh_dir();
    let settings =
        WalSettings { dir: dir.clone(), segment_bytes: SEGMENT_BYTES, force_sync: true, fsync_delay: Duration::ZERO };
    let batch = batch.to_vec();
    let timed = LocalExecutorBuilder::new(Placement::Unbound)
        .name("bench-wal")
        .io_memory(IO_MEMORY_BYTES)
        .spawn(move || async move {
            let mut wal = Wal::open(settings, None, 1).await.map_err(|e| e.to_string())?;
            // One untimed append first: it waits for the first segment to be ready, which a
            // server does once at start-up, not per commit.
            wal.append(&batch, 1).await.map_err(|e| e.to_string())?;
            let start = Instant::now();
            for i in 1..=iters {
                wal.append(&batch, 1 + (i * records as u64) as i64).await.map_err(|e| e.to_string())?;
            }
            Ok::<Duration, String>(start.elapsed())
        })
        .expect("start a glommio executor (is `ulimit -l` large enough?)")
        .join()
        .expect("the executor thread");
    let _ = std::fs::remove_dir_all(&dir);
    timed.expect("log appends")
}

fn wal(c: &mut Criterion) {
    let tmp = std::env::temp_dir();
    if is_tmpfs(&tmp) {
        eprintln!("warning: {} is tmpfs: fdatasync is free there, these numbers are not disk numbers", tmp.display());
    }
    let mut g = c.benchmark_group("wal/append+fdatasync");
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(4));
    for records in BATCH_SIZES {
        let batch = common::batch(1, records);
        g.throughput(Throughput::Elements(records as u64));
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{records}x{}B", common::RECORD_BYTES)),
            &batch,
            |b, batch| b.iter_custom(|iters| appends(batch, records, iters)),
        );
    }
    g.finish();
}

criterion_group!(benches, wal);
criterion_main!(benches);
