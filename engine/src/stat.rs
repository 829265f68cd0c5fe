//! Node metadata as ZooKeeper keeps it (`StatPersisted`) and as clients see it (`Stat`).

/// The `ephemeralOwner` value that marks a container node (`EphemeralType.CONTAINER`).
pub const CONTAINER_EPHEMERAL_OWNER: i64 = i64::MIN;
/// High byte that marks an extended ephemeral owner (TTL nodes).
const EXTENDED_MASK: u64 = 0xff00_0000_0000_0000;
/// Bits that carry the extended type; TTL is type 0.
const EXTENDED_BIT_MASK: u64 = 0x00ff_ff00_0000_0000;
/// The largest TTL that fits in an ephemeral owner, in milliseconds.
pub const TTL_MAX_MS: i64 = 0x0000_00ff_ffff_ffff;

/// What a node's `ephemeralOwner` says about its lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EphemeralKind {
    /// A persistent node.
    Persistent,
    /// Owned by a session; deleted when it ends.
    Ephemeral(i64),
    /// Deleted by the container check once its last child is gone.
    Container,
    /// Deleted once childless and unmodified for this many milliseconds.
    Ttl(i64),
}

impl EphemeralKind {
    /// Decodes an owner the way `EphemeralType.get` does.
    pub fn of(owner: i64) -> EphemeralKind {
        if owner == 0 {
            return EphemeralKind::Persistent;
        }
        if owner == CONTAINER_EPHEMERAL_OWNER {
            return EphemeralKind::Container;
        }
        let bits = owner as u64;
        if bits & EXTENDED_MASK == EXTENDED_MASK && bits & EXTENDED_BIT_MASK == 0 {
            return EphemeralKind::Ttl((bits & TTL_MAX_MS as u64) as i64);
        }
        EphemeralKind::Ephemeral(owner)
    }

    /// The owner value stored for a TTL node.
    pub fn ttl_owner(ttl_ms: i64) -> i64 {
        (EXTENDED_MASK | (ttl_ms as u64 & TTL_MAX_MS as u64)) as i64
    }
}

/// Metadata stored with a node. `cversion` counts child creations only, as ZooKeeper stores it;
/// the client-visible cversion is derived in [`StatPersisted::to_stat`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatPersisted {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub pzxid: i64,
}

/// The Stat record clients receive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stat {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub data_length: i32,
    pub num_children: i32,
    pub pzxid: i64,
}

impl StatPersisted {
    /// The stat of a node created by the txn `zxid` at `time_ms` (`DataTree.createStat`).
    pub fn created(zxid: i64, time_ms: i64, ephemeral_owner: i64) -> StatPersisted {
        StatPersisted {
            czxid: zxid,
            mzxid: zxid,
            ctime: time_ms,
            mtime: time_ms,
            version: 0,
            cversion: 0,
            aversion: 0,
            ephemeral_owner,
            pzxid: zxid,
        }
    }

    /// What a client sees (`DataNode.copyStat`): cversion counts creations and deletions, i.e.
    /// `2 * creations - children`, and container and TTL owners read as 0.
    pub fn to_stat(&self, data_length: usize, num_children: usize) -> Stat {
        let num_children = num_children as i32;
        let ephemeral_owner = match EphemeralKind::of(self.ephemeral_owner) {
            EphemeralKind::Ephemeral(owner) => owner,
            _ => 0,
        };
        Stat {
            czxid: self.czxid,
            mzxid: self.mzxid,
            ctime: self.ctime,
            mtime: self.mtime,
            version: self.version,
            cversion: self.cversion.wrapping_mul(2).wrapping_sub(num_children),
            aversion: self.aversion,
            ephemeral_owner,
            data_length: data_length as i32,
            num_children,
            pzxid: self.pzxid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ephemeral_kinds_round_trip() {
        assert_eq!(EphemeralKind::of(0), EphemeralKind::Persistent);
        assert_eq!(EphemeralKind::of(CONTAINER_EPHEMERAL_OWNER), EphemeralKind::Container);
        assert_eq!(EphemeralKind::of(EphemeralKind::ttl_owner(5000)), EphemeralKind::Ttl(5000));
        assert_eq!(EphemeralKind::of(0x0100_0000_0000_0001), EphemeralKind::Ephemeral(0x0100_0000_0000_0001));
    }

    #[test]
    fn client_cversion_counts_deletes_too() {
        // Three creations, one of them since deleted.
        let s = StatPersisted { cversion: 3, ..StatPersisted::default() };
        assert_eq!(s.to_stat(0, 2).cversion, 4);
    }
}
