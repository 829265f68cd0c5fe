//! A linearizability checker for ZooKeeper client histories: Wing and Gong's search with Lowe's
//! memoisation of (linearized set, state), as porcupine does, over a history split by znode
//! (each znode is an independent object, so each part is checked alone).
//!
//! A history is what clients saw: for each op its session, call and return times, and the
//! outcome (error code, data and version read), or no outcome when the client could not tell
//! (connection lost, timed out), in which case the op may have happened at any time after its
//! call, or not at all. Only ops that must be linearizable belong here (writes, and reads issued
//! after `sync`); plain reads may be stale and are checked by `monotonic_reads` instead.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// ZooKeeper's error codes the model produces.
pub mod code {
    pub const OK: i32 = 0;
    pub const NO_NODE: i32 = -101;
    pub const BAD_VERSION: i32 = -103;
    pub const NODE_EXISTS: i32 = -110;
}

/// An op on one znode; values are small integers, unique per write in a test, so that a read
/// names the write it saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Create {
        value: u64,
    },
    /// setData with an expected version (-1: any).
    Set {
        value: u64,
        version: i32,
    },
    /// getData (after a sync, to be linearizable).
    Get,
    /// delete with an expected version (-1: any).
    Delete {
        version: i32,
    },
}

/// What the client was told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Outcome {
    pub code: i32,
    /// getData: the data read.
    pub value: Option<u64>,
    /// getData and setData: the node's version in the returned Stat.
    pub version: Option<i32>,
}

/// One op as a client saw it; times in any monotonic unit (ns since the test began).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub session: u64,
    pub path: String,
    pub op: Op,
    pub call: u64,
    /// None: the client never learned the outcome.
    pub ret: Option<(u64, Outcome)>,
}

/// A znode's state in the model: absent, or its data and version.
type State = Option<(u64, i32)>;

/// Applies `op` to `state` as ZooKeeper would: the new state and the outcome a client gets.
fn step(state: State, op: Op) -> (State, Outcome) {
    let out = |code, value, version| Outcome { code, value, version };
    match (op, state) {
        (Op::Create { value }, None) => (Some((value, 0)), out(code::OK, None, None)),
        (Op::Create { .. }, Some(_)) => (state, out(code::NODE_EXISTS, None, None)),
        (Op::Set { .. }, None) | (Op::Delete { .. }, None) => (state, out(code::NO_NODE, None, None)),
        (Op::Set { value, version }, Some((_, v))) if version == -1 || version == v => {
            (Some((value, v + 1)), out(code::OK, None, Some(v + 1)))
        }
        (Op::Delete { version }, Some((_, v))) if version == -1 || version == v => (None, out(code::OK, None, None)),
        (Op::Set { .. }, Some(_)) | (Op::Delete { .. }, Some(_)) => (state, out(code::BAD_VERSION, None, None)),
        (Op::Get, None) => (state, out(code::NO_NODE, None, None)),
        (Op::Get, Some((value, v))) => (state, out(code::OK, Some(value), Some(v))),
    }
}

/// Whether a client told `seen` is consistent with the model's `expected` (fields the client
/// did not record are not compared).
fn agrees(expected: &Outcome, seen: &Outcome) -> bool {
    expected.code == seen.code
        && (seen.value.is_none() || seen.value == expected.value)
        && (seen.version.is_none() || seen.version == expected.version)
}

/// A znode whose history no order explains.
#[derive(Debug, Clone)]
pub struct Violation {
    pub path: String,
    /// Every op on that znode, in call order.
    pub events: Vec<Event>,
}

impl Violation {
    /// Writes the znode's history, an op per line, for a person to read.
    pub fn write_to(&self, file: &Path) -> std::io::Result<()> {
        let mut text = format!("# no linearization of the {} ops on {}\n", self.events.len(), self.path);
        for e in &self.events {
            let ret = match &e.ret {
                Some((t, o)) => format!("ret {t} code {} value {:?} version {:?}", o.code, o.value, o.version),
                None => "ret unknown".to_string(),
            };
            text.push_str(&format!("session {:#x} call {} {:?} {ret}\n", e.session, e.call, e.op));
        }
        std::fs::write(file, text)
    }
}

