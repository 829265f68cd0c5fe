//! ZAB's rules, without I/O: how zxids are numbered across epochs, when a proposal is committed
//! (cumulative acks from a quorum of voters), which epochs a learner may accept, how a learner
//! is brought up to date (DIFF, TRUNC or SNAP), and when a leader must step down. The runtime
//! (`ensemble`) moves the bytes; everything it decides comes from here, so these rules are
//! tested directly, with no sockets and no clocks.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::election::ServerId;

/// The epoch part of a zxid (its high 32 bits).
pub fn epoch_of(zxid: i64) -> u64 {
    (zxid as u64) >> 32
}

/// The counter part of a zxid (its low 32 bits).
pub fn counter_of(zxid: i64) -> u32 {
    zxid as u32
}

/// The zxid of the `counter`-th txn of `epoch`.
pub fn make_zxid(epoch: u64, counter: u32) -> i64 {
    ((epoch << 32) | u64::from(counter)) as i64
}

/// A leader stops proposing once its counter reaches this, leaving room for the txns one
/// request can produce (a tick may expire many sessions), and steps down: the next leader
/// starts a new epoch with a fresh counter (ZooKeeper's XidRolloverException).
pub const COUNTER_ROLLOVER: u32 = 0xffff_0000;

/// The zxid a leader of `epoch` assigns after `last`: the first of its epoch, or the next.
pub fn next_zxid(epoch: u64, last: i64) -> i64 {
    if epoch_of(last) < epoch {
        make_zxid(epoch, 1)
    } else {
        last + 1
    }
}

/// Whether a leader that assigned `last` must step down so a new epoch begins.
pub fn must_roll_epoch(last: i64) -> bool {
    counter_of(last) >= COUNTER_ROLLOVER
}

/// A learner accepts a leader's epoch only if it never accepted a newer one: that is what stops
/// a server from taking part in two leaders' epochs (ZooKeeper's acceptedEpoch check).
pub fn may_accept_epoch(accepted: u64, proposed: u64) -> bool {
    proposed >= accepted
}

/// The epoch a new leader starts: newer than any epoch it or the learners of its quorum have
/// accepted.
pub fn new_epoch(accepted: impl IntoIterator<Item = u64>) -> u64 {
    accepted.into_iter().max().unwrap_or(0) + 1
}

/// Majority of `voters`.
pub fn is_quorum(count: usize, voters: usize) -> bool {
    count * 2 > voters
}

/// Whether a new leader's epoch is established and it may serve: a quorum of voters (the
/// leader included) answered NEWLEADER, and a quorum has the leader's history durable. Both are
/// needed: with an empty history the second holds before anyone has heard of the epoch, and a
/// leader serving then could share its epoch with another one elected without it.
pub fn established(newleader_acks: usize, voters: usize, committed: i64, newleader_zxid: i64) -> bool {
    is_quorum(newleader_acks + 1, voters) && committed >= newleader_zxid
}

/// The leader's view of which proposals are committed: every voter's highest durable zxid
/// (acks are cumulative: an ack of z covers every proposal up to z), the leader's own included.
#[derive(Debug, Clone)]
pub struct AckTracker {
    voters: BTreeSet<ServerId>,
    acked: BTreeMap<ServerId, i64>,
    committed: i64,
}

impl AckTracker {
    /// Nothing is known committed until a quorum acks: the history a new leader brings is
    /// committed by the quorum that acknowledges it (NEWLEADER), not by the leader alone.
    pub fn new(voters: BTreeSet<ServerId>) -> AckTracker {
        AckTracker { voters, acked: BTreeMap::new(), committed: 0 }
    }

    /// The highest committed zxid.
    pub fn committed(&self) -> i64 {
        self.committed
    }

    /// `server` has everything up to `zxid` durable. Returns the new commit point if it moved.
    /// Acks from non-voters (observers) are ignored; an older ack never lowers a newer one.
    pub fn ack(&mut self, server: ServerId, zxid: i64) -> Option<i64> {
        if !self.voters.contains(&server) {
            return None;
        }
        let e = self.acked.entry(server).or_insert(zxid);
        *e = (*e).max(zxid);
        let mut zxids: Vec<i64> = self.acked.values().copied().collect();
        zxids.sort_unstable_by(|a, b| b.cmp(a));
        let quorum = self.voters.len() / 2 + 1;
        let candidate = zxids.get(quorum - 1).copied()?;
        if candidate > self.committed {
            self.committed = candidate;
            Some(candidate)
        } else {
            None
        }
    }

    /// A learner went away: its acks no longer count towards future commits.
    pub fn remove(&mut self, server: ServerId) {
        self.acked.remove(&server);
    }
}

