//! Transactions: the records that a write request becomes once it has been checked.
//!
//! Every write consumes a zxid, including a failed one (an `Error` txn), as in ZooKeeper, so a
//! client sees the same zxids from Paddock as from ZooKeeper for the same history.

use crate::acl::Acl;

/// Who issued a txn and where it sits in history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnHeader {
    pub session_id: i64,
    pub cxid: i32,
    pub zxid: i64,
    pub time_ms: i64,
}

/// A change to the tree, already validated against the state it will apply to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Txn {
    /// A session opened; the session table records it, the tree has nothing to do.
    CreateSession {
        timeout_ms: i32,
    },
    /// The issuing session ended: its ephemeral nodes go.
    CloseSession,
    /// A node is created; `parent_cversion` is the parent's stored cversion after it.
    Create {
        path: String,
        data: Vec<u8>,
        acl: Vec<Acl>,
        ephemeral_owner: i64,
        parent_cversion: i32,
    },
    Delete {
        path: String,
    },
    /// `version` is the node's new version.
    SetData {
        path: String,
        data: Vec<u8>,
        version: i32,
    },
    /// `version` is the node's new aversion.
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    /// A version check that passed; changes nothing.
    Check {
        path: String,
    },
    /// All or nothing: a failed multi holds only `Error` txns.
    Multi(Vec<Txn>),
    /// A write that failed its checks, carrying ZooKeeper's error code.
    Error {
        err: i32,
    },
}
