//! The data tree: every znode in memory, keyed by path, with the indexes ZooKeeper keeps
//! (ephemerals by session, containers, TTL nodes).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::acl::{self, Acl, AclList};
use crate::code;
use crate::path;
use crate::quota::{self, StatsTrack};
use crate::stat::{EphemeralKind, Stat, StatPersisted};
use crate::txn::{Txn, TxnHeader};

/// One znode.
#[derive(Debug, Clone)]
pub struct Node {
    pub data: Vec<u8>,
    pub acl: AclList,
    pub stat: StatPersisted,
    pub children: BTreeSet<Box<str>>,
}

impl Node {
    /// The Stat a client receives for this node.
    pub fn client_stat(&self) -> Stat {
        self.stat.to_stat(self.data.len(), self.children.len())
    }
}

/// What request preparation needs to know of a node, without its data.
#[derive(Debug, Clone)]
pub struct NodeMeta {
    pub stat: StatPersisted,
    pub num_children: usize,
    pub acl: AclList,
    pub data_length: usize,
}

/// Which watches a change fires, in ZooKeeper's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TriggerKind {
    /// Data (and exists) watches on the path.
    Created,
    /// Data and child watches on the path.
    Deleted,
    /// Data watches on the path.
    DataChanged,
    /// Child watches on the path (the parent of the node that came or went).
    ChildrenChanged,
}

/// A watch trigger produced by applying a txn, in the order ZooKeeper fires them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchTrigger {
    pub path: String,
    pub kind: TriggerKind,
    /// The ACL of the node the event is about, at the time of the change: ZooKeeper only
    /// delivers the event to watchers that may READ it.
    pub acl: AclList,
}

/// The outcome of one operation inside a txn.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpResult {
    pub err: i32,
    pub path: Option<String>,
    pub stat: Option<Stat>,
}

/// The outcome of applying a txn: the top-level result, per-op results for a multi, and the
/// watches to fire.
#[derive(Debug, Clone, Default)]
pub struct ApplyResult {
    pub result: OpResult,
    pub multi: Vec<OpResult>,
    pub triggers: Vec<WatchTrigger>,
}

/// The in-memory tree. Single-owner: exactly one core applies txns to it.
#[derive(Debug)]
pub struct DataTree {
    nodes: HashMap<Box<str>, Node>,
    ephemerals: HashMap<i64, BTreeSet<String>>,
    containers: BTreeSet<String>,
    ttls: BTreeSet<String>,
    acl_cache: HashMap<Vec<Acl>, AclList>,
    /// Paths that have a quota (a limits node), ZooKeeper's `pTrie`.
    quotas: BTreeSet<String>,
    /// Live sessions and their negotiated timeouts: durable state, as in ZooKeeper's snapshots.
    sessions: BTreeMap<i64, i32>,
    /// Set when a restored snapshot held a node without its parent (fuzzy); applying txns never
    /// makes one, so without this no orphan scan is needed.
    restored_orphans: bool,
    last_zxid: i64,
    data_size_bytes: u64,
}

/// Builds a tree node by node as a snapshot is decoded, without an intermediate copy: the map is
/// sized once, identical ACL lists are shared by pointer, children and indexes are derived at
/// the end.
pub struct TreeBuilder {
    tree: DataTree,
    /// Decoded ACL list (by address) → (that list, kept alive; the tree's shared copy).
    interned: HashMap<*const [Acl], (AclList, AclList)>,
}

impl TreeBuilder {
    /// A builder for about `capacity` nodes.
    pub fn new(capacity: usize) -> TreeBuilder {
        let mut tree = DataTree::new();
        tree.nodes.reserve(capacity);
        TreeBuilder { tree, interned: HashMap::new() }
    }

    /// Adds a node; its `children` are ignored (they are derived from the paths).
    pub fn add(&mut self, path: String, mut node: Node) {
        node.children.clear();
        let key = Arc::as_ptr(&node.acl);
        node.acl = match self.interned.get(&key) {
            Some((_, shared)) => shared.clone(),
            None => {
                let shared = self.tree.intern_acl(node.acl.to_vec());
                // The decoded list is kept alive, so its address cannot be reused by another.
                self.interned.insert(key, (node.acl.clone(), shared.clone()));
                shared
            }
        };
        self.tree.nodes.insert(path.into_boxed_str(), node);
    }