/// How a learner is brought level with the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPlan {
    /// The learner's history is a prefix of the leader's: send what follows it.
    Diff,
    /// The learner holds txns the leader's history lacks (proposals of a past epoch that never
    /// committed): it cuts its history back to this zxid, then gets what follows.
    Trunc(i64),
    /// The leader no longer holds the txns the learner needs: send the whole tree.
    Snap,
}

/// The txns a leader keeps in memory to sync learners by DIFF (ZooKeeper's committedLog):
/// framed log records after `before`, the zxid of the record just before the first kept one.
#[derive(Debug, Clone)]
pub struct SyncWindow {
    before: i64,
    records: VecDeque<(i64, Vec<u8>)>,
    max_txns: usize,
}

impl SyncWindow {
    /// An empty window after `last_zxid`, the end of the history the leader recovered.
    pub fn new(last_zxid: i64, max_txns: usize) -> SyncWindow {
        SyncWindow { before: last_zxid, records: VecDeque::new(), max_txns }
    }

    /// The last zxid of the leader's history.
    pub fn last(&self) -> i64 {
        self.records.back().map_or(self.before, |(z, _)| *z)
    }

    /// Appends a proposed record, forgetting the oldest beyond the window's size.
    pub fn push(&mut self, zxid: i64, framed: Vec<u8>) {
        debug_assert!(zxid > self.last(), "history goes forward");
        self.records.push_back((zxid, framed));
        while self.records.len() > self.max_txns {
            if let Some((z, _)) = self.records.pop_front() {
                self.before = z;
            }
        }
    }

    fn contains(&self, zxid: i64) -> bool {
        zxid == self.before || self.records.binary_search_by_key(&zxid, |(z, _)| *z).is_ok()
    }

    /// The newest zxid of the leader's history at or before `zxid`, if the window reaches back.
    fn agreeing_point(&self, zxid: i64) -> Option<i64> {
        if zxid < self.before {
            return None;
        }
        let n = self.records.partition_point(|(z, _)| *z <= zxid);
        Some(if n == 0 { self.before } else { self.records[n - 1].0 })
    }

    /// How to sync a learner whose history ends at `learner_zxid`. Two servers holding the same
    /// zxid hold the same txn and the same history before it (one leader per epoch numbers
    /// them), and two holding zxids of one epoch share that epoch's history up to the smaller.
    /// A learner's history that diverges in an epoch the window cannot tell about gets SNAP.
    pub fn plan(&self, learner_zxid: i64) -> SyncPlan {
        if self.contains(learner_zxid) {
            return SyncPlan::Diff;
        }
        match self.agreeing_point(learner_zxid) {
            Some(agree) if epoch_of(agree) == epoch_of(learner_zxid) => SyncPlan::Trunc(agree),
            _ => SyncPlan::Snap,
        }
    }

    /// The framed records after `zxid`, concatenated, as one proposal packet carries them.
    pub fn after(&self, zxid: i64) -> Vec<u8> {
        let n = self.records.partition_point(|(z, _)| *z <= zxid);
        let mut out = Vec::new();
        for (_, r) in self.records.iter().skip(n) {
            out.extend_from_slice(r);
        }
        out
    }
}

