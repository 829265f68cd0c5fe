//! Fast leader election as a deterministic state machine: notifications and ticks in (with the
//! time), notifications to send and the outcome out. No sockets, no clocks: the runtime feeds
//! it, and a simulator can too.
//!
//! Votes are ordered as ZooKeeper's FastLeaderElection orders them: the newest epoch first,
//! then the highest zxid, then the highest server id. A vote received from anyone makes a
//! LOOKING server answer with its own; a server decides once a quorum of voters agrees with its
//! proposal and no better vote arrives within the finalize wait. Observers never vote: they
//! follow the leader that a quorum of voters reports. The wire format of notifications is
//! Paddock's own (the quorum protocol is not ZooKeeper's).

use std::collections::{BTreeMap, BTreeSet};

/// A server id (`myid`).
pub type ServerId = u64;

/// Where a server stands, as srvr, mntr and `paddock status` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    Looking,
    Following,
    Leading,
    Observing,
}

/// A proposal for leader: who, and how up to date that candidate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vote {
    pub leader: ServerId,
    pub zxid: i64,
    pub epoch: u64,
}

impl Vote {
    /// FastLeaderElection's `totalOrderPredicate`: is `self` a better leader than `other`?
    pub fn beats(&self, other: &Vote) -> bool {
        (self.epoch, self.zxid, self.leader) > (other.epoch, other.zxid, other.leader)
    }
}

/// What servers exchange on the election port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notification {
    pub sender: ServerId,
    pub state: PeerState,
    /// The sender's election round (FastLeaderElection's logical clock).
    pub round: u64,
    pub vote: Vote,
}

/// What the runtime must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElectionAction {
    /// Send this notification to every other server.
    Broadcast(Notification),
    /// Send this notification to one server.
    Send { to: ServerId, notification: Notification },
    /// The election is over: lead, follow or observe `leader` in `epoch`.
    Decided { leader: ServerId, epoch: u64, state: PeerState },
}

/// Timing of an election.
#[derive(Debug, Clone, Copy)]
pub struct ElectionTiming {
    /// How long a server waits for a better vote once a quorum agrees (ZooKeeper: 200 ms).
    pub finalize_wait_ms: u64,
    /// First resend interval when nothing arrives; doubles up to the maximum.
    pub resend_min_ms: u64,
    pub resend_max_ms: u64,
}

impl Default for ElectionTiming {
    fn default() -> Self {
        ElectionTiming { finalize_wait_ms: 50, resend_min_ms: 50, resend_max_ms: 1600 }
    }
}

/// Who takes part: this server, the voters (`server.N` lines that are not observers), and
/// whether this server only observes.
#[derive(Debug, Clone)]
pub struct Membership {
    pub me: ServerId,
    pub voters: BTreeSet<ServerId>,
    pub observer: bool,
}

/// Where this server's history stands when it starts looking.
#[derive(Debug, Clone, Copy)]
pub struct History {
    pub last_zxid: i64,
    /// The epoch it last accepted (`currentEpoch`).
    pub epoch: u64,
    /// The round of its previous election, so a new one is newer.
    pub round: u64,
}

/// One server's election.
#[derive(Debug)]
pub struct Election {
    me: ServerId,
    voters: BTreeSet<ServerId>,
    observer: bool,
    timing: ElectionTiming,
    round: u64,
    proposal: Vote,
    /// Votes of this round from LOOKING voters, by sender.
    received: BTreeMap<ServerId, Vote>,
    /// Votes from servers already in an established ensemble (FOLLOWING/LEADING), by sender.
    settled: BTreeMap<ServerId, (PeerState, Vote)>,
    /// When a quorum first agreed with the current proposal.
    quorum_since_ms: Option<u64>,
    next_resend_ms: u64,
    resend_interval_ms: u64,
    /// Once decided: the leader, the epoch and this server's state, which it keeps telling
    /// servers still looking.
    outcome: Option<(ServerId, u64, PeerState)>,
}

impl Election {
    /// Starts looking, proposing itself with its own last zxid and epoch (an observer proposes
    /// nobody and only listens).
    pub fn start(
        members: Membership,
        history: History,
        timing: ElectionTiming,
        now_ms: u64,
        out: &mut Vec<ElectionAction>,
    ) -> Election {
        let Membership { me, voters, observer } = members;
        let History { last_zxid, epoch, round } = history;
        let proposal = Vote { leader: if observer { 0 } else { me }, zxid: last_zxid, epoch };
        let mut e = Election {
            me,
            voters,
            observer,
            timing,
            round: round + 1,
            proposal,
            received: BTreeMap::new(),
            settled: BTreeMap::new(),
            quorum_since_ms: None,
            next_resend_ms: now_ms + timing.resend_min_ms,
            resend_interval_ms: timing.resend_min_ms,
            outcome: None,
        };
        if !observer {
            e.received.insert(me, proposal);
        }
        out.push(ElectionAction::Broadcast(e.notification()));
        e
    }