    /// Links children to parents and rebuilds the indexes and quota usage.
    pub fn finish(self, sessions: BTreeMap<i64, i32>, last_zxid: i64) -> DataTree {
        let mut tree = self.tree;
        tree.sessions = sessions;
        tree.last_zxid = last_zxid;
        // Every key's text, borrowed by address: linking below changes only `children`, never
        // a key, and inserts or removes no entry, so the map's keys stay where they are.
        let keys: Vec<*const str> = tree.nodes.keys().map(|k| &**k as *const str).collect();
        for key in keys {
            // SAFETY: see above; the key strings outlive this loop and are not mutated.
            let p: &str = unsafe { &*key };
            if p == "/" {
                continue;
            }
            let (parent, name) = path::split(p);
            match tree.nodes.get_mut(parent) {
                Some(parent) => {
                    parent.children.insert(name.into());
                }
                None => tree.restored_orphans = true,
            }
        }
        tree.data_size_bytes = 0;
        for (p, n) in &tree.nodes {
            tree.data_size_bytes += (p.len() + n.data.len()) as u64;
            match EphemeralKind::of(n.stat.ephemeral_owner) {
                EphemeralKind::Persistent => {}
                EphemeralKind::Container => {
                    tree.containers.insert(p.to_string());
                }
                EphemeralKind::Ttl(_) => {
                    tree.ttls.insert(p.to_string());
                }
                EphemeralKind::Ephemeral(owner) => {
                    tree.ephemerals.entry(owner).or_default().insert(p.to_string());
                }
            }
            if p.starts_with(QUOTA_PATH) {
                let (parent, name) = path::split(p);
                if let Some((target, true)) = quota::quota_target(parent, name) {
                    tree.quotas.insert(target);
                }
            }
        }
        tree.recount_all_quotas();
        tree
    }
}

/// The nodes every ZooKeeper tree starts with.
pub const ZOOKEEPER_PATH: &str = "/zookeeper";
pub const QUOTA_PATH: &str = "/zookeeper/quota";
pub const CONFIG_PATH: &str = "/zookeeper/config";

impl Default for DataTree {
    fn default() -> Self {
        DataTree::new()
    }
}

impl DataTree {
    /// A tree holding `/`, `/zookeeper`, `/zookeeper/quota` and `/zookeeper/config`, with the
    /// ACLs and stats a fresh ZooKeeper has (all zero; config readable by anyone, aversion -1).
    pub fn new() -> DataTree {
        let mut tree = DataTree {
            nodes: HashMap::new(),
            ephemerals: HashMap::new(),
            containers: BTreeSet::new(),
            ttls: BTreeSet::new(),
            acl_cache: HashMap::new(),
            quotas: BTreeSet::new(),
            sessions: BTreeMap::new(),
            restored_orphans: false,
            last_zxid: 0,
            data_size_bytes: 0,
        };
        let open = tree.intern_acl(acl::open_acl_unsafe());
        for p in ["/", ZOOKEEPER_PATH, QUOTA_PATH, CONFIG_PATH] {
            tree.nodes.insert(
                p.into(),
                Node { data: Vec::new(), acl: open.clone(), stat: StatPersisted::default(), children: BTreeSet::new() },
            );
            if p != "/" {
                let parent = path::parent(p).to_string();
                if let Some(n) = tree.nodes.get_mut(parent.as_str()) {
                    n.children.insert(path::name(p).into());
                }
            }
        }
        // ZooKeeper counts these paths in approximateDataSize too: a fresh server reports 44.
        tree.data_size_bytes = tree.nodes.keys().map(|p| p.len() as u64).sum();
        // ZooKeeper sets the config node's ACL with version -1 when it adds it.
        let read_only = tree.intern_acl(acl::read_acl_unsafe());
        if let Some(config) = tree.nodes.get_mut(CONFIG_PATH) {
            config.acl = read_only;
            config.stat.aversion = -1;
        }
        tree
    }

