//! Start-up recovery (engine/FORMAT.md): the newest snapshot that checks out, then every log
//! record after its zxid. A torn tail is what a crash mid-write leaves: it is zeroed, with a
//! WARN naming file, offset and the last good zxid. A damaged record with valid ones after it is
//! corruption of acknowledged history: recovery stops, names file and offset, deletes nothing.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::codec::decode_txn;
use crate::log::{self, LogEnd};
use crate::snapshot;
use crate::tree::DataTree;

/// The directories the engine keeps its files in, below dataDir and dataLogDir.
pub const ENGINE_DIR: &str = "paddock";

/// Where the next log append goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTail {
    pub path: PathBuf,
    pub first_zxid: i64,
    pub append_at: usize,
    pub file_bytes: usize,
}

/// A recovered tree and where its files stand.
pub struct Recovered {
    pub tree: DataTree,
    pub snapshot_zxid: Option<i64>,
    pub log_tail: Option<LogTail>,
    /// Txns replayed from the log.
    pub replayed: usize,
}

/// Why the server must not start.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("corrupt transaction log {path} at offset {offset}: a damaged record is followed by valid ones; acknowledged history may be lost, refusing to start (nothing was deleted)")]
    Corrupt { path: String, offset: usize },
    #[error("transaction log {path}: {why}")]
    BadSegment { path: String, why: String },
    #[error("transaction log is missing txns after zxid {after:#x} (next found: {found:#x}); refusing to start")]
    Gap { after: i64, found: i64 },
    #[error("every snapshot is damaged ({0}) and the log does not reach back to the first txn; refusing to start with an empty tree")]
    NoUsableSnapshot(String),
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> RecoveryError + '_ {
    move |source| RecoveryError::Io { path: path.display().to_string(), source }
}

/// Recovers from `snap_dir` (snapshots) and `log_dir` (segments); both are the engine's own
/// directories. A torn tail is repaired in place; nothing else is written.
pub fn recover(snap_dir: &Path, log_dir: &Path) -> Result<Recovered, RecoveryError> {
    let snapshots = snapshot::list_snapshots(snap_dir).map_err(io_err(snap_dir))?;
    let segments = log::list_segments(log_dir).map_err(io_err(log_dir))?;
    let mut tree = None;
    let mut damaged = Vec::new();
    for (zxid, path) in &snapshots {
        match snapshot::load_tree(path) {
            Ok((t, z)) => {
                tracing::info!(snapshot = %path.display(), zxid = format!("{zxid:#x}"), nodes = t.node_count(), "loaded snapshot");
                tree = Some((t, Some(z)));
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, "skipping damaged snapshot, trying an older one");
                damaged.push(e.to_string());
            }
        }
    }
    let (mut tree, snapshot_zxid) = match tree {
        Some(t) => t,
        None => {
            let reaches_start = segments.first().is_none_or(|(first, _)| *first <= 1);
            if !damaged.is_empty() && !reaches_start {
                return Err(RecoveryError::NoUsableSnapshot(damaged.join("; ")));
            }
            (DataTree::new(), None)
        }
    };
    let from = tree.last_zxid();
    // The segment holding from+1 is the last one starting at or before it.
    let start = segments.iter().rposition(|(first, _)| *first <= from + 1).unwrap_or(0);
    let mut replayed = 0;
    let mut log_tail = None;
    let count = segments.len();
    for (i, (first, path)) in segments.iter().enumerate().skip(start) {
        let mut bytes = std::fs::read(path).map_err(io_err(path))?;
        let scan = log::scan(&bytes)
            .map_err(|e| RecoveryError::BadSegment { path: path.display().to_string(), why: e.to_string() })?;
        if scan.first_zxid != *first {
            let why = format!("header says first zxid {:#x}, name says {first:#x}", scan.first_zxid);
            return Err(RecoveryError::BadSegment { path: path.display().to_string(), why });
        }
        for r in &scan.records {
            if r.zxid <= tree.last_zxid() {
                continue;
            }
            if tree.last_zxid() >= from && r.zxid > tree.last_zxid() + 1 && (r.zxid >> 32) == (tree.last_zxid() >> 32) {
                return Err(RecoveryError::Gap { after: tree.last_zxid(), found: r.zxid });
            }
            let (hdr, txn) = decode_txn(&bytes[r.payload.clone()])
                .map_err(|_| RecoveryError::Corrupt { path: path.display().to_string(), offset: r.offset })?;
            tree.apply(&hdr, &txn);
            replayed += 1;
        }
        let append_at = match scan.end {
            LogEnd::Clean { append_at } => append_at,
            LogEnd::Corrupt { offset } => {
                return Err(RecoveryError::Corrupt { path: path.display().to_string(), offset })
            }
            LogEnd::Torn { offset, append_at } => {
                if i + 1 != count {
                    // A later segment exists, so this tail was acknowledged before the roll.
                    return Err(RecoveryError::Corrupt { path: path.display().to_string(), offset });
                }
                let end = log::torn_extent(&bytes, offset);
                tracing::warn!(
                    file = %path.display(),
                    offset,
                    last_good_zxid = format!("{:#x}", tree.last_zxid()),
                    garbage_bytes = end - offset,
                    "transaction log ends in a torn write (a crash mid-write); truncating it there"
                );
                bytes[offset..end].iter_mut().for_each(|b| *b = 0);
                let mut f = std::fs::OpenOptions::new().write(true).open(path).map_err(io_err(path))?;
                f.seek(SeekFrom::Start(offset as u64)).map_err(io_err(path))?;
                f.write_all(&bytes[offset..end]).map_err(io_err(path))?;
                f.sync_data().map_err(io_err(path))?;
                append_at
            }
        };
        log_tail = Some(LogTail { path: path.clone(), first_zxid: *first, append_at, file_bytes: bytes.len() });
    }
    if tree.last_zxid() < from {
        return Err(RecoveryError::Gap { after: from, found: tree.last_zxid() });
    }
    let pruned = tree.prune_orphans();
    if pruned > 0 {
        tracing::warn!(pruned, "removed nodes whose parent did not survive recovery");
    }
    Ok(Recovered { tree, snapshot_zxid, log_tail, replayed })
}

