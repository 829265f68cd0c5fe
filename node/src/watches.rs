//! Watch tables, as ZooKeeper's two `WatchManager`s (data and child) keep them, keyed by
//! session: one-shot, persistent and persistent-recursive watches.

use std::collections::{HashMap, HashSet};

use engine::{path, TriggerKind};

use crate::proto::{event, watcher_type};

/// How a watch behaves once triggered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchMode {
    Standard,
    Persistent,
    PersistentRecursive,
}

/// Which of ZooKeeper's two watch managers an entry lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Data,
    Child,
}

/// A watch event due to a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    pub session_id: i64,
    pub event_type: i32,
    pub path: String,
}

/// Every watch the server holds.
#[derive(Debug, Default)]
pub struct WatchTables {
    data: HashMap<String, HashMap<i64, WatchMode>>,
    child: HashMap<String, HashMap<i64, WatchMode>>,
    by_session: HashMap<i64, HashSet<(Table, String)>>,
    recursive_count: usize,
}

impl WatchTables {
    fn table(&mut self, t: Table) -> &mut HashMap<String, HashMap<i64, WatchMode>> {
        match t {
            Table::Data => &mut self.data,
            Table::Child => &mut self.child,
        }
    }

    /// Adds a watch; a later watch on the same path replaces the mode of an earlier one, as
    /// ZooKeeper's `WatcherModeManager` does.
    pub fn add(&mut self, t: Table, path: &str, session_id: i64, mode: WatchMode) {
        let previous = self.table(t).entry(path.to_string()).or_default().insert(session_id, mode);
        if previous == Some(WatchMode::PersistentRecursive) {
            self.recursive_count -= 1;
        }
        if mode == WatchMode::PersistentRecursive {
            self.recursive_count += 1;
        }
        self.by_session.entry(session_id).or_default().insert((t, path.to_string()));
    }

    /// Total number of watches (ZooKeeper's `zk_watch_count`).
    pub fn count(&self) -> usize {
        self.data.values().map(|m| m.len()).sum::<usize>() + self.child.values().map(|m| m.len()).sum::<usize>()
    }

    /// Paths watched by each session, for `wchc`.
    pub fn by_session(&self) -> &HashMap<i64, HashSet<(Table, String)>> {
        &self.by_session
    }

    fn remove_entry(&mut self, t: Table, path: &str, session_id: i64) -> Option<WatchMode> {
        let table = self.table(t);
        let watchers = table.get_mut(path)?;
        let mode = watchers.remove(&session_id)?;
        if watchers.is_empty() {
            table.remove(path);
        }
        if mode == WatchMode::PersistentRecursive {
            self.recursive_count -= 1;
        }
        if let Some(set) = self.by_session.get_mut(&session_id) {
            set.remove(&(t, path.to_string()));
            if set.is_empty() {
                self.by_session.remove(&session_id);
            }
        }
        Some(mode)
    }

    /// Drops every watch of a session: its connection closed, so ZooKeeper forgets them until
    /// the client re-arms them with setWatches.
    pub fn remove_session(&mut self, session_id: i64) {
        let Some(entries) = self.by_session.remove(&session_id) else {
            return;
        };
        for (t, p) in entries {
            let table = self.table(t);
            let Some(watchers) = table.get_mut(&p) else {
                continue;
            };
            let mode = watchers.remove(&session_id);
            if watchers.is_empty() {
                table.remove(&p);
            }
            if mode == Some(WatchMode::PersistentRecursive) {
                self.recursive_count -= 1;
            }
        }
    }

    fn matching(&self, t: Table, path: &str, session_id: i64, kind: i32) -> bool {
        let table = match t {
            Table::Data => &self.data,
            Table::Child => &self.child,
        };
        table.get(path).and_then(|w| w.get(&session_id)).is_some_and(|mode| match kind {
            watcher_type::PERSISTENT => *mode == WatchMode::Persistent,
            watcher_type::PERSISTENT_RECURSIVE => *mode == WatchMode::PersistentRecursive,
            _ => true,
        })
    }

