//! Purge (`autopurge` and `paddock purge`): keeps the newest `retain` snapshots and every log
//! segment that replay from the oldest of them needs; deletes the rest. Never deletes a segment
//! holding a txn after the oldest kept snapshot's zxid.

use std::path::{Path, PathBuf};

use crate::log;
use crate::snapshot;

/// What a purge deleted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PurgeReport {
    pub snapshots: Vec<PathBuf>,
    pub segments: Vec<PathBuf>,
}

/// The files a purge would delete, without deleting them.
pub fn plan(snap_dir: &Path, log_dir: &Path, retain: usize) -> std::io::Result<PurgeReport> {
    let retain = retain.max(3);
    let snaps = snapshot::list_snapshots(snap_dir)?;
    if snaps.len() <= retain {
        return Ok(PurgeReport::default());
    }
    let oldest_kept = snaps[retain - 1].0;
    let old_snaps = snaps[retain..].iter().map(|(_, p)| p.clone()).collect();
    let segs = log::list_segments(log_dir)?;
    // Segment i holds [first_i, first_{i+1}); it is needed if it may hold oldest_kept + 1.
    let mut old_segs = Vec::new();
    for w in segs.windows(2) {
        if w[1].0 <= oldest_kept + 1 {
            old_segs.push(w[0].1.clone());
        }
    }
    Ok(PurgeReport { snapshots: old_snaps, segments: old_segs })
}

/// Deletes what [`plan`] lists.
pub fn purge(snap_dir: &Path, log_dir: &Path, retain: usize) -> std::io::Result<PurgeReport> {
    let report = plan(snap_dir, log_dir, retain)?;
    for p in report.snapshots.iter().chain(report.segments.iter()) {
        std::fs::remove_file(p)?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_segments_the_oldest_kept_snapshot_needs() {
        let d = std::env::temp_dir().join(format!("paddock-purge-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("dir");
        for z in [10, 20, 30, 40] {
            std::fs::write(d.join(snapshot::snapshot_name(z)), b"x").expect("snap");
        }
        for z in [1, 15, 21, 35] {
            std::fs::write(d.join(log::segment_name(z)), b"x").expect("seg");
        }
        let r = purge(&d, &d, 3).expect("purge");
        assert_eq!(r.snapshots, vec![d.join(snapshot::snapshot_name(10))]);
        // Oldest kept snapshot is 20: replay needs 21.., so log.15 (15..=20) can go, not log.21.
        assert_eq!(r.segments, vec![d.join(log::segment_name(1)), d.join(log::segment_name(15))]);
        let _ = std::fs::remove_dir_all(&d);
    }
}