/// Whether a leader still hears a quorum of voters: itself, plus every voter heard from within
/// `timeout_ms` (ZooKeeper's syncLimit). A leader that does not must stop taking writes.
pub fn hears_quorum(
    voters: &BTreeSet<ServerId>,
    me: ServerId,
    last_heard_ms: &BTreeMap<ServerId, u64>,
    now_ms: u64,
    timeout_ms: u64,
) -> bool {
    let heard = voters
        .iter()
        .filter(|v| **v == me || last_heard_ms.get(v).is_some_and(|t| now_ms.saturating_sub(*t) <= timeout_ms))
        .count();
    is_quorum(heard, voters.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_needs_a_quorum_of_newleader_acks_even_with_an_empty_history() {
        assert!(!established(0, 3, 0, 0), "nobody heard of the epoch");
        assert!(established(1, 3, 0, 0));
        assert!(!established(1, 3, 4, 5), "the history is not durable on a quorum");
        assert!(established(1, 3, 5, 5));
        assert!(!established(1, 5, 5, 5));
    }

    fn voters(ids: &[ServerId]) -> BTreeSet<ServerId> {
        ids.iter().copied().collect()
    }

    #[test]
    fn zxids_number_epochs_and_roll_over() {
        assert_eq!(next_zxid(1, 0), make_zxid(1, 1));
        assert_eq!(next_zxid(1, make_zxid(1, 7)), make_zxid(1, 8));
        // A new leader's first txn starts its epoch's counter afresh, whatever came before.
        assert_eq!(next_zxid(3, make_zxid(2, 900)), make_zxid(3, 1));
        assert_eq!(epoch_of(make_zxid(5, 9)), 5);
        assert_eq!(counter_of(make_zxid(5, 9)), 9);
        assert!(!must_roll_epoch(make_zxid(2, COUNTER_ROLLOVER - 1)));
        assert!(must_roll_epoch(make_zxid(2, COUNTER_ROLLOVER)));
        // After the rollover the next epoch's zxids are still larger than every old one.
        let last_old = make_zxid(2, u32::MAX);
        assert!(next_zxid(3, last_old) > last_old);
    }

    #[test]
    fn epochs_are_accepted_only_forward() {
        assert!(may_accept_epoch(3, 3));
        assert!(may_accept_epoch(3, 4));
        assert!(!may_accept_epoch(4, 3));
        assert_eq!(new_epoch([2, 5, 4]), 6);
        assert_eq!(new_epoch([]), 1);
    }

    #[test]
    fn commit_needs_a_quorum_of_voters_including_cumulative_acks() {
        let mut t = AckTracker::new(voters(&[1, 2, 3]));
        // Pipelined proposals 1..=5: the leader has all durable, nobody else yet.
        assert_eq!(t.ack(1, 5), None);
        // One follower acks up to 3 (covering 1, 2, 3 at once): 1..=3 are on a quorum.
        assert_eq!(t.ack(2, 3), Some(3));
        // A late, smaller ack changes nothing.
        assert_eq!(t.ack(2, 2), None);
        assert_eq!(t.ack(3, 4), Some(4));
        assert_eq!(t.ack(2, 5), Some(5));
        assert_eq!(t.committed(), 5);
    }

    #[test]
    fn observers_and_a_minority_never_commit() {
        let mut t = AckTracker::new(voters(&[1, 2, 3, 4, 5]));
        assert_eq!(t.ack(1, 10), None);
        assert_eq!(t.ack(9, 10), None, "an observer's ack does not count");
        assert_eq!(t.ack(2, 10), None, "two of five is not a quorum");
        assert_eq!(t.ack(3, 7), Some(7));
        assert_eq!(t.ack(3, 20), Some(10));
        t.remove(3);
        assert_eq!(t.ack(1, 20), None);
        assert_eq!(t.ack(2, 20), None, "a departed learner's ack no longer counts");
        assert_eq!(t.ack(4, 20), Some(20));
    }

    #[test]
    fn sync_plans_diff_trunc_snap() {
        let e1 = |c| make_zxid(1, c);
        let e2 = |c| make_zxid(2, c);
        // The leader recovered up to e1:5 and has proposed e2:1..=3 since.
        let mut w = SyncWindow::new(e1(5), 100);
        for c in 1..=3 {
            w.push(e2(c), vec![c as u8]);
        }
        assert_eq!(w.plan(e2(3)), SyncPlan::Diff, "level");
        assert_eq!(w.plan(e2(1)), SyncPlan::Diff);
        assert_eq!(w.after(e2(1)), vec![2, 3]);
        assert_eq!(w.plan(e1(5)), SyncPlan::Diff, "the end of the recovered history");
        assert_eq!(w.after(e1(5)), vec![1, 2, 3]);
        // A former leader with an uncommitted e1:6 the new leader never saw: cut back to e1:5.
        assert_eq!(w.plan(e1(6)), SyncPlan::Trunc(e1(5)));
        // Ahead in the leader's own epoch (it lost its tail in a crash): cut to its last.
        assert_eq!(w.plan(e2(9)), SyncPlan::Trunc(e2(3)));
        // Older than the window: the whole tree.
        assert_eq!(w.plan(e1(2)), SyncPlan::Snap);
        // A history from an epoch the leader's window cannot place: the whole tree.
        assert_eq!(w.plan(make_zxid(3, 1)), SyncPlan::Snap);
    }

    #[test]
    fn the_window_forgets_old_txns() {
        let mut w = SyncWindow::new(0, 2);
        for z in 1..=5 {
            w.push(z, vec![z as u8]);
        }
        assert_eq!(w.last(), 5);
        assert_eq!(w.plan(3), SyncPlan::Diff);
        assert_eq!(w.after(3), vec![4, 5]);
        assert_eq!(w.plan(2), SyncPlan::Snap);
    }

    #[test]
    fn a_leader_that_cannot_hear_a_quorum_steps_down() {
        let v = voters(&[1, 2, 3]);
        let mut heard = BTreeMap::new();
        heard.insert(2, 1000);
        assert!(hears_quorum(&v, 1, &heard, 1500, 500));
        assert!(!hears_quorum(&v, 1, &heard, 1501, 500));
        heard.insert(3, 1400);
        assert!(hears_quorum(&v, 1, &heard, 1800, 500));
    }
}
