//! Paddock's own server-to-server wire format (the quorum protocol is not ZooKeeper's; only the
//! client protocol is): election notifications on the election port and ZAB packets on the
//! quorum port, each a length-prefixed frame written with the jute primitives. Decoding is
//! total: a bad frame is an error value and the connection is dropped, never a panic.

use engine::Id;

use crate::election::{Notification, PeerState, Vote};
use crate::proto::{DecodeError, Packet, Reader, Writer};

/// The largest quorum frame: a SNAP carries a whole tree.
pub const FRAME_MAX_BYTES: usize = 1 << 31;
/// An election notification never exceeds this.
pub const NOTIFICATION_MAX_BYTES: usize = 64;

fn state_code(s: PeerState) -> i32 {
    match s {
        PeerState::Looking => 0,
        PeerState::Following => 1,
        PeerState::Leading => 2,
        PeerState::Observing => 3,
    }
}

/// Encodes a notification as a whole frame.
pub fn encode_notification(n: &Notification) -> Vec<u8> {
    let mut w = Writer::frame();
    w.i64(n.sender as i64).i32(state_code(n.state)).i64(n.round as i64);
    w.i64(n.vote.leader as i64).i64(n.vote.zxid).i64(n.vote.epoch as i64);
    w.finish_frame()
}

/// Decodes a notification frame (without its length prefix).
pub fn decode_notification(frame: &[u8]) -> Result<Notification, DecodeError> {
    let mut r = Reader::new(frame);
    let sender = r.i64()? as u64;
    let state = match r.i32()? {
        0 => PeerState::Looking,
        1 => PeerState::Following,
        2 => PeerState::Leading,
        3 => PeerState::Observing,
        other => return Err(DecodeError::BadLength(other, 8)),
    };
    let round = r.i64()? as u64;
    let vote = Vote { leader: r.i64()? as u64, zxid: r.i64()?, epoch: r.i64()? as u64 };
    Ok(Notification { sender, state, round, vote })
}

/// What learners and leaders exchange on the quorum port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuorumPacket {
    /// Learner → leader, first: who it is and where its history ends.
    LearnerInfo { server: u64, accepted_epoch: u64, last_zxid: i64, observer: bool },
    /// Learner → leader: everything up to `zxid` is durable here (cumulative).
    Ack { zxid: i64 },
    /// Learner → leader: a client's new session, to be made a txn.
    CreateSession { session_id: i64, timeout_ms: i32 },
    /// Learner → leader: a client's write (or sync, or close), with the client's identities.
    Request { session_id: i64, auth: Vec<Id>, packet: Packet },
    /// Learner → leader, periodically: alive, and these sessions were active.
    Ping { sessions: Vec<i64> },
    /// Leader → learner: the epoch it leads, and the secret session passwords derive from.
    NewEpoch { epoch: u64, secret: u64 },
    /// Leader → learner: proposals that follow continue the learner's history.
    Diff,
    /// Leader → learner: cut history back to `zxid` first.
    Trunc { zxid: i64 },
    /// Leader → learner: replace everything with this snapshot (engine format) at `zxid`.
    Snap { zxid: i64, snapshot: Vec<u8> },
    /// Leader → learner: framed log records to log (and, for a follower, ack).
    Proposal { records: Vec<u8> },
    /// Leader → learner: the leader's history ends at `zxid`; ack it once durable.
    NewLeader { zxid: i64 },
    /// Leader → learner: the ensemble is established; serve clients.
    UpToDate,
    /// Leader → learner: everything up to `zxid` is committed. Also the leader's heartbeat.
    Commit { zxid: i64 },
    /// Leader → learner: every write before this session's `sync` is committed.
    SyncDone { session_id: i64, cxid: i32 },
}

