//! The session table with ZooKeeper's bucketed expiry (`ExpiryQueue`): a session's deadline is
//! rounded up to the next tick, so one check per tick expires a whole bucket at once.
//! Time is passed in: no clock is read here.

use std::collections::{BTreeMap, HashMap, HashSet};

/// One live session.
#[derive(Debug, Clone)]
pub struct Session {
    pub timeout_ms: i32,
    /// The bucket (a multiple of the tick) at which it expires unless touched.
    pub expires_at_ms: u64,
}

/// Sessions and their expiry buckets.
#[derive(Debug)]
pub struct SessionTable {
    tick_ms: u64,
    sessions: HashMap<i64, Session>,
    buckets: BTreeMap<u64, HashSet<i64>>,
}

impl SessionTable {
    /// An empty table whose buckets are `tick_ms` wide.
    pub fn new(tick_ms: u64) -> SessionTable {
        SessionTable { tick_ms: tick_ms.max(1), sessions: HashMap::new(), buckets: BTreeMap::new() }
    }

    fn bucket_for(&self, now_ms: u64, timeout_ms: i32) -> u64 {
        let deadline = now_ms + timeout_ms.max(0) as u64;
        (deadline / self.tick_ms + 1) * self.tick_ms
    }

    /// Adds (or re-adds) a session and starts its timeout.
    pub fn add(&mut self, session_id: i64, timeout_ms: i32, now_ms: u64) {
        self.remove(session_id);
        let at = self.bucket_for(now_ms, timeout_ms);
        self.sessions.insert(session_id, Session { timeout_ms, expires_at_ms: at });
        self.buckets.entry(at).or_default().insert(session_id);
    }

    /// Restarts a session's timeout; false if it no longer exists.
    pub fn touch(&mut self, session_id: i64, now_ms: u64) -> bool {
        let Some(timeout_ms) = self.sessions.get(&session_id).map(|s| s.timeout_ms) else {
            return false;
        };
        let at = self.bucket_for(now_ms, timeout_ms);
        let Some(s) = self.sessions.get_mut(&session_id) else {
            return false;
        };
        let old = std::mem::replace(&mut s.expires_at_ms, at);
        if old != at {
            if let Some(b) = self.buckets.get_mut(&old) {
                b.remove(&session_id);
                if b.is_empty() {
                    self.buckets.remove(&old);
                }
            }
            self.buckets.entry(at).or_default().insert(session_id);
        }
        true
    }

    /// Forgets a session (closed or expired).
    pub fn remove(&mut self, session_id: i64) -> Option<Session> {
        let s = self.sessions.remove(&session_id)?;
        if let Some(b) = self.buckets.get_mut(&s.expires_at_ms) {
            b.remove(&session_id);
            if b.is_empty() {
                self.buckets.remove(&s.expires_at_ms);
            }
        }
        Some(s)
    }

    /// Sessions whose bucket has passed; they stay in the table until removed.
    pub fn expired(&self, now_ms: u64) -> Vec<i64> {
        let mut out: Vec<i64> = self.buckets.range(..=now_ms).flat_map(|(_, b)| b.iter().copied()).collect();
        out.sort_unstable();
        out
    }

    pub fn get(&self, session_id: i64) -> Option<&Session> {
        self.sessions.get(&session_id)
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_on_the_tick_after_the_timeout() {
        let mut t = SessionTable::new(100);
        t.add(1, 400, 1050);
        assert!(t.expired(1449).is_empty());
        assert_eq!(t.expired(1500), vec![1]);
    }

    #[test]
    fn touch_postpones_expiry() {
        let mut t = SessionTable::new(100);
        t.add(1, 400, 0);
        assert!(t.touch(1, 300));
        assert!(t.expired(500).is_empty());
        assert_eq!(t.expired(800), vec![1]);
    }
}
