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

    fn has(&self, t: Table, path: &str, session_id: i64) -> bool {
        let table = match t {
            Table::Data => &self.data,
            Table::Child => &self.child,
        };
        table.get(path).is_some_and(|w| w.contains_key(&session_id))
    }

    /// The tables a `WatcherType` of checkWatches/removeWatches covers; None for a type ZooKeeper
    /// 3.8 cannot decode (it answers MarshallingError, including for the persistent types).
    pub fn tables_for(kind: i32) -> Option<&'static [Table]> {
        match kind {
            watcher_type::CHILDREN => Some(&[Table::Child]),
            watcher_type::DATA => Some(&[Table::Data]),
            watcher_type::ANY => Some(&[Table::Data, Table::Child]),
            _ => None,
        }
    }

    /// checkWatches: whether the session has a watch, of any mode, in these tables.
    pub fn contains(&self, path: &str, session_id: i64, tables: &[Table]) -> bool {
        tables.iter().any(|t| self.has(*t, path, session_id))
    }

    /// removeWatches: removes the session's watches in these tables; false if there were none.
    pub fn remove(&mut self, path: &str, session_id: i64, tables: &[Table]) -> bool {
        let mut removed = false;
        for t in tables {
            removed |= self.remove_entry(*t, path, session_id).is_some();
        }
        removed
    }

    /// addWatch (and the persistent lists of setWatches2): ZooKeeper puts the watch in both
    /// tables, where a recursive one never fires for child events but does replace a mode set
    /// before on the same path.
    pub fn add_persistent(&mut self, path: &str, session_id: i64, recursive: bool) {
        let mode = if recursive { WatchMode::PersistentRecursive } else { WatchMode::Persistent };
        self.add(Table::Data, path, session_id, mode);
        self.add(Table::Child, path, session_id, mode);
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
        let mut fire = |session: i64, out: &mut Vec<Fired>| {
            if notified.insert(session) {
                out.push(Fired { session_id: session, event_type, path: path.to_string() });
            }
        };
        let child_event = kind == TriggerKind::ChildrenChanged;
        for &t in tables {
            let mut one_shot = Vec::new();
            if let Some(watchers) = self.table(t).get(path) {
                for (&session, &mode) in watchers {
                    match mode {
                        // Recursive watches see every change in their subtree but child changes.
                        WatchMode::PersistentRecursive if child_event => {}
                        WatchMode::Standard => {
                            fire(session, out);
                            one_shot.push(session);
                        }
                        _ => fire(session, out),
                    }
                }
            }
            for s in one_shot {
                self.remove_entry(t, path, s);
            }
            if self.recursive_count > 0 && !child_event {
                let table = match t {
                    Table::Data => &self.data,
                    Table::Child => &self.child,
                };
                let mut p = path;
                while p != "/" {
                    p = path::parent(p);
                    for (&session, &mode) in table.get(p).into_iter().flatten() {
                        if mode == WatchMode::PersistentRecursive {
                            fire(session, out);
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
        w.add_persistent("/a", 1, true);
        let mut out = Vec::new();
        w.trigger("/a/b/c", TriggerKind::Created, &mut out);
        w.trigger("/a/b", TriggerKind::ChildrenChanged, &mut out);
        assert_eq!(out, vec![Fired { session_id: 1, event_type: event::NODE_CREATED, path: "/a/b/c".into() }]);
        assert_eq!(w.count(), 2, "one entry in each table");
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
