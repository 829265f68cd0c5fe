//! Where the engine's files live and how a snapshot is written from core 0 without stopping it.

use std::path::{Path, PathBuf};

use engine::snapshot::{self, SnapshotWriter};
use futures_lite::AsyncWriteExt;
use glommio::io::{DmaFile, DmaStreamWriter, DmaStreamWriterBuilder};

use crate::config::Config;

/// The engine's directories: snapshots under dataDir, the log under dataLogDir.
#[derive(Debug, Clone)]
pub struct Dirs {
    pub snapshots: PathBuf,
    pub log: PathBuf,
}

impl Dirs {
    /// The directories a config names, created if missing, as absolute paths: glommio's
    /// io_uring opens (of the log directory, to sync it) fail on relative ones, such as the
    /// embedded default's `./data`.
    pub fn create(config: &Config) -> std::io::Result<Dirs> {
        let snapshots = config.data_dir.join(engine::recovery::ENGINE_DIR);
        let log = config.data_log_dir.as_ref().unwrap_or(&config.data_dir).join(engine::recovery::ENGINE_DIR);
        std::fs::create_dir_all(&snapshots)?;
        std::fs::create_dir_all(&log)?;
        Ok(Dirs { snapshots: std::fs::canonicalize(snapshots)?, log: std::fs::canonicalize(log)? })
    }
}

/// The secret session passwords derive from: kept in dataDir so sessions survive a restart.
pub fn load_or_create_secret(dirs: &Dirs) -> std::io::Result<u64> {
    let path = dirs.snapshots.join("secret");
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Ok(v) = u64::from_str_radix(text.trim(), 16) {
            return Ok(v);
        }
    }
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))?;
    let v = u64::from_be_bytes(bytes);
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{v:016x}\n"))?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(v)
}

/// Bytes a snapshot accumulates before they are handed to the disk.
const FLUSH_BYTES: usize = 1 << 20;

/// A snapshot being written: entries are added between other work, flushed in 1 MiB pieces.
pub struct SnapshotJob {
    pub writer: SnapshotWriter,
    stream: DmaStreamWriter,
    tmp: PathBuf,
    done: PathBuf,
}

impl SnapshotJob {
    /// Opens `snapshot.<zxid>.tmp`; it becomes `snapshot.<zxid>` only once complete and synced.
    pub async fn start(dir: &Path, zxid: i64, time_ms: i64) -> std::io::Result<SnapshotJob> {
        let done = dir.join(snapshot::snapshot_name(zxid));
        let tmp = done.with_extension("tmp");
        let file = DmaFile::create(&tmp).await.map_err(|e| std::io::Error::other(e.to_string()))?;
        let stream = DmaStreamWriterBuilder::new(file).with_buffer_size(FLUSH_BYTES).build();
        Ok(SnapshotJob { writer: SnapshotWriter::new(zxid, time_ms), stream, tmp, done })
    }

    /// Writes what has accumulated once there is enough of it.
    pub async fn flush_some(&mut self) -> std::io::Result<()> {
        if self.writer.pending_bytes() >= FLUSH_BYTES {
            let chunk = self.writer.take();
            self.stream.write_all(&chunk).await?;
        }
        Ok(())
    }

    /// Writes the rest and the trailer, syncs, and renames the file into place.
    pub async fn finish(mut self) -> std::io::Result<PathBuf> {
        let mut rest = self.writer.take();
        rest.extend(self.writer.finish());
        self.stream.write_all(&rest).await?;
        self.stream.close().await?;
        let (tmp, done) = (self.tmp, self.done);
        // The close truncated the padding away: sync that, then publish with a rename.
        glommio::executor()
            .spawn_blocking(move || -> std::io::Result<PathBuf> {
                std::fs::File::open(&tmp)?.sync_all()?;
                std::fs::rename(&tmp, &done)?;
                if let Some(dir) = done.parent() {
                    std::fs::File::open(dir)?.sync_all()?;
                }
                Ok(done)
            })
            .await
    }
}

/// Removes snapshots a crash left half-written.
pub fn remove_partial_snapshots(dirs: &Dirs) {
    if let Ok(entries) = std::fs::read_dir(&dirs.snapshots) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().ends_with(".tmp") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}
