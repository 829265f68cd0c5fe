//! ACL values as ZooKeeper stores them: a permission mask and an (scheme, id) identity.

use std::sync::Arc;

/// Permission bits of `ZooDefs.Perms`.
pub mod perms {
    pub const READ: i32 = 1;
    pub const WRITE: i32 = 2;
    pub const CREATE: i32 = 4;
    pub const DELETE: i32 = 8;
    pub const ADMIN: i32 = 16;
    pub const ALL: i32 = READ | WRITE | CREATE | DELETE | ADMIN;
}

/// An identity in an auth scheme (`world:anyone`, `digest:user:hash`, `ip:10.0.0.0/8`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id {
    pub scheme: String,
    pub id: String,
}

impl Id {
    /// Builds an identity from its two parts.
    pub fn new(scheme: &str, id: &str) -> Id {
        Id { scheme: scheme.to_string(), id: id.to_string() }
    }
}

/// One ACL entry: who, and what they may do.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Acl {
    pub perms: i32,
    pub id: Id,
}

/// An ACL list shared between every node that carries it, as ZooKeeper's ACL cache shares them.
pub type AclList = Arc<[Acl]>;

/// `world:anyone` with every permission: `ZooDefs.Ids.OPEN_ACL_UNSAFE`.
pub fn open_acl_unsafe() -> Vec<Acl> {
    vec![Acl { perms: perms::ALL, id: Id::new("world", "anyone") }]
}

/// `world:anyone` read-only: `ZooDefs.Ids.READ_ACL_UNSAFE`, the ACL of `/zookeeper/config`.
pub fn read_acl_unsafe() -> Vec<Acl> {
    vec![Acl { perms: perms::READ, id: Id::new("world", "anyone") }]
}