    /// Shares identical ACL lists between nodes.
    fn intern_acl(&mut self, acl: Vec<Acl>) -> AclList {
        if let Some(shared) = self.acl_cache.get(&acl) {
            return shared.clone();
        }
        let shared: AclList = Arc::from(acl.clone());
        self.acl_cache.insert(acl, shared.clone());
        shared
    }

    /// The zxid of the last txn applied.
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// Number of znodes, root included (ZooKeeper's `zk_znode_count` counts the same).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Sum of path and data lengths, ZooKeeper's `approximateDataSize`.
    pub fn approximate_data_size(&self) -> u64 {
        self.data_size_bytes
    }

    /// The node at a path.
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// What preparation needs to know of the node at a path.
    pub fn meta(&self, path: &str) -> Option<NodeMeta> {
        self.nodes.get(path).map(|n| NodeMeta {
            stat: n.stat,
            num_children: n.children.len(),
            acl: n.acl.clone(),
            data_length: n.data.len(),
        })
    }

    /// Ephemeral paths owned by a session.
    pub fn ephemerals_of(&self, session_id: i64) -> impl Iterator<Item = &String> {
        self.ephemerals.get(&session_id).into_iter().flatten()
    }

    /// Total number of ephemeral nodes.
    pub fn ephemeral_count(&self) -> usize {
        self.ephemerals.values().map(|s| s.len()).sum()
    }

    /// Container nodes, candidates for the container check.
    pub fn containers(&self) -> impl Iterator<Item = &String> {
        self.containers.iter()
    }

    /// TTL nodes, candidates for the expiry check.
    pub fn ttls(&self) -> impl Iterator<Item = &String> {
        self.ttls.iter()
    }

    /// Number of descendants of a node (`getAllChildrenNumber`).
    pub fn all_children_number(&self, path: &str) -> usize {
        let mut count = 0;
        let mut stack = vec![path.to_string()];
        while let Some(p) = stack.pop() {
            if let Some(n) = self.nodes.get(p.as_str()) {
                for c in &n.children {
                    count += 1;
                    stack.push(path::join(&p, c));
                }
            }
        }
        count
    }

    /// The quota path governing `path` (`getMaxPrefixWithQuota`): its longest quota'd ancestor
    /// or itself, never `/`.
    pub fn quota_prefix(&self, path: &str) -> Option<String> {
        if self.quotas.is_empty() {
            return None;
        }
        let mut p = path;
        while p != "/" {
            if self.quotas.contains(p) {
                return Some(p.to_string());
            }
            p = path::parent(p);
        }
        None
    }

    /// `checkQuota` with `enforceQuota`: a change that would take a quota'd subtree past a hard
    /// limit fails with QuotaExceeded; soft limits only warn in ZooKeeper, so they pass here.
    pub fn quota_check(&self, path: &str, bytes_diff: i64, count_diff: i64) -> Result<(), i32> {
        let Some(prefix) = self.quota_prefix(path) else { return Ok(()) };
        let Some(limits) = self.nodes.get(quota::limit_path(&prefix).as_str()) else { return Ok(()) };
        let limits = StatsTrack::parse(&limits.data);
        let usage =
            self.nodes.get(quota::stat_path(&prefix).as_str()).map(|n| StatsTrack::parse(&n.data)).unwrap_or_default();
        let over = |diff: i64, used: &str, hard: &str| {
            let limit = limits.get(hard);
            diff != 0 && limit > -1 && usage.get(used).max(0) + diff > limit
        };
        if over(count_diff, "count", "countHardLimit") || over(bytes_diff, "bytes", "byteHardLimit") {
            return Err(code::QUOTA_EXCEEDED);
        }
        Ok(())
    }

    /// Replaces a stats node's data, keeping the size accounting; its Stat does not change, as in
    /// ZooKeeper.
    fn write_quota_usage(&mut self, quota_path: &str, usage: &StatsTrack) {
        let stat_path = quota::stat_path(quota_path);
        let Some(n) = self.nodes.get_mut(stat_path.as_str()) else { return };
        let data = usage.to_text().into_bytes();
        self.data_size_bytes = self.data_size_bytes + data.len() as u64 - n.data.len() as u64;
        n.data = data;
    }

