//! Paddock's storage engine: the ZooKeeper data tree and the transactions that change it.
//!
//! The engine knows nothing of sockets or sessions' connections. A transaction (`Txn`) is the
//! unit that a log records, a quorum replicates and the tree applies; applying one is
//! deterministic, so every replica that applies the same sequence holds the same tree.

pub mod acl;
pub mod codec;
pub mod log;
pub mod path;
pub mod purge;
pub mod quota;
pub mod recovery;
pub mod snapshot;
pub mod stat;
pub mod tree;
pub mod txn;
pub mod wal;
pub mod zookeeper;

pub use acl::{perms, Acl, AclList, Id};
pub use stat::{EphemeralKind, Stat, StatPersisted};
pub use tree::{ApplyResult, DataTree, NodeMeta, OpResult, TriggerKind, WatchTrigger};
pub use txn::{Txn, TxnHeader};

/// ZooKeeper's error codes (`KeeperException.Code`), shared by the engine and the wire protocol.
pub mod code {
    pub const OK: i32 = 0;
    pub const SYSTEM_ERROR: i32 = -1;
    pub const RUNTIME_INCONSISTENCY: i32 = -2;
    pub const DATA_INCONSISTENCY: i32 = -3;
    pub const CONNECTION_LOSS: i32 = -4;
    pub const MARSHALLING_ERROR: i32 = -5;
    pub const UNIMPLEMENTED: i32 = -6;
    pub const OPERATION_TIMEOUT: i32 = -7;
    pub const BAD_ARGUMENTS: i32 = -8;
    pub const UNKNOWN_SESSION: i32 = -12;
    pub const NEW_CONFIG_NO_QUORUM: i32 = -13;
    pub const RECONFIG_IN_PROGRESS: i32 = -14;
    pub const API_ERROR: i32 = -100;
    pub const NO_NODE: i32 = -101;
    pub const NO_AUTH: i32 = -102;
    pub const BAD_VERSION: i32 = -103;
    pub const NO_CHILDREN_FOR_EPHEMERALS: i32 = -108;
    pub const NODE_EXISTS: i32 = -110;
    pub const NOT_EMPTY: i32 = -111;
    pub const SESSION_EXPIRED: i32 = -112;
    pub const INVALID_CALLBACK: i32 = -113;
    pub const INVALID_ACL: i32 = -114;
    pub const AUTH_FAILED: i32 = -115;
    pub const SESSION_MOVED: i32 = -118;
    pub const NOT_READ_ONLY: i32 = -119;
    pub const EPHEMERAL_ON_LOCAL_SESSION: i32 = -120;
    pub const NO_WATCHER: i32 = -121;
    pub const REQUEST_TIMEOUT: i32 = -122;
    pub const RECONFIG_DISABLED: i32 = -123;
    pub const SESSION_CLOSED_REQUIRE_SASL_AUTH: i32 = -124;
    pub const QUOTA_EXCEEDED: i32 = -125;
    pub const THROTTLED: i32 = -127;
}
