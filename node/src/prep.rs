//! Request preparation, ZooKeeper's `PrepRequestProcessor`: a write request is checked against
//! the tree (plus the changes of earlier ops of the same multi) and becomes a txn. The order of
//! the checks is ZooKeeper's, because it decides which error a client sees.

use std::collections::HashMap;

use engine::stat::{EphemeralKind, TTL_MAX_MS};
use engine::tree::{CONFIG_PATH, QUOTA_PATH, ZOOKEEPER_PATH};
use engine::{code, path, perms, DataTree, Id, NodeMeta, StatPersisted, Txn};

use crate::auth;
use crate::proto::{create_flags, op, Request};

/// Who asks, and the zxid and time the txn will carry.
pub struct PrepContext<'a> {
    pub session_id: i64,
    pub auth: &'a [Id],
    pub zxid: i64,
    pub time_ms: i64,
    /// `extendedTypesEnabled`: TTL nodes allowed.
    pub extended_types: bool,
    /// `enforceQuota`: hard quota limits fail writes with QuotaExceeded.
    pub enforce_quota: bool,
}

/// Prepares txns against the tree seen through the changes already prepared (`outstandingChanges`).
pub struct Prep<'a> {
    tree: &'a DataTree,
    ctx: PrepContext<'a>,
    overlay: HashMap<String, Option<NodeMeta>>,
}

/// `checkAndIncVersion`: -1 matches any version.
fn next_version(current: i32, expected: i32) -> Result<i32, i32> {
    if expected != -1 && expected != current {
        return Err(code::BAD_VERSION);
    }
    Ok(current.wrapping_add(1))
}

/// The parent as ZooKeeper computes it: the text before the last `/`, unvalidated, so a bad
/// path often fails with NoNode on its "parent" before its own validation.
fn raw_parent(p: &str) -> Option<&str> {
    match p.rfind('/') {
        None => None,
        Some(0) => Some("/"),
        Some(i) => Some(&p[..i]),
    }
}

fn validate(p: &str) -> Result<(), i32> {
    path::validate(p).map_err(|_| code::BAD_ARGUMENTS)
}

/// The op a multi records for a create: ZooKeeper rebuilds it from the flags, so a create2 in a
/// multi answers like a create, and a container or TTL flag picks those opcodes.
pub fn multi_create_op(flags: i32) -> i32 {
    match flags {
        create_flags::CONTAINER => op::CREATE_CONTAINER,
        create_flags::PERSISTENT_WITH_TTL | create_flags::PERSISTENT_SEQUENTIAL_WITH_TTL => op::CREATE_TTL,
        _ => op::CREATE,
    }
}

