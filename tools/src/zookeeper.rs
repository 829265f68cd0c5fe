//! `paddock import zookeeper` and `paddock export zookeeper`: moving a tree between Apache
//! ZooKeeper's files (`version-2/`) and Paddock's (engine/FORMAT.md), with the last zxid kept.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use engine::snapshot::{snapshot_name, SnapshotWriter};
use engine::zookeeper::{self, VERSION_DIR};
use node::config::Config;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Files in `dir` whose names start with one of `prefixes`.
fn files_with(dir: &Path, prefixes: &[&str]) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            prefixes.iter().any(|p| name.starts_with(p))
        })
        .map(|e| e.path())
        .collect()
}

/// Writes `bytes` to `dir/name` through a synced temp file and a rename, then syncs `dir`.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{name}.tmp"));
    let target = dir.join(name);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &target)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(target)
}

/// `paddock import zookeeper`: ZooKeeper's newest valid snapshot plus its logs, replayed, as a
/// Paddock snapshot in the config's dataDir.
pub fn import(cfg: &Config, zk_data_dir: &Path, zk_log_dir: Option<&Path>) -> ExitCode {
    let dirs = engine_dirs(cfg);
    let existing: Vec<PathBuf> =
        files_with(&dirs.0, &["snapshot."]).into_iter().chain(files_with(&dirs.1, &["log."])).collect();
    if !existing.is_empty() {
        eprintln!(
            "paddock: refusing to import: the target dataDir already holds Paddock data ({}); import into an empty dataDir",
            existing[0].display()
        );
        return ExitCode::from(1);
    }
    for dir in std::iter::once(zk_data_dir).chain(zk_log_dir) {
        if dir.file_name().is_some_and(|n| n == VERSION_DIR) && !dir.join(VERSION_DIR).is_dir() {
            eprintln!(
                "paddock: {} is ZooKeeper's {VERSION_DIR} itself: pass its parent (ZooKeeper's dataDir or dataLogDir)",
                dir.display()
            );
            return ExitCode::from(2);
        }
    }
    let snap_dir = zk_data_dir.join(VERSION_DIR);
    let log_dir = zk_log_dir.unwrap_or(zk_data_dir).join(VERSION_DIR);
    let started = std::time::Instant::now();
    let imported = match zookeeper::import(&snap_dir, &log_dir) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("paddock: import failed: {e}");
            return ExitCode::from(1);
        }
    };
    for w in &imported.warnings {
        eprintln!("paddock: warning: {w}");
    }
    let tree = &imported.tree;
    let bytes = SnapshotWriter::whole(tree, now_ms());
    match write_atomically(&dirs.0, &snapshot_name(tree.last_zxid()), &bytes) {
        Ok(path) => {
            println!(
                "imported {} znodes, {} sessions, last zxid {:#x} ({}{} txns replayed) into {} in {} ms",
                tree.node_count(),
                tree.sessions().len(),
                tree.last_zxid(),
                imported.snapshot.as_ref().map_or(String::new(), |s| format!("snapshot {} + ", s.display())),
                imported.replayed,
                path.display(),
                started.elapsed().as_millis()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("paddock: cannot write the snapshot into {}: {e}", dirs.0.display());
            ExitCode::from(1)
        }
    }
}

/// Paddock's snapshot and log directories for a config (as `node::persist::Dirs`, uncreated).
fn engine_dirs(cfg: &Config) -> (PathBuf, PathBuf) {
    let snapshots = cfg.data_dir.join(engine::recovery::ENGINE_DIR);
    let log = cfg.data_log_dir.as_ref().unwrap_or(&cfg.data_dir).join(engine::recovery::ENGINE_DIR);
    (snapshots, log)
}

/// `paddock export zookeeper`: the tree Paddock would start with, as `OUT/version-2/snapshot.<zxid>`
/// that ZooKeeper starts from. The server must be stopped: this reads its files as recovery does.
pub fn export(cfg: &Config, out: &Path) -> ExitCode {
    let target = out.join(VERSION_DIR);
    if let Some(f) = files_with(&target, &["snapshot.", "log."]).first() {
        eprintln!("paddock: refusing to export: {} already holds ZooKeeper data ({})", target.display(), f.display());
        return ExitCode::from(1);
    }
    let (snaps, logs) = engine_dirs(cfg);
    let started = std::time::Instant::now();
    let recovered = match engine::recovery::recover(&snaps, &logs) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("paddock: cannot read Paddock's data: {e}");
            return ExitCode::from(1);
        }
    };
    let tree = &recovered.tree;
    let read_ms = started.elapsed().as_millis();
    let bytes = zookeeper::encode_snapshot(tree);
    let encoded_ms = started.elapsed().as_millis();
    tracing::info!(read_ms, encode_ms = encoded_ms - read_ms, bytes = bytes.len(), "encoded the ZooKeeper snapshot");
    match write_atomically(&target, &zookeeper::snapshot_name(tree.last_zxid()), &bytes) {
        Ok(path) => {
            println!(
                "exported {} znodes, {} sessions, last zxid {:#x} to {} in {} ms",
                tree.node_count(),
                tree.sessions().len(),
                tree.last_zxid(),
                path.display(),
                started.elapsed().as_millis()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("paddock: cannot write {}: {e}", target.display());
            ExitCode::from(1)
        }
    }
}