/// Checks a whole history: Ok, or the first znode (by path) whose ops have no linearization.
pub fn check(history: &[Event]) -> Result<(), Violation> {
    let mut by_path: BTreeMap<&str, Vec<Event>> = BTreeMap::new();
    for e in history {
        by_path.entry(&e.path).or_default().push(e.clone());
    }
    for (path, mut events) in by_path {
        events.sort_by_key(|e| e.call);
        if !linearizable(&events) {
            return Err(Violation { path: path.to_string(), events });
        }
    }
    Ok(())
}

/// The search over one znode's ops (which start absent).
fn linearizable(ops: &[Event]) -> bool {
    let n = ops.len();
    // Events: call of op i is node 2i+1, its return 2i+2; node 0 is the list's head. An op the
    // client never heard back from returns after everything else.
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, e) in ops.iter().enumerate() {
        events.push((e.call, true, i));
        events.push((e.ret.map_or(u64::MAX, |(t, _)| t), false, i));
    }
    // By time; at equal times calls first, so that touching ops count as concurrent.
    events.sort_by_key(|&(t, is_call, i)| (t, !is_call, i));
    let node = |&(_, is_call, i): &(u64, bool, usize)| if is_call { 2 * i + 1 } else { 2 * i + 2 };
    let mut next = vec![0usize; 2 * n + 2];
    let mut prev = vec![0usize; 2 * n + 2];
    // One past the last node: the list's end.
    let none = 2 * n + 1;
    let mut last = 0;
    for ev in &events {
        let x = node(ev);
        next[last] = x;
        prev[x] = last;
        last = x;
    }
    next[last] = none;
    let lift = |next: &mut Vec<usize>, prev: &mut Vec<usize>, x: usize| {
        next[prev[x]] = next[x];
        if next[x] != none {
            prev[next[x]] = prev[x];
        }
    };
    let unlift = |next: &mut Vec<usize>, prev: &mut Vec<usize>, x: usize| {
        next[prev[x]] = x;
        if next[x] != none {
            prev[next[x]] = x;
        }
    };
    let words = n.div_ceil(64).max(1);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, State)> = HashSet::new();
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut state: State = None;
    let mut entry = next[0];
    while next[0] != none {
        // A call: try to place it here. A return (or the list's end) reached before its op was
        // placed: some earlier choice was wrong, so undo the last one and try the next call.
        if entry != none && entry % 2 == 1 {
            let i = (entry - 1) / 2;
            let (after, expected) = step(state, ops[i].op);
            let fits = ops[i].ret.is_none_or(|(_, seen)| agrees(&expected, &seen));
            if fits {
                let mut with = linearized.clone();
                with[i / 64] |= 1 << (i % 64);
                if cache.insert((with.clone(), after)) {
                    stack.push((entry, state));
                    linearized = with;
                    state = after;
                    lift(&mut next, &mut prev, entry);
                    lift(&mut next, &mut prev, entry + 1);
                    entry = next[0];
                    continue;
                }
            }
            entry = next[entry];
        } else {
            let Some((call, s)) = stack.pop() else { return false };
            let i = (call - 1) / 2;
            linearized[i / 64] &= !(1 << (i % 64));
            state = s;
            unlift(&mut next, &mut prev, call + 1);
            unlift(&mut next, &mut prev, call);
            entry = next[call];
        }
    }
    true
}