    /// `updateCountBytes`: moves the usage recorded in the governing stats node.
    fn update_quota_usage(&mut self, path: &str, bytes_diff: i64, count_diff: i64) {
        let Some(prefix) = self.quota_prefix(path) else { return };
        let Some(n) = self.nodes.get(quota::stat_path(&prefix).as_str()) else { return };
        let mut usage = StatsTrack::parse(&n.data);
        usage.set("count", usage.get("count").max(0) + count_diff);
        usage.set("bytes", usage.get("bytes").max(0) + bytes_diff);
        self.write_quota_usage(&prefix, &usage);
    }

    /// `updateQuotaForPath`: counts a subtree afresh when its stats node is created.
    fn recount_quota(&mut self, target: &str) {
        let (mut count, mut bytes) = (0i64, 0i64);
        let mut stack = vec![target.to_string()];
        while let Some(p) = stack.pop() {
            if let Some(n) = self.nodes.get(p.as_str()) {
                count += 1;
                bytes += n.data.len() as i64;
                stack.extend(n.children.iter().map(|c| path::join(&p, c)));
            }
        }
        let mut usage = StatsTrack::default();
        usage.set("count", count);
        usage.set("bytes", bytes);
        self.write_quota_usage(target, &usage);
    }

    /// Live sessions with their timeouts.
    pub fn sessions(&self) -> &BTreeMap<i64, i32> {
        &self.sessions
    }

    /// Every path, for a snapshot that walks the tree in chunks while it keeps changing.
    pub fn paths(&self) -> Vec<Box<str>> {
        self.nodes.keys().cloned().collect()
    }

    /// Rebuilds a tree from a snapshot's parts: children, indexes and quota usage are derived.
    /// Nodes whose parent is missing (possible in a fuzzy snapshot until the log is replayed)
    /// are kept and reported by [`DataTree::orphans`].
    pub fn restore(nodes: Vec<(String, Node)>, sessions: BTreeMap<i64, i32>, last_zxid: i64) -> DataTree {
        let mut b = TreeBuilder::new(nodes.len());
        for (p, n) in nodes {
            b.add(p, n);
        }
        b.finish(sessions, last_zxid)
    }

    /// `setupQuota`: recounts every quota's usage from the tree itself.
    pub fn recount_all_quotas(&mut self) {
        let quotas: Vec<String> = self.quotas.iter().cloned().collect();
        for q in quotas {
            self.recount_quota(&q);
        }
    }

    /// Nodes whose parent does not exist.
    pub fn orphans(&self) -> Vec<String> {
        self.nodes
            .keys()
            .filter(|p| &***p != "/" && !self.nodes.contains_key(path::parent(p)))
            .map(|p| p.to_string())
            .collect()
    }

    /// Removes orphans (deepest first), returning how many went.
    pub fn prune_orphans(&mut self) -> usize {
        if !self.restored_orphans {
            return 0;
        }
        self.restored_orphans = false;
        let mut orphans = self.orphans();
        orphans.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in &orphans {
            if let Some(n) = self.nodes.remove(p.as_str()) {
                self.data_size_bytes -= (p.len() + n.data.len()) as u64;
            }
            self.containers.remove(p);
            self.ttls.remove(p);
            for set in self.ephemerals.values_mut() {
                set.remove(p);
            }
        }
        orphans.len()
    }

    /// Applies one txn. Deterministic: the same txns in the same order give the same tree.
    /// A txn that does not fit the tree (possible only on replay) reports ZooKeeper's error.
    pub fn apply(&mut self, hdr: &TxnHeader, txn: &Txn) -> ApplyResult {
        debug_assert!(hdr.zxid > self.last_zxid || hdr.zxid == 0, "zxids must increase");
        let mut out = ApplyResult::default();
        out.result = self.apply_one(hdr, txn, &mut out.triggers, &mut out.multi);
        if hdr.zxid > self.last_zxid {
            self.last_zxid = hdr.zxid;
        }
        out
    }