/// Cuts history back to `zxid`, as a learner told to TRUNC (or handed a snapshot at `zxid`)
/// must: snapshots newer than it are deleted, log records after it are zeroed in place and
/// later segments deleted, everything synced. The next `recover` then ends at `zxid` at most.
pub fn truncate_after(snap_dir: &Path, log_dir: &Path, zxid: i64) -> Result<(), RecoveryError> {
    for (z, path) in snapshot::list_snapshots(snap_dir).map_err(io_err(snap_dir))? {
        if z > zxid {
            std::fs::remove_file(&path).map_err(io_err(&path))?;
        }
    }
    for (first, path) in log::list_segments(log_dir).map_err(io_err(log_dir))? {
        if first > zxid {
            std::fs::remove_file(&path).map_err(io_err(&path))?;
            continue;
        }
        let bytes = std::fs::read(&path).map_err(io_err(&path))?;
        let scan = log::scan(&bytes)
            .map_err(|e| RecoveryError::BadSegment { path: path.display().to_string(), why: e.to_string() })?;
        let Some(cut) = scan.records.iter().find(|r| r.zxid > zxid) else { continue };
        let end = scan.records.last().map_or(cut.offset, |r| log::align_up(r.payload.end)).min(bytes.len());
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).map_err(io_err(&path))?;
        f.seek(SeekFrom::Start(cut.offset as u64)).map_err(io_err(&path))?;
        f.write_all(&vec![0u8; end - cut.offset]).map_err(io_err(&path))?;
        f.sync_data().map_err(io_err(&path))?;
    }
    for dir in [snap_dir, log_dir] {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl;
    use crate::codec::encode_txn;
    use crate::snapshot::SnapshotWriter;
    use crate::txn::{Txn, TxnHeader};

    struct Dirs(PathBuf);
    impl Drop for Dirs {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn dirs(tag: &str) -> Dirs {
        let d = std::env::temp_dir().join(format!("paddock-recovery-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("dir");
        Dirs(d)
    }

    fn txn(z: i64) -> (TxnHeader, Txn) {
        let hdr = TxnHeader { session_id: 1, cxid: z as i32, zxid: z, time_ms: z };
        let t = Txn::Create {
            path: format!("/n{z}"),
            data: vec![z as u8; 10],
            acl: acl::open_acl_unsafe(),
            ephemeral_owner: 0,
            parent_cversion: z as i32,
        };
        (hdr, t)
    }

    /// Writes a segment with one batch per listed range of zxids.
    fn write_segment(dir: &Path, first: i64, batches: &[std::ops::RangeInclusive<i64>]) -> PathBuf {
        let mut file = log::segment_header(first);
        for b in batches {
            let mut batch = Vec::new();
            for z in b.clone() {
                let (h, t) = txn(z);
                let mut payload = Vec::new();
                encode_txn(&h, &t, &mut payload);
                log::frame_record(z, &payload, &mut batch);
            }
            batch.resize(log::align_up(batch.len()), 0);
            file.extend(batch);
        }
        file.resize(file.len() + 8 * log::BLOCK_BYTES, 0);
        let p = dir.join(log::segment_name(first));
        std::fs::write(&p, file).expect("write");
        p
    }

    #[test]
    fn truncate_after_cuts_log_and_newer_snapshots_back_to_a_zxid() {
        let d = dirs("trunc");
        let mut t = DataTree::new();
        for z in 1..=6 {
            let (h, x) = txn(z);
            t.apply(&h, &x);
        }
        std::fs::write(d.0.join(snapshot::snapshot_name(6)), SnapshotWriter::whole(&t, 0)).expect("snap");
        write_segment(&d.0, 1, &[1..=2, 3..=5]);
        write_segment(&d.0, 6, &[6..=7]);
        truncate_after(&d.0, &d.0, 3).expect("truncate");
        assert!(snapshot::list_snapshots(&d.0).expect("list").is_empty(), "the snapshot past 3 is gone");
        assert_eq!(log::list_segments(&d.0).expect("list").len(), 1, "the segment past 3 is gone");
        let r = recover(&d.0, &d.0).expect("recover");
        assert_eq!(r.tree.last_zxid(), 3);
        assert!(r.tree.get("/n4").is_none() && r.tree.get("/n3").is_some());
        // The log continues right after the cut.
        let tail = r.log_tail.expect("tail");
        assert_eq!(tail.first_zxid, 1);
    }

    #[test]
    fn replays_the_log_after_the_snapshot() {
        let d = dirs("replay");
        let mut t = DataTree::new();
        for z in 1..=3 {
            let (h, x) = txn(z);
            t.apply(&h, &x);
        }
        std::fs::write(d.0.join(snapshot::snapshot_name(3)), SnapshotWriter::whole(&t, 0)).expect("snap");
        write_segment(&d.0, 1, &[1..=2, 3..=5]);
        write_segment(&d.0, 6, &[6..=7]);
        let r = recover(&d.0, &d.0).expect("recover");
        assert_eq!((r.tree.last_zxid(), r.replayed, r.snapshot_zxid), (7, 4, Some(3)));
        let tail = r.log_tail.expect("tail");
        assert_eq!((tail.first_zxid, tail.append_at), (6, 2 * log::BLOCK_BYTES));
    }

    #[test]
    fn a_torn_tail_is_zeroed_and_the_valid_prefix_kept() {
        let d = dirs("torn");
        let p = write_segment(&d.0, 1, &[1..=2, 3..=4]);
        let mut bytes = std::fs::read(&p).expect("read");
        let s = log::scan(&bytes).expect("scan");
        bytes[s.records[3].payload.start + 2] ^= 0xff;
        std::fs::write(&p, &bytes).expect("write");
        let r = recover(&d.0, &d.0).expect("recover");
        assert_eq!(r.tree.last_zxid(), 3);
        // Recovery again finds a clean end where the torn record was.
        let again = log::scan(&std::fs::read(&p).expect("read")).expect("scan");
        assert_eq!(again.end, LogEnd::Clean { append_at: 3 * log::BLOCK_BYTES });
    }

    #[test]
    fn damage_before_valid_records_refuses_to_start_and_deletes_nothing() {
        let d = dirs("corrupt");
        let p = write_segment(&d.0, 1, &[1..=2, 3..=4]);
        let mut bytes = std::fs::read(&p).expect("read");
        let s = log::scan(&bytes).expect("scan");
        bytes[s.records[0].payload.start] ^= 1;
        std::fs::write(&p, &bytes).expect("write");
        let e = recover(&d.0, &d.0).err().expect("must refuse");
        assert!(e.to_string().contains("offset 4096"), "{e}");
        assert_eq!(std::fs::read(&p).expect("read"), bytes, "nothing changed");
    }

    #[test]
    fn a_damaged_newest_snapshot_falls_back_to_the_previous_one_and_the_log() {
        let d = dirs("snapfallback");
        let mut t = DataTree::new();
        for z in 1..=2 {
            let (h, x) = txn(z);
            t.apply(&h, &x);
        }
        std::fs::write(d.0.join(snapshot::snapshot_name(2)), SnapshotWriter::whole(&t, 0)).expect("snap");
        for z in 3..=4 {
            let (h, x) = txn(z);
            t.apply(&h, &x);
        }
        let mut newest = SnapshotWriter::whole(&t, 0);
        newest[40] ^= 1;
        std::fs::write(d.0.join(snapshot::snapshot_name(4)), newest).expect("snap");
        write_segment(&d.0, 1, &[1..=5]);
        let r = recover(&d.0, &d.0).expect("recover");
        assert_eq!((r.snapshot_zxid, r.tree.last_zxid()), (Some(2), 5));
        assert!(r.tree.get("/n4").is_some());
    }

    #[test]
    fn all_snapshots_damaged_without_the_whole_log_refuses() {
        let d = dirs("nosnap");
        let mut bad = SnapshotWriter::whole(&DataTree::new(), 0);
        bad[10] ^= 1;
        std::fs::write(d.0.join(snapshot::snapshot_name(9)), bad).expect("snap");
        write_segment(&d.0, 10, &[10..=11]);
        assert!(matches!(recover(&d.0, &d.0), Err(RecoveryError::NoUsableSnapshot(_))));
    }
}