    /// The round this election runs in.
    pub fn round(&self) -> u64 {
        self.round
    }

    /// The vote this server currently proposes.
    pub fn proposal(&self) -> Vote {
        self.proposal
    }

    fn notification(&self) -> Notification {
        let state = if self.observer { PeerState::Observing } else { PeerState::Looking };
        Notification { sender: self.me, state, round: self.round, vote: self.proposal }
    }

    fn quorum(&self, count: usize) -> bool {
        count * 2 > self.voters.len()
    }

    fn agreeing(&self, vote: &Vote) -> usize {
        self.received
            .iter()
            .filter(|(s, v)| self.voters.contains(s) && v.leader == vote.leader && v.epoch == vote.epoch)
            .count()
    }

    /// The decided leader, epoch and state, once there is one.
    pub fn outcome(&self) -> Option<(ServerId, u64, PeerState)> {
        self.outcome
    }

    /// The role this election led to has established `epoch` (the leader has a quorum, or the
    /// follower took NEWLEADER): peers still looking are answered with it from now on, so every
    /// member of one ensemble names the same epoch and a quorum of their answers can agree.
    /// Without this, members that decided in different rounds answer with different epochs and
    /// a looking server may never see a quorum agree.
    pub fn established(&mut self, epoch: u64) {
        if let Some((leader, _, state)) = self.outcome {
            self.outcome = Some((leader, epoch, state));
        }
    }

    /// A notification arrived.
    pub fn on_notification(&mut self, n: Notification, now_ms: u64, out: &mut Vec<ElectionAction>) {
        if n.sender == self.me {
            return;
        }
        if let Some((leader, epoch, state)) = self.outcome {
            // Out of the election: answer those still looking with the settled vote.
            if matches!(n.state, PeerState::Looking | PeerState::Observing) {
                let vote = Vote { leader, zxid: self.proposal.zxid, epoch };
                let notification = Notification { sender: self.me, state, round: self.round, vote };
                out.push(ElectionAction::Send { to: n.sender, notification });
            }
            return;
        }
        match n.state {
            PeerState::Looking => {
                if !self.voters.contains(&n.sender) {
                    return;
                }
                if n.round > self.round {
                    // A newer election: join it, keeping the better of our vote and theirs.
                    self.round = n.round;
                    self.received.clear();
                    self.quorum_since_ms = None;
                    if !self.observer && n.vote.beats(&self.proposal) {
                        self.proposal = n.vote;
                    }
                    if !self.observer {
                        self.received.insert(self.me, self.proposal);
                    }
                    out.push(ElectionAction::Broadcast(self.notification()));
                } else if n.round < self.round {
                    // A laggard: tell it where we are, so it catches up.
                    out.push(ElectionAction::Send { to: n.sender, notification: self.notification() });
                    return;
                } else if !self.observer && n.vote.beats(&self.proposal) {
                    self.proposal = n.vote;
                    self.received.insert(self.me, self.proposal);
                    self.quorum_since_ms = None;
                    out.push(ElectionAction::Broadcast(self.notification()));
                }
                self.received.insert(n.sender, n.vote);
                if !self.observer && self.quorum(self.agreeing(&self.proposal)) {
                    self.quorum_since_ms.get_or_insert(now_ms);
                }
            }
            PeerState::Following | PeerState::Leading => {
                // An ensemble exists: follow its leader once a quorum of voters reports it and the
                // leader itself says it leads (FastLeaderElection's out-of-election path).
                self.settled.insert(n.sender, (n.state, n.vote));
                let leader = n.vote.leader;
                let backers = self
                    .settled
                    .iter()
                    .filter(|(s, (_, v))| self.voters.contains(s) && v.leader == leader && v.epoch == n.vote.epoch)
                    .count();
                // Followers of this very server wait for it to lead: it counts itself, and takes
                // their word when they decided in its own round (FastLeaderElection's checkLeader).
                let (leader_leads, backers) = if leader == self.me && !self.observer {
                    (n.round == self.round, backers + 1)
                } else {
                    (self.settled.get(&leader).is_some_and(|(st, _)| *st == PeerState::Leading), backers)
                };
                if leader_leads && self.quorum(backers) {
                    self.decide(leader, n.vote.epoch, out);
                }
            }
            // Observers never vote, but they learn from our answer where the election stands.
            PeerState::Observing => {
                out.push(ElectionAction::Send { to: n.sender, notification: self.notification() });
            }
        }
    }