/// Plain reads, which may be stale: each session's reads must never go back in time, i.e. the
/// zxids of the replies a session got never decrease. Returns the first (session, earlier zxid,
/// later zxid) that does.
pub fn monotonic_reads(replies: &[(u64, i64)]) -> Result<(), (u64, i64, i64)> {
    let mut seen: HashMap<u64, i64> = HashMap::new();
    for &(session, zxid) in replies {
        let last = seen.entry(session).or_insert(zxid);
        if zxid < *last {
            return Err((session, *last, zxid));
        }
        *last = zxid;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(session: u64, op: Op, call: u64, ret: u64, outcome: Outcome) -> Event {
        Event { session, path: "/k".into(), op, call, ret: Some((ret, outcome)) }
    }

    fn ok() -> Outcome {
        Outcome { code: code::OK, value: None, version: None }
    }

    fn read(value: u64, version: i32) -> Outcome {
        Outcome { code: code::OK, value: Some(value), version: Some(version) }
    }

    #[test]
    fn a_sequential_history_is_linearizable() {
        let h = vec![
            ev(1, Op::Create { value: 1 }, 0, 10, ok()),
            ev(1, Op::Set { value: 2, version: 0 }, 20, 30, Outcome { version: Some(1), ..ok() }),
            ev(2, Op::Get, 40, 50, read(2, 1)),
            ev(2, Op::Delete { version: 1 }, 60, 70, ok()),
            ev(1, Op::Get, 80, 90, Outcome { code: code::NO_NODE, value: None, version: None }),
        ];
        assert!(check(&h).is_ok());
    }

    #[test]
    fn overlapping_ops_may_take_either_order() {
        // Two concurrent sets; a later read sees the one that was ordered last.
        let h = vec![
            ev(1, Op::Create { value: 0 }, 0, 5, ok()),
            ev(1, Op::Set { value: 1, version: -1 }, 10, 40, ok()),
            ev(2, Op::Set { value: 2, version: -1 }, 15, 35, ok()),
            ev(3, Op::Get, 50, 60, read(1, 2)),
        ];
        assert!(check(&h).is_ok());
        let h2 = vec![h[0].clone(), h[1].clone(), h[2].clone(), ev(3, Op::Get, 50, 60, read(2, 2))];
        assert!(check(&h2).is_ok());
    }

    #[test]
    fn a_stale_read_after_an_acknowledged_write_is_caught_and_written_out() {
        let h = vec![
            ev(1, Op::Create { value: 1 }, 0, 10, ok()),
            ev(1, Op::Set { value: 2, version: -1 }, 20, 30, ok()),
            // Called after the set returned, yet sees the old value.
            ev(2, Op::Get, 40, 50, read(1, 0)),
        ];
        let v = check(&h).expect_err("stale read");
        assert_eq!(v.path, "/k");
        let file = std::env::temp_dir().join(format!("lin-{}.txt", std::process::id()));
        v.write_to(&file).expect("write");
        let text = std::fs::read_to_string(&file).expect("read");
        let _ = std::fs::remove_file(&file);
        assert!(text.contains("no linearization of the 3 ops on /k") && text.contains("Get"), "{text}");
    }

    #[test]
    fn a_lost_acknowledged_write_is_caught_and_an_unknown_one_may_go_either_way() {
        let create = ev(1, Op::Create { value: 1 }, 0, 10, ok());
        let set = |ret| Event { ret, ..ev(1, Op::Set { value: 2, version: -1 }, 20, 30, ok()) };
        let later_read = ev(2, Op::Get, 100, 110, read(1, 0));
        assert!(check(&[create.clone(), set(Some((30, ok()))), later_read.clone()]).is_err());
        // Unknown outcome: it may not have happened...
        assert!(check(&[create.clone(), set(None), later_read]).is_ok());
        // ...or it may have.
        assert!(check(&[create, set(None), ev(2, Op::Get, 100, 110, read(2, 1))]).is_ok());
    }

    #[test]
    fn a_history_split_by_znode_checks_each_alone_and_scales() {
        // 8 sessions, 2,000 ops over 4 znodes, each session writing its own unique values with
        // overlapping calls: linearizable by construction (each op takes effect mid-call).
        let mut h = Vec::new();
        let mut state: HashMap<String, State> = HashMap::new();
        let mut t = 0;
        for i in 0..2000u64 {
            let path = format!("/k{}", i % 4);
            // Each znode sees create, set, set, get, delete, over and over.
            let op = match (i / 4) % 5 {
                0 => Op::Create { value: i },
                1 | 2 => Op::Set { value: i, version: -1 },
                3 => Op::Get,
                _ => Op::Delete { version: -1 },
            };
            let s = state.entry(path.clone()).or_insert(None);
            let (after, outcome) = step(*s, op);
            *s = after;
            // Calls overlap the next four (the next op on the same znode among them).
            h.push(Event { session: i % 8, path, op, call: t, ret: Some((t + 45, outcome)) });
            t += 10;
        }
        assert!(check(&h).is_ok());
        // One read changed to a value nobody wrote is caught.
        let bad = h.iter().position(|e| e.op == Op::Get && e.ret.is_some_and(|(_, o)| o.code == code::OK));
        let bad = bad.expect("a successful read");
        if let Some((_, o)) = h[bad].ret.as_mut() {
            o.value = Some(u64::MAX);
        }
        assert!(check(&h).is_err());
    }

    #[test]
    fn a_session_whose_reads_go_back_in_time_is_caught() {
        assert!(monotonic_reads(&[(1, 5), (2, 3), (1, 7), (2, 9)]).is_ok());
        assert_eq!(monotonic_reads(&[(1, 5), (2, 3), (1, 4)]), Err((1, 5, 4)));
    }
}