impl QuorumPacket {
    /// Encodes a whole frame, length prefix included.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::frame();
        match self {
            QuorumPacket::LearnerInfo { server, accepted_epoch, last_zxid, observer } => {
                w.i32(1).i64(*server as i64).i64(*accepted_epoch as i64).i64(*last_zxid).bool(*observer);
            }
            QuorumPacket::Ack { zxid } => {
                w.i32(2).i64(*zxid);
            }
            QuorumPacket::CreateSession { session_id, timeout_ms } => {
                w.i32(3).i64(*session_id).i32(*timeout_ms);
            }
            QuorumPacket::Request { session_id, auth, packet } => {
                w.i32(4).i64(*session_id).i32(auth.len() as i32);
                for id in auth {
                    w.string(&id.scheme).string(&id.id);
                }
                let frame = packet.encode();
                w.buffer(&frame[4..]);
            }
            QuorumPacket::Ping { sessions } => {
                w.i32(5).i32(sessions.len() as i32);
                for s in sessions {
                    w.i64(*s);
                }
            }
            QuorumPacket::NewEpoch { epoch, secret } => {
                w.i32(6).i64(*epoch as i64).i64(*secret as i64);
            }
            QuorumPacket::Diff => {
                w.i32(7);
            }
            QuorumPacket::Trunc { zxid } => {
                w.i32(8).i64(*zxid);
            }
            QuorumPacket::Snap { zxid, snapshot } => {
                w.i32(9).i64(*zxid).buffer(snapshot);
            }
            QuorumPacket::Proposal { records } => {
                w.i32(10).buffer(records);
            }
            QuorumPacket::NewLeader { zxid } => {
                w.i32(11).i64(*zxid);
            }
            QuorumPacket::UpToDate => {
                w.i32(12);
            }
            QuorumPacket::Commit { zxid } => {
                w.i32(13).i64(*zxid);
            }
            QuorumPacket::SyncDone { session_id, cxid } => {
                w.i32(14).i64(*session_id).i32(*cxid);
            }
        }
        w.finish_frame()
    }

    /// Decodes a frame (without its length prefix).
    pub fn decode(frame: &[u8]) -> Result<QuorumPacket, DecodeError> {
        let mut r = Reader::new(frame);
        let kind = r.i32()?;
        let count = |r: &mut Reader, at: usize| -> Result<usize, DecodeError> {
            let n = r.i32()?;
            // Each element takes at least 8 bytes: a count larger than the rest is a lie.
            usize::try_from(n)
                .ok()
                .filter(|n| n.saturating_mul(8) <= r.remaining())
                .ok_or(DecodeError::BadLength(n, at))
        };
        Ok(match kind {
            1 => QuorumPacket::LearnerInfo {
                server: r.i64()? as u64,
                accepted_epoch: r.i64()? as u64,
                last_zxid: r.i64()?,
                observer: r.bool()?,
            },
            2 => QuorumPacket::Ack { zxid: r.i64()? },
            3 => QuorumPacket::CreateSession { session_id: r.i64()?, timeout_ms: r.i32()? },
            4 => {
                let session_id = r.i64()?;
                let n = count(&mut r, 12)?;
                let mut auth = Vec::with_capacity(n);
                for _ in 0..n {
                    let scheme = r.string()?;
                    auth.push(Id { scheme, id: r.string()? });
                }
                let packet = Packet::decode(&r.buffer()?)?;
                QuorumPacket::Request { session_id, auth, packet }
            }
            5 => {
                let n = count(&mut r, 4)?;
                let sessions = (0..n).map(|_| r.i64()).collect::<Result<_, _>>()?;
                QuorumPacket::Ping { sessions }
            }
            6 => QuorumPacket::NewEpoch { epoch: r.i64()? as u64, secret: r.i64()? as u64 },
            7 => QuorumPacket::Diff,
            8 => QuorumPacket::Trunc { zxid: r.i64()? },
            9 => QuorumPacket::Snap { zxid: r.i64()?, snapshot: r.buffer()? },
            10 => QuorumPacket::Proposal { records: r.buffer()? },
            11 => QuorumPacket::NewLeader { zxid: r.i64()? },
            12 => QuorumPacket::UpToDate,
            13 => QuorumPacket::Commit { zxid: r.i64()? },
            14 => QuorumPacket::SyncDone { session_id: r.i64()?, cxid: r.i32()? },
            other => return Err(DecodeError::UnknownOpcode(other)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{op, Request};
    use proptest::prelude::*;

    #[test]
    fn packets_round_trip() {
        let packets = vec![
            QuorumPacket::LearnerInfo { server: 3, accepted_epoch: 7, last_zxid: 0x7_0000_0009, observer: true },
            QuorumPacket::Ack { zxid: 42 },
            QuorumPacket::CreateSession { session_id: -5, timeout_ms: 4000 },
            QuorumPacket::Request {
                session_id: 9,
                auth: vec![Id::new("digest", "u:h"), Id::new("ip", "127.0.0.1")],
                packet: Packet { xid: 4, op: op::SYNC, request: Request::Sync { path: "/a".into() } },
            },
            QuorumPacket::Ping { sessions: vec![1, 2, 3] },
            QuorumPacket::NewEpoch { epoch: 2, secret: u64::MAX },
            QuorumPacket::Diff,
            QuorumPacket::Trunc { zxid: 5 },
            QuorumPacket::Snap { zxid: 6, snapshot: vec![1, 2, 3] },
            QuorumPacket::Proposal { records: vec![9; 100] },
            QuorumPacket::NewLeader { zxid: 7 },
            QuorumPacket::UpToDate,
            QuorumPacket::Commit { zxid: 8 },
            QuorumPacket::SyncDone { session_id: 1, cxid: 2 },
        ];
        for p in packets {
            let frame = p.encode();
            assert_eq!(QuorumPacket::decode(&frame[4..]).as_ref(), Ok(&p));
        }
        let n = Notification {
            sender: 2,
            state: PeerState::Leading,
            round: 4,
            vote: Vote { leader: 2, zxid: 0x1_0000_0003, epoch: 1 },
        };
        let frame = encode_notification(&n);
        assert!(frame.len() <= NOTIFICATION_MAX_BYTES);
        assert_eq!(decode_notification(&frame[4..]), Ok(n));
    }

    proptest! {
        #[test]
        fn any_bytes_decode_to_a_value_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = QuorumPacket::decode(&bytes);
            let _ = decode_notification(&bytes);
        }
    }
}