    fn decide(&mut self, leader: ServerId, epoch: u64, out: &mut Vec<ElectionAction>) {
        let state = if self.observer {
            PeerState::Observing
        } else if leader == self.me {
            PeerState::Leading
        } else {
            PeerState::Following
        };
        self.outcome = Some((leader, epoch, state));
        out.push(ElectionAction::Decided { leader, epoch, state });
    }

    /// Time passed: decide once the finalize wait is over, or resend when nothing happened.
    pub fn tick(&mut self, now_ms: u64, out: &mut Vec<ElectionAction>) {
        if self.outcome.is_some() {
            return;
        }
        if let Some(since) = self.quorum_since_ms {
            if now_ms >= since + self.timing.finalize_wait_ms && self.quorum(self.agreeing(&self.proposal)) {
                let p = self.proposal;
                self.decide(p.leader, p.epoch, out);
                return;
            }
        }
        if now_ms >= self.next_resend_ms {
            out.push(ElectionAction::Broadcast(self.notification()));
            self.resend_interval_ms = (self.resend_interval_ms * 2).min(self.timing.resend_max_ms);
            self.next_resend_ms = now_ms + self.resend_interval_ms;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny deterministic network: every broadcast reaches every other server after one step.
    struct Net {
        servers: BTreeMap<ServerId, Election>,
        decided: BTreeMap<ServerId, (ServerId, PeerState)>,
        down: BTreeSet<ServerId>,
    }

    impl Net {
        fn new(zxids: &[(ServerId, i64, u64)], observers: &[ServerId]) -> (Net, Vec<(ServerId, ElectionAction)>) {
            let voters: BTreeSet<ServerId> =
                zxids.iter().map(|(id, _, _)| *id).filter(|id| !observers.contains(id)).collect();
            let mut pending = Vec::new();
            let mut servers = BTreeMap::new();
            for (id, zxid, epoch) in zxids {
                let mut out = Vec::new();
                let members = Membership { me: *id, voters: voters.clone(), observer: observers.contains(id) };
                let history = History { last_zxid: *zxid, epoch: *epoch, round: 0 };
                let e = Election::start(members, history, ElectionTiming::default(), 0, &mut out);
                pending.extend(out.into_iter().map(|a| (*id, a)));
                servers.insert(*id, e);
            }
            (Net { servers, decided: BTreeMap::new(), down: BTreeSet::new() }, pending)
        }

        fn run(&mut self, mut pending: Vec<(ServerId, ElectionAction)>) {
            let mut now = 0;
            for _ in 0..500 {
                let mut next = Vec::new();
                for (from, action) in pending.drain(..) {
                    if self.down.contains(&from) {
                        continue;
                    }
                    let targets: Vec<(ServerId, Notification)> = match action {
                        ElectionAction::Broadcast(n) => {
                            self.servers.keys().filter(|id| **id != from).map(|id| (*id, n)).collect()
                        }
                        ElectionAction::Send { to, notification } => vec![(to, notification)],
                        ElectionAction::Decided { leader, state, .. } => {
                            self.decided.insert(from, (leader, state));
                            continue;
                        }
                    };
                    for (to, n) in targets {
                        if self.down.contains(&to) {
                            continue;
                        }
                        let mut out = Vec::new();
                        if let Some(e) = self.servers.get_mut(&to) {
                            e.on_notification(n, now, &mut out);
                        }
                        next.extend(out.into_iter().map(|a| (to, a)));
                    }
                }
                now += 10;
                for (id, e) in self.servers.iter_mut() {
                    if self.down.contains(id) {
                        continue;
                    }
                    let mut out = Vec::new();
                    e.tick(now, &mut out);
                    next.extend(out.into_iter().map(|a| (*id, a)));
                }
                pending = next;
                if self.decided.len() + self.down.len() == self.servers.len() && pending.is_empty() {
                    return;
                }
            }
        }
    }

    #[test]
    fn a_settled_server_answers_with_the_epoch_its_role_established() {
        let (mut net, pending) = Net::new(&[(1, 10, 1), (2, 30, 1), (3, 20, 1)], &[]);
        net.run(pending);
        let follower = net.servers.get_mut(&1).expect("server 1");
        assert_eq!(follower.outcome(), Some((2, 1, PeerState::Following)));
        follower.established(4);
        let vote = Vote { leader: 4, zxid: 0, epoch: 0 };
        let looking = Notification { sender: 4, state: PeerState::Looking, round: 9, vote };
        let mut out = Vec::new();
        follower.on_notification(looking, 10_000, &mut out);
        let answered = out.iter().any(|a| {
            matches!(a, ElectionAction::Send { to: 4, notification }
                if notification.vote == Vote { leader: 2, zxid: 30, epoch: 4 } && notification.state == PeerState::Following)
        });
        assert!(answered, "{out:?}");
    }

    #[test]
    fn a_server_whose_voters_already_follow_it_leads() {
        // Server 1 decided for 2 and stopped looking before 2 saw its vote: 2 hears only that
        // 1 follows it, in 2's own round, and must lead rather than wait for 1 to give up.
        let members = Membership { me: 2, voters: [1, 2, 3].into_iter().collect(), observer: false };
        let history = History { last_zxid: 30, epoch: 1, round: 0 };
        let mut e = Election::start(members, history, ElectionTiming::default(), 0, &mut Vec::new());
        let vote = Vote { leader: 2, zxid: 30, epoch: 1 };
        let follows = Notification { sender: 1, state: PeerState::Following, round: e.round(), vote };
        let mut out = Vec::new();
        e.on_notification(follows, 10, &mut out);
        assert_eq!(e.outcome(), Some((2, 1, PeerState::Leading)));
        // From another round it is no evidence: that election may have named it long ago.
        let mut e = Election::start(
            Membership { me: 2, voters: [1, 2, 3].into_iter().collect(), observer: false },
            history,
            ElectionTiming::default(),
            0,
            &mut Vec::new(),
        );
        let stale = Notification { sender: 1, state: PeerState::Following, round: e.round() + 5, vote };
        e.on_notification(stale, 10, &mut Vec::new());
        assert_eq!(e.outcome(), None);
    }

    #[test]
    fn votes_order_by_epoch_then_zxid_then_id() {
        let v = |leader, zxid, epoch| Vote { leader, zxid, epoch };
        assert!(v(1, 5, 2).beats(&v(3, 9, 1)), "a newer epoch wins");
        assert!(v(1, 9, 1).beats(&v(3, 5, 1)), "then the higher zxid");
        assert!(v(3, 5, 1).beats(&v(1, 5, 1)), "then the higher id");
    }

    #[test]
    fn the_most_up_to_date_server_leads_and_all_agree() {
        let (mut net, pending) = Net::new(&[(1, 10, 1), (2, 30, 1), (3, 20, 1)], &[]);
        net.run(pending);
        assert_eq!(net.decided.get(&2), Some(&(2, PeerState::Leading)));
        assert_eq!(net.decided.get(&1), Some(&(2, PeerState::Following)));
        assert_eq!(net.decided.get(&3), Some(&(2, PeerState::Following)));
    }

    #[test]
    fn ties_go_to_the_highest_id() {
        let (mut net, pending) = Net::new(&[(1, 7, 1), (2, 7, 1), (3, 7, 1)], &[]);
        net.run(pending);
        assert!(net.decided.values().all(|(leader, _)| *leader == 3), "{:?}", net.decided);
    }

    #[test]
    fn observers_follow_the_elected_leader_without_voting() {
        // The observer has the newest zxid but must not be elected.
        let (mut net, pending) = Net::new(&[(1, 5, 1), (2, 6, 1), (3, 4, 1), (9, 100, 1)], &[9]);
        net.run(pending);
        assert_eq!(net.decided.get(&2), Some(&(2, PeerState::Leading)));
        assert_eq!(net.decided.get(&9).map(|(_, s)| *s), Some(PeerState::Observing));
    }

    #[test]
    fn a_majority_elects_while_a_minority_is_down() {
        let (mut net, pending) = Net::new(&[(1, 5, 1), (2, 6, 1), (3, 9, 1)], &[]);
        net.down.insert(3);
        net.run(pending);
        assert_eq!(net.decided.get(&2), Some(&(2, PeerState::Leading)));
        assert_eq!(net.decided.get(&1), Some(&(2, PeerState::Following)));
    }

    #[test]
    fn a_late_server_joins_the_established_leader() {
        let mut out = Vec::new();
        let voters: BTreeSet<ServerId> = [1, 2, 3].into();
        let members = Membership { me: 1, voters, observer: false };
        let history = History { last_zxid: 3, epoch: 1, round: 0 };
        let mut late = Election::start(members, history, ElectionTiming::default(), 0, &mut out);
        let settled =
            |sender, state| Notification { sender, state, round: 4, vote: Vote { leader: 3, zxid: 50, epoch: 2 } };
        late.on_notification(settled(2, PeerState::Following), 5, &mut out);
        late.on_notification(settled(3, PeerState::Leading), 6, &mut out);
        assert!(out.contains(&ElectionAction::Decided { leader: 3, epoch: 2, state: PeerState::Following }), "{out:?}");
    }
}