impl<'a> Prep<'a> {
    pub fn new(tree: &'a DataTree, ctx: PrepContext<'a>) -> Prep<'a> {
        Prep { tree, ctx, overlay: HashMap::new() }
    }

    fn record(&self, p: &str) -> Result<NodeMeta, i32> {
        match self.overlay.get(p) {
            Some(Some(m)) => Ok(m.clone()),
            Some(None) => Err(code::NO_NODE),
            None => self.tree.meta(p).ok_or(code::NO_NODE),
        }
    }

    /// Prepares one request of opcode `op`; Err carries the error code of the failed check.
    pub fn prepare(&mut self, opcode: i32, req: &Request) -> Result<Txn, i32> {
        match req {
            Request::Create { path, data, acl, flags, ttl } => self.create(opcode, path, data, acl, *flags, *ttl),
            Request::Delete { path, version } => self.delete(path, *version, opcode == op::DELETE_CONTAINER),
            Request::SetData { path, data, version } => {
                validate(path)?;
                let mut rec = self.record(path)?;
                auth::check(&rec.acl, perms::WRITE, self.ctx.auth)?;
                let version = next_version(rec.stat.version, *version)?;
                if self.ctx.enforce_quota {
                    self.tree.quota_check(path, data.len() as i64 - rec.data_length as i64, 0)?;
                }
                rec.stat.version = version;
                rec.stat.mzxid = self.ctx.zxid;
                rec.stat.mtime = self.ctx.time_ms;
                rec.data_length = data.len();
                self.overlay.insert(path.clone(), Some(rec));
                Ok(Txn::SetData { path: path.clone(), data: data.clone(), version })
            }
            Request::SetAcl { path, acl, version } => {
                validate(path)?;
                let acl = auth::fixup(acl, self.ctx.auth)?;
                let mut rec = self.record(path)?;
                auth::check(&rec.acl, perms::ADMIN, self.ctx.auth)?;
                let version = next_version(rec.stat.aversion, *version)?;
                rec.stat.aversion = version;
                rec.acl = acl.clone().into();
                self.overlay.insert(path.clone(), Some(rec));
                Ok(Txn::SetAcl { path: path.clone(), acl, version })
            }
            Request::Check { path, version } => {
                validate(path)?;
                let rec = self.record(path)?;
                auth::check(&rec.acl, perms::READ, self.ctx.auth)?;
                next_version(rec.stat.version, *version)?;
                Ok(Txn::Check { path: path.clone() })
            }
            Request::Multi(ops) => Ok(self.multi(ops)),
            Request::CloseSession => Ok(Txn::CloseSession),
            Request::Reconfig { .. } => Err(code::RECONFIG_DISABLED),
            _ => Err(code::UNIMPLEMENTED),
        }
    }

    fn multi(&mut self, ops: &[(i32, Request)]) -> Txn {
        let mut txns = Vec::with_capacity(ops.len());
        let mut failed = false;
        for (sub_op, req) in ops {
            if failed {
                txns.push(Txn::Error { err: code::RUNTIME_INCONSISTENCY });
                continue;
            }
            let effective = match req {
                Request::Create { flags, .. } => multi_create_op(*flags),
                _ => *sub_op,
            };
            match self.prepare(effective, req) {
                Ok(t) => txns.push(t),
                Err(err) => {
                    failed = true;
                    // Ops before the failure report OK; their changes are discarded.
                    for t in txns.iter_mut() {
                        *t = Txn::Error { err: code::OK };
                    }
                    txns.push(Txn::Error { err });
                }
            }
        }
        if failed {
            self.overlay.clear();
        }
        Txn::Multi(txns)
    }

    fn create(
        &mut self,
        opcode: i32,
        p: &str,
        data: &[u8],
        acl: &[engine::Acl],
        flags: i32,
        ttl: i64,
    ) -> Result<Txn, i32> {
        if !(create_flags::PERSISTENT..=create_flags::PERSISTENT_SEQUENTIAL_WITH_TTL).contains(&flags) {
            return Err(code::BAD_ARGUMENTS);
        }
        let is_ttl_mode =
            matches!(flags, create_flags::PERSISTENT_WITH_TTL | create_flags::PERSISTENT_SEQUENTIAL_WITH_TTL);
        let sequential = matches!(
            flags,
            create_flags::PERSISTENT_SEQUENTIAL
                | create_flags::EPHEMERAL_SEQUENTIAL
                | create_flags::PERSISTENT_SEQUENTIAL_WITH_TTL
        );
        let ephemeral = matches!(flags, create_flags::EPHEMERAL | create_flags::EPHEMERAL_SEQUENTIAL);
        if is_ttl_mode && !self.ctx.extended_types {
            return Err(code::UNIMPLEMENTED);
        }
        // EphemeralType.validateTTL: a TTL mode needs 0 < ttl <= max; other modes take no TTL.
        if is_ttl_mode && (ttl <= 0 || ttl > TTL_MAX_MS) || !is_ttl_mode && ttl >= 0 {
            return Err(code::BAD_ARGUMENTS);
        }
        let parent_path = match raw_parent(p) {
            Some(pp) if !p.contains('\0') => pp.to_string(),
            _ => return Err(code::BAD_ARGUMENTS),
        };
        let acl = auth::fixup(acl, self.ctx.auth)?;
        let mut parent = self.record(&parent_path)?;
        auth::check(&parent.acl, perms::CREATE, self.ctx.auth)?;
        let path = if sequential { format!("{p}{:010}", parent.stat.cversion) } else { p.to_string() };
        validate(&path)?;
        if self.record(&path).is_ok() {
            return Err(code::NODE_EXISTS);
        }
        if matches!(EphemeralKind::of(parent.stat.ephemeral_owner), EphemeralKind::Ephemeral(_)) {
            return Err(code::NO_CHILDREN_FOR_EPHEMERALS);
        }
        if self.ctx.enforce_quota {
            self.tree.quota_check(&path, data.len() as i64, 1)?;
        }
        let parent_cversion = parent.stat.cversion.wrapping_add(1);
        let ephemeral_owner = match opcode {
            op::CREATE_CONTAINER => engine::stat::CONTAINER_EPHEMERAL_OWNER,
            op::CREATE_TTL => EphemeralKind::ttl_owner(ttl),
            _ if ephemeral => self.ctx.session_id,
            _ => 0,
        };
        parent.stat.cversion = parent_cversion;
        parent.stat.pzxid = self.ctx.zxid;
        parent.num_children += 1;
        self.overlay.insert(parent_path, Some(parent));
        let node = NodeMeta {
            stat: StatPersisted::created(self.ctx.zxid, self.ctx.time_ms, ephemeral_owner),
            num_children: 0,
            acl: acl.clone().into(),
            data_length: data.len(),
        };
        self.overlay.insert(path.clone(), Some(node));
        Ok(Txn::Create { path, data: data.to_vec(), acl, ephemeral_owner, parent_cversion })
    }

    /// `getParentPathAndValidate`: no path validation beyond a slash and no NUL, so `/a/` and
    /// `/a//b` fail with NoNode on their raw "parent", as in ZooKeeper.
    fn delete(&mut self, p: &str, version: i32, container: bool) -> Result<Txn, i32> {
        if p.contains('\0') || matches!(p, "/" | ZOOKEEPER_PATH | QUOTA_PATH | CONFIG_PATH) {
            return Err(code::BAD_ARGUMENTS);
        }
        let parent_path = raw_parent(p).ok_or(code::BAD_ARGUMENTS)?.to_string();
        let mut parent = self.record(&parent_path)?;
        if !container {
            auth::check(&parent.acl, perms::DELETE, self.ctx.auth)?;
        }
        let rec = self.record(p)?;
        if container {
            if rec.num_children > 0 {
                return Err(code::NOT_EMPTY);
            }
            if !matches!(EphemeralKind::of(rec.stat.ephemeral_owner), EphemeralKind::Container | EphemeralKind::Ttl(_))
            {
                return Err(code::BAD_VERSION);
            }
        } else {
            next_version(rec.stat.version, version)?;
            if rec.num_children > 0 {
                return Err(code::NOT_EMPTY);
            }
        }
        parent.num_children -= 1;
        parent.stat.pzxid = self.ctx.zxid;
        self.overlay.insert(parent_path, Some(parent));
        self.overlay.insert(p.to_string(), None);
        Ok(Txn::Delete { path: p.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(ids: &[Id]) -> PrepContext<'_> {
        PrepContext { session_id: 9, auth: ids, zxid: 1, time_ms: 5, extended_types: true, enforce_quota: false }
    }

    fn create(path: &str, flags: i32) -> Request {
        Request::Create { path: path.into(), data: vec![], acl: engine::acl::open_acl_unsafe(), flags, ttl: -1 }
    }

    #[test]
    fn bad_parent_path_is_no_node_before_bad_arguments() {
        let tree = DataTree::new();
        let ids = [];
        let mut p = Prep::new(&tree, ctx(&ids));
        assert_eq!(p.prepare(op::CREATE, &create("/a//b", 0)), Err(code::NO_NODE));
        assert_eq!(p.prepare(op::CREATE, &create("/zookeeper/", 0)), Err(code::BAD_ARGUMENTS));
        assert_eq!(p.prepare(op::CREATE, &create("a", 0)), Err(code::BAD_ARGUMENTS));
    }

    #[test]
    fn sequential_suffix_is_parent_cversion() {
        let tree = DataTree::new();
        let ids = [];
        let mut p = Prep::new(&tree, ctx(&ids));
        let t = p.prepare(op::CREATE, &create("/s-", create_flags::PERSISTENT_SEQUENTIAL));
        assert!(matches!(t, Ok(Txn::Create { ref path, .. }) if path == "/s-0000000000"));
        let t = p.prepare(op::CREATE, &create("/s-", create_flags::PERSISTENT_SEQUENTIAL));
        assert!(matches!(t, Ok(Txn::Create { ref path, .. }) if path == "/s-0000000001"));
    }

    #[test]
    fn failed_multi_reports_ok_before_and_runtime_inconsistency_after() {
        let tree = DataTree::new();
        let ids = [];
        let mut p = Prep::new(&tree, ctx(&ids));
        let ops = vec![
            (op::CREATE, create("/a", 0)),
            (op::DELETE, Request::Delete { path: "/nope".into(), version: -1 }),
            (op::CREATE, create("/b", 0)),
        ];
        let t = p.prepare(op::MULTI, &Request::Multi(ops));
        assert_eq!(
            t,
            Ok(Txn::Multi(vec![
                Txn::Error { err: 0 },
                Txn::Error { err: code::NO_NODE },
                Txn::Error { err: code::RUNTIME_INCONSISTENCY }
            ]))
        );
    }
}