    fn tables_for(kind: i32) -> &'static [Table] {
        match kind {
            watcher_type::CHILDREN => &[Table::Child],
            watcher_type::DATA | watcher_type::PERSISTENT_RECURSIVE => &[Table::Data],
            _ => &[Table::Data, Table::Child],
        }
    }

    /// checkWatches: whether the session has a watch of this `WatcherType` on the path.
    pub fn contains(&self, path: &str, session_id: i64, kind: i32) -> bool {
        Self::tables_for(kind).iter().any(|t| self.matching(*t, path, session_id, kind))
    }

    /// removeWatches: removes the session's watches of this type on the path; false if none.
    pub fn remove(&mut self, path: &str, session_id: i64, kind: i32) -> bool {
        let mut removed = false;
        for t in Self::tables_for(kind) {
            if self.matching(*t, path, session_id, kind) {
                removed |= self.remove_entry(*t, path, session_id).is_some();
            }
        }
        removed
    }

    /// Fires the watches a tree change triggers (`WatchManager.triggerWatch`), removing the
    /// one-shot ones, and returns one event per session at most per table walk.
    pub fn trigger(&mut self, path: &str, kind: TriggerKind, out: &mut Vec<Fired>) {
        let (event_type, tables): (i32, &[Table]) = match kind {
            TriggerKind::Created => (event::NODE_CREATED, &[Table::Data]),
            TriggerKind::DataChanged => (event::NODE_DATA_CHANGED, &[Table::Data]),
            TriggerKind::Deleted => (event::NODE_DELETED, &[Table::Data, Table::Child]),
            TriggerKind::ChildrenChanged => (event::NODE_CHILDREN_CHANGED, &[Table::Child]),
        };
        let mut notified: HashSet<i64> = HashSet::new();
        for &t in tables {
            let mut one_shot = Vec::new();
            if let Some(watchers) = self.table(t).get(path) {
                for (&session, &mode) in watchers {
                    if notified.insert(session) {
                        out.push(Fired { session_id: session, event_type, path: path.to_string() });
                    }
                    if mode == WatchMode::Standard {
                        one_shot.push(session);
                    }
                }
            }
            for s in one_shot {
                self.remove_entry(t, path, s);
            }
            // Recursive watches on ancestors see every change below them but child changes.
            if t == Table::Data && self.recursive_count > 0 && kind != TriggerKind::ChildrenChanged {
                let mut p = path;
                while p != "/" {
                    p = path::parent(p);
                    if let Some(watchers) = self.data.get(p) {
                        for (&session, &mode) in watchers {
                            if mode == WatchMode::PersistentRecursive && notified.insert(session) {
                                out.push(Fired { session_id: session, event_type, path: path.to_string() });
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shot_fires_once() {
        let mut w = WatchTables::default();
        w.add(Table::Data, "/a", 1, WatchMode::Standard);
        let mut out = Vec::new();
        w.trigger("/a", TriggerKind::DataChanged, &mut out);
        w.trigger("/a", TriggerKind::DataChanged, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(w.count(), 0);
    }

    #[test]
    fn recursive_sees_descendants_but_not_child_events() {
        let mut w = WatchTables::default();
        w.add(Table::Data, "/a", 1, WatchMode::PersistentRecursive);
        let mut out = Vec::new();
        w.trigger("/a/b/c", TriggerKind::Created, &mut out);
        w.trigger("/a/b", TriggerKind::ChildrenChanged, &mut out);
        assert_eq!(out, vec![Fired { session_id: 1, event_type: event::NODE_CREATED, path: "/a/b/c".into() }]);
        assert_eq!(w.count(), 1);
    }

    #[test]
    fn delete_notifies_a_session_once_across_tables() {
        let mut w = WatchTables::default();
        w.add(Table::Data, "/a", 1, WatchMode::Standard);
        w.add(Table::Child, "/a", 1, WatchMode::Standard);
        let mut out = Vec::new();
        w.trigger("/a", TriggerKind::Deleted, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(w.count(), 0);
    }
}