    fn apply_one(
        &mut self,
        hdr: &TxnHeader,
        txn: &Txn,
        triggers: &mut Vec<WatchTrigger>,
        multi: &mut Vec<OpResult>,
    ) -> OpResult {
        let err = |code| OpResult { err: code, ..OpResult::default() };
        match txn {
            Txn::CreateSession { timeout_ms } => {
                self.sessions.insert(hdr.session_id, *timeout_ms);
                OpResult::default()
            }
            Txn::CloseSession => {
                self.sessions.remove(&hdr.session_id);
                let paths: Vec<String> = self.ephemerals.remove(&hdr.session_id).into_iter().flatten().collect();
                for p in paths {
                    // An ephemeral has no children, so deleting it cannot fail but for replay.
                    let _ = self.delete_node(&p, hdr.zxid, triggers);
                }
                OpResult::default()
            }
            Txn::Create { path, data, acl, ephemeral_owner, parent_cversion } => {
                match self.create_node(
                    path,
                    data.clone(),
                    acl.clone(),
                    *ephemeral_owner,
                    *parent_cversion,
                    hdr,
                    triggers,
                ) {
                    Ok(stat) => OpResult { err: 0, path: Some(path.clone()), stat: Some(stat) },
                    Err(code) => err(code),
                }
            }
            Txn::Delete { path } => match self.delete_node(path, hdr.zxid, triggers) {
                Ok(()) => OpResult { err: 0, path: Some(path.clone()), stat: None },
                Err(code) => err(code),
            },
            Txn::SetData { path, data, version } => {
                let Some(n) = self.nodes.get_mut(path.as_str()) else {
                    return err(code::NO_NODE);
                };
                self.data_size_bytes = self.data_size_bytes + data.len() as u64 - n.data.len() as u64;
                let bytes_diff = data.len() as i64 - n.data.len() as i64;
                n.data = data.clone();
                n.stat.mtime = hdr.time_ms;
                n.stat.mzxid = hdr.zxid;
                n.stat.version = *version;
                let stat = n.client_stat();
                let acl = n.acl.clone();
                self.update_quota_usage(path, bytes_diff, 0);
                triggers.push(WatchTrigger { path: path.clone(), kind: TriggerKind::DataChanged, acl });
                OpResult { err: 0, path: Some(path.clone()), stat: Some(stat) }
            }
            Txn::SetAcl { path, acl, version } => {
                if !self.nodes.contains_key(path.as_str()) {
                    return err(code::NO_NODE);
                }
                let shared = self.intern_acl(acl.clone());
                let Some(n) = self.nodes.get_mut(path.as_str()) else {
                    return err(code::NO_NODE);
                };
                n.acl = shared;
                n.stat.aversion = *version;
                OpResult { err: 0, path: Some(path.clone()), stat: Some(n.client_stat()) }
            }
            Txn::Check { path } => OpResult { err: 0, path: Some(path.clone()), stat: None },
            Txn::Multi(txns) => {
                let failed = txns.iter().any(|t| matches!(t, Txn::Error { .. }));
                for t in txns {
                    let r = if failed {
                        match t {
                            Txn::Error { err: code } => err(*code),
                            // Only a replayed mixed multi can get here; ZooKeeper reports OK.
                            _ => err(code::OK),
                        }
                    } else {
                        let mut nested = Vec::new();
                        self.apply_one(hdr, t, triggers, &mut nested)
                    };
                    multi.push(r);
                }
                OpResult::default()
            }
            Txn::Error { err: code } => err(*code),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn create_node(
        &mut self,
        path: &str,
        data: Vec<u8>,
        acl: Vec<Acl>,
        ephemeral_owner: i64,
        parent_cversion: i32,
        hdr: &TxnHeader,
        triggers: &mut Vec<WatchTrigger>,
    ) -> Result<Stat, i32> {
        let parent_path = path::parent(path).to_string();
        let name = path::name(path);
        let acl = self.intern_acl(acl);
        let Some(parent) = self.nodes.get_mut(parent_path.as_str()) else {
            return Err(code::NO_NODE);
        };
        if parent.children.contains(name) {
            // Only replay over a fuzzy snapshot gets here (prep never makes such a txn): the node
            // was captured, but the parent's counters may predate it.
            if parent_cversion > parent.stat.cversion {
                parent.stat.cversion = parent_cversion;
                parent.stat.pzxid = hdr.zxid;
            }
            return Err(code::NODE_EXISTS);
        }
        // Replay of a fuzzy snapshot may see this create twice: only move forward.
        if parent_cversion > parent.stat.cversion {
            parent.stat.cversion = parent_cversion;
            parent.stat.pzxid = hdr.zxid;
        }
        parent.children.insert(name.into());
        let parent_acl = parent.acl.clone();
        let node_acl = acl.clone();
        let node = Node {
            data,
            acl,
            stat: StatPersisted::created(hdr.zxid, hdr.time_ms, ephemeral_owner),
            children: BTreeSet::new(),
        };
        let stat = node.client_stat();
        self.data_size_bytes += (path.len() + node.data.len()) as u64;
        self.nodes.insert(path.into(), node);
        match EphemeralKind::of(ephemeral_owner) {
            EphemeralKind::Persistent => {}
            EphemeralKind::Container => {
                self.containers.insert(path.to_string());
            }
            EphemeralKind::Ttl(_) => {
                self.ttls.insert(path.to_string());
            }
            EphemeralKind::Ephemeral(owner) => {
                self.ephemerals.entry(owner).or_default().insert(path.to_string());
            }
        }
        if let Some((target, is_limit)) = quota::quota_target(&parent_path, name) {
            if is_limit {
                self.quotas.insert(target);
            } else {
                self.recount_quota(&target);
            }
        }
        let bytes = self.nodes.get(path).map_or(0, |n| n.data.len() as i64);
        self.update_quota_usage(path, bytes, 1);
        triggers.push(WatchTrigger { path: path.to_string(), kind: TriggerKind::Created, acl: node_acl });
        triggers.push(WatchTrigger { path: parent_path, kind: TriggerKind::ChildrenChanged, acl: parent_acl });
        Ok(stat)
    }

    fn delete_node(&mut self, path: &str, zxid: i64, triggers: &mut Vec<WatchTrigger>) -> Result<(), i32> {
        let Some(node) = self.nodes.remove(path) else {
            // Replay over a fuzzy snapshot: the node is gone already, the parent may not know.
            if let Some(parent) = self.nodes.get_mut(path::parent(path)) {
                if zxid > parent.stat.pzxid {
                    parent.stat.pzxid = zxid;
                }
            }
            return Err(code::NO_NODE);
        };
        debug_assert!(node.children.is_empty(), "deleted node {path} has children");
        self.data_size_bytes -= (path.len() + node.data.len()) as u64;
        let parent_path = path::parent(path).to_string();
        let mut parent_acl = node.acl.clone();
        if let Some(parent) = self.nodes.get_mut(parent_path.as_str()) {
            parent_acl = parent.acl.clone();
            parent.children.remove(path::name(path));
            // A replayed delete must not move pzxid back behind a later create.
            if zxid > parent.stat.pzxid {
                parent.stat.pzxid = zxid;
            }
        }
        match EphemeralKind::of(node.stat.ephemeral_owner) {
            EphemeralKind::Persistent => {}
            EphemeralKind::Container => {
                self.containers.remove(path);
            }
            EphemeralKind::Ttl(_) => {
                self.ttls.remove(path);
            }
            EphemeralKind::Ephemeral(owner) => {
                if let Some(set) = self.ephemerals.get_mut(&owner) {
                    set.remove(path);
                    if set.is_empty() {
                        self.ephemerals.remove(&owner);
                    }
                }
            }
        }
        if let Some((target, true)) = quota::quota_target(&parent_path, path::name(path)) {
            self.quotas.remove(&target);
        }
        self.update_quota_usage(path, -(node.data.len() as i64), -1);
        triggers.push(WatchTrigger { path: path.to_string(), kind: TriggerKind::Deleted, acl: node.acl.clone() });
        triggers.push(WatchTrigger { path: parent_path, kind: TriggerKind::ChildrenChanged, acl: parent_acl });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(zxid: i64) -> TxnHeader {
        TxnHeader { session_id: 7, cxid: 0, zxid, time_ms: 1000 + zxid }
    }

    fn create(path: &str, owner: i64, parent_cversion: i32) -> Txn {
        Txn::Create {
            path: path.into(),
            data: b"x".to_vec(),
            acl: acl::open_acl_unsafe(),
            ephemeral_owner: owner,
            parent_cversion,
        }
    }

    #[test]
    fn fresh_tree_matches_zookeeper() {
        let t = DataTree::new();
        assert_eq!(t.node_count(), 4);
        assert_eq!(t.approximate_data_size(), 44, "what a fresh ZooKeeper reports");
        assert_eq!(t.get("/").map(|n| n.client_stat().cversion), Some(-1));
        assert_eq!(t.get(ZOOKEEPER_PATH).map(|n| n.client_stat().cversion), Some(-2));
        assert_eq!(t.get(CONFIG_PATH).map(|n| n.stat.aversion), Some(-1));
    }

    #[test]
    fn create_updates_parent_and_delete_keeps_cversion_of_creations() {
        let mut t = DataTree::new();
        let r = t.apply(&hdr(1), &create("/a", 0, 1));
        assert_eq!(r.result.err, 0);
        let root = t.get("/").map(|n| n.stat).unwrap_or_default();
        assert_eq!((root.cversion, root.pzxid), (1, 1));
        let r = t.apply(&hdr(2), &Txn::Delete { path: "/a".into() });
        assert_eq!(r.result.err, 0);
        let root = t.get("/").map(|n| n.client_stat()).unwrap_or_default();
        // One creation under a root whose /zookeeper child was never "created": 2*1 - 1.
        assert_eq!((root.cversion, root.pzxid, root.num_children), (1, 2, 1));
    }

    #[test]
    fn close_session_removes_its_ephemerals() {
        let mut t = DataTree::new();
        t.apply(&hdr(1), &create("/e", 7, 1));
        assert_eq!(t.ephemeral_count(), 1);
        let r = t.apply(&hdr(2), &Txn::CloseSession);
        assert!(t.get("/e").is_none());
        assert_eq!(t.ephemeral_count(), 0);
        assert!(r.triggers.iter().any(|w| w.kind == TriggerKind::Deleted && w.path == "/e"));
    }

    #[test]
    fn quota_stats_follow_changes_below_the_quota_path() {
        let mut t = DataTree::new();
        let mut zxid = 0;
        let mut create = |t: &mut DataTree, p: &str, data: &[u8]| {
            zxid += 1;
            let parent_cversion = t.get(path::parent(p)).map_or(0, |n| n.stat.cversion) + 1;
            let txn = Txn::Create {
                path: p.into(),
                data: data.to_vec(),
                acl: acl::open_acl_unsafe(),
                ephemeral_owner: 0,
                parent_cversion,
            };
            assert_eq!(t.apply(&hdr(zxid), &txn).result.err, 0, "{p}");
        };
        create(&mut t, "/q", b"ab");
        create(&mut t, "/zookeeper/quota/q", b"");
        create(&mut t, "/zookeeper/quota/q/zookeeper_limits", b"count=-1,bytes=-1,countHardLimit=3");
        create(&mut t, "/zookeeper/quota/q/zookeeper_stats", b"");
        let stats =
            |t: &DataTree| t.get("/zookeeper/quota/q/zookeeper_stats").map(|n| n.data.clone()).unwrap_or_default();
        assert_eq!(stats(&t), b"count=1,bytes=2");
        create(&mut t, "/q/x", b"123");
        assert_eq!(stats(&t), b"count=2,bytes=5");
        assert_eq!(t.quota_check("/q/y", 0, 1), Ok(()));
        create(&mut t, "/q/y", b"");
        assert_eq!(t.quota_check("/q/z", 0, 1), Err(code::QUOTA_EXCEEDED));
        assert_eq!(t.quota_check("/other", 0, 1), Ok(()));
    }

    #[test]
    fn failed_multi_changes_nothing() {
        let mut t = DataTree::new();
        let m = Txn::Multi(vec![Txn::Error { err: 0 }, Txn::Error { err: code::NO_NODE }]);
        let r = t.apply(&hdr(1), &m);
        assert_eq!(r.multi.iter().map(|o| o.err).collect::<Vec<_>>(), vec![0, code::NO_NODE]);
        assert_eq!(t.node_count(), 4);
        assert_eq!(t.approximate_data_size(), 44, "what a fresh ZooKeeper reports");
        assert_eq!(t.last_zxid(), 1);
    }
}
