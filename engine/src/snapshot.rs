//! Snapshots (engine/FORMAT.md): a header, a stream of ACL, session and node entries, and a
//! trailer with a CRC32C over everything before it. Written incrementally while the tree keeps
//! changing (fuzzy: the header's zxid is the last txn applied when the snapshot began, and
//! replaying the log from there is idempotent); read back through mmap.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::acl::AclList;
use crate::codec::{CodecError, Dec, Enc};
use crate::tree::{DataTree, Node};

/// First bytes of a snapshot.
pub const SNAP_MAGIC: &[u8; 8] = b"PDKSNAP1";
/// Last bytes of a complete snapshot.
pub const SNAP_END_MAGIC: &[u8; 8] = b"PDKEND01";
/// Format version.
pub const SNAP_VERSION: u32 = 1;
/// Prefix of snapshot file names; the rest is the zxid in 16 hex digits.
pub const SNAPSHOT_PREFIX: &str = "snapshot.";

const TAG_ACL: u8 = 1;
const TAG_SESSION: u8 = 2;
const TAG_NODE: u8 = 3;
const TAG_END: u8 = 0xff;
const HEADER_BYTES: usize = 32;
const TRAILER_BYTES: usize = 4 + 8;

/// The file name of a snapshot taken from `zxid`.
pub fn snapshot_name(zxid: i64) -> String {
    format!("{SNAPSHOT_PREFIX}{zxid:016x}")
}

/// Snapshots in a directory, newest first.
pub fn list_snapshots(dir: &Path) -> std::io::Result<Vec<(i64, PathBuf)>> {
    let mut out = crate::log::list_by_zxid(dir, SNAPSHOT_PREFIX)?;
    out.reverse();
    Ok(out)
}

/// Builds a snapshot's bytes piece by piece; the caller writes each piece as it comes.
pub struct SnapshotWriter {
    /// ACL lists already written, kept alive so their addresses are not reused while we run.
    acl_ids: HashMap<*const [crate::acl::Acl], (u32, AclList)>,
    out: Vec<u8>,
    crc: u32,
    nodes: u64,
    sessions: u64,
}

impl SnapshotWriter {
    /// Starts a snapshot of a tree whose last applied zxid is `zxid`.
    pub fn new(zxid: i64, time_ms: i64) -> SnapshotWriter {
        let mut out = Vec::with_capacity(1 << 20);
        out.extend_from_slice(SNAP_MAGIC);
        out.extend_from_slice(&SNAP_VERSION.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&zxid.to_be_bytes());
        out.extend_from_slice(&time_ms.to_be_bytes());
        debug_assert_eq!(out.len(), HEADER_BYTES);
        SnapshotWriter { acl_ids: HashMap::new(), out, crc: 0, nodes: 0, sessions: 0 }
    }

    pub fn add_session(&mut self, id: i64, timeout_ms: i32) {
        let mut e = Enc(&mut self.out);
        e.u8(TAG_SESSION);
        e.i64(id);
        e.i32(timeout_ms);
        self.sessions += 1;
    }

    pub fn add_node(&mut self, path: &str, node: &Node) {
        let key = Arc::as_ptr(&node.acl);
        let acl_id = match self.acl_ids.get(&key) {
            Some((id, _)) => *id,
            None => {
                let id = self.acl_ids.len() as u32;
                self.acl_ids.insert(key, (id, node.acl.clone()));
                let mut e = Enc(&mut self.out);
                e.u8(TAG_ACL);
                e.u32(id);
                e.acls(&node.acl);
                id
            }
        };
        let mut e = Enc(&mut self.out);
        e.u8(TAG_NODE);
        e.str(path);
        e.u32(acl_id);
        e.stat(&node.stat);
        e.bytes(&node.data);
        self.nodes += 1;
    }

    /// Bytes produced so far and not taken yet.
    pub fn pending_bytes(&self) -> usize {
        self.out.len()
    }

    /// Takes the bytes produced so far, to be written next.
    pub fn take(&mut self) -> Vec<u8> {
        let chunk = std::mem::take(&mut self.out);
        self.crc = crc32c::crc32c_append(self.crc, &chunk);
        chunk
    }

    /// The last bytes: counts, checksum, end magic.
    pub fn finish(mut self) -> Vec<u8> {
        let mut e = Enc(&mut self.out);
        e.u8(TAG_END);
        e.i64(self.nodes as i64);
        e.i64(self.sessions as i64);
        let mut last = self.take();
        last.extend_from_slice(&self.crc.to_be_bytes());
        last.extend_from_slice(SNAP_END_MAGIC);
        last
    }

    /// Writes a whole tree at once (tools and tests; the server writes in chunks).
    pub fn whole(tree: &DataTree, time_ms: i64) -> Vec<u8> {
        let mut w = SnapshotWriter::new(tree.last_zxid(), time_ms);
        for (id, timeout) in tree.sessions() {
            w.add_session(*id, *timeout);
        }
        let mut out = Vec::new();
        for p in tree.paths() {
            if let Some(n) = tree.get(&p) {
                w.add_node(&p, n);
            }
        }
        out.extend(w.take());
        out.extend(w.finish());
        out
    }
}

/// Why a snapshot cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0}: incomplete (no end marker)")]
    Incomplete(String),
    #[error("{0}: checksum mismatch")]
    Checksum(String),
    #[error("{0}: not a Paddock snapshot or unsupported version")]
    Header(String),
    #[error("{0}: bad entry: {1}")]
    Entry(String, CodecError),
}

/// What a snapshot holds.
pub struct LoadedSnapshot {
    pub zxid: i64,
    pub time_ms: i64,
    pub nodes: Vec<(String, Node)>,
    pub sessions: BTreeMap<i64, i32>,
}

/// Checks and decodes snapshot bytes (`name` is used in errors).
pub fn decode(bytes: &[u8], name: &str) -> Result<LoadedSnapshot, SnapshotError> {
    let mut nodes = Vec::new();
    let head = decode_with(bytes, name, |p, n| nodes.push((p, n)))?;
    Ok(LoadedSnapshot { zxid: head.zxid, time_ms: head.time_ms, nodes, sessions: head.sessions })
}

/// What a snapshot holds besides its nodes.
pub struct SnapshotHead {
    pub zxid: i64,
    pub time_ms: i64,
    pub sessions: BTreeMap<i64, i32>,
    pub node_count: usize,
}

/// The node count a complete snapshot declares in its end entry, read before decoding, so a
/// loader can size its tables once.
pub fn declared_node_count(bytes: &[u8]) -> usize {
    let end = bytes.len().saturating_sub(TRAILER_BYTES + 16);
    bytes.get(end..end + 8).map_or(0, |b| {
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        i64::from_be_bytes(a).clamp(0, 1 << 32) as usize
    })
}

/// Checks snapshot bytes, then hands each node to `sink` as it is decoded.
pub fn decode_with(
    bytes: &[u8],
    name: &str,
    mut sink: impl FnMut(String, Node),
) -> Result<SnapshotHead, SnapshotError> {
    if bytes.len() < HEADER_BYTES + TRAILER_BYTES || &bytes[bytes.len() - 8..] != SNAP_END_MAGIC {
        return Err(SnapshotError::Incomplete(name.to_string()));
    }
    let body = &bytes[..bytes.len() - TRAILER_BYTES];
    let crc_at = bytes.len() - TRAILER_BYTES;
    let crc = u32::from_be_bytes([bytes[crc_at], bytes[crc_at + 1], bytes[crc_at + 2], bytes[crc_at + 3]]);
    if crc32c::crc32c(body) != crc {
        return Err(SnapshotError::Checksum(name.to_string()));
    }
    let entry = |e| SnapshotError::Entry(name.to_string(), e);
    if &body[..8] != SNAP_MAGIC {
        return Err(SnapshotError::Header(name.to_string()));
    }
    let mut d = Dec::new(body);
    d.pos = 8;
    if d.u32().map_err(entry)? != SNAP_VERSION {
        return Err(SnapshotError::Header(name.to_string()));
    }
    d.u32().map_err(entry)?;
    let zxid = d.i64().map_err(entry)?;
    let time_ms = d.i64().map_err(entry)?;
    let mut acls: Vec<AclList> = Vec::new();
    let mut node_count = 0usize;
    let mut sessions = BTreeMap::new();
    loop {
        match d.u8().map_err(entry)? {
            TAG_ACL => {
                let id = d.u32().map_err(entry)? as usize;
                let list: AclList = Arc::from(d.acls().map_err(entry)?);
                if id != acls.len() {
                    return Err(entry(CodecError::BadLength(id as u32, d.pos)));
                }
                acls.push(list);
            }
            TAG_SESSION => {
                let id = d.i64().map_err(entry)?;
                sessions.insert(id, d.i32().map_err(entry)?);
            }
            TAG_NODE => {
                let path = d.string().map_err(entry)?;
                let acl_id = d.u32().map_err(entry)? as usize;
                let stat = d.stat().map_err(entry)?;
                let data = d.bytes().map_err(entry)?.to_vec();
                let acl =
                    acls.get(acl_id).cloned().ok_or_else(|| entry(CodecError::BadLength(acl_id as u32, d.pos)))?;
                sink(path, Node { data, acl, stat, children: Default::default() });
                node_count += 1;
            }
            TAG_END => {
                let (n, s) = (d.i64().map_err(entry)?, d.i64().map_err(entry)?);
                if n as usize != node_count || s as usize != sessions.len() || d.remaining() != 0 {
                    return Err(entry(CodecError::BadLength(n as u32, d.pos)));
                }
                return Ok(SnapshotHead { zxid, time_ms, sessions, node_count });
            }
            other => return Err(entry(CodecError::UnknownTag(other, d.pos))),
        }
    }
}

fn map(path: &Path) -> Result<memmap2::Mmap, SnapshotError> {
    let io = |source| SnapshotError::Io { path: path.display().to_string(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    // SAFETY: snapshot files are written once, renamed into place and never modified after.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    // Read ahead: the whole file is about to be checksummed and decoded in order.
    let _ = map.advise(memmap2::Advice::Sequential);
    Ok(map)
}

/// Maps a snapshot file and decodes it.
pub fn load(path: &Path) -> Result<LoadedSnapshot, SnapshotError> {
    decode(&map(path)?, &path.display().to_string())
}

/// Maps a snapshot file and decodes it straight into a tree.
pub fn load_tree(path: &Path) -> Result<(DataTree, i64), SnapshotError> {
    let bytes = map(path)?;
    let mut builder = crate::tree::TreeBuilder::new(declared_node_count(&bytes));
    let head = decode_with(&bytes, &path.display().to_string(), |p, n| builder.add(p, n))?;
    Ok((builder.finish(head.sessions, head.zxid), head.zxid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl;
    use crate::txn::{Txn, TxnHeader};

    fn sample_tree() -> DataTree {
        let mut t = DataTree::new();
        let h = |z| TxnHeader { session_id: 42, cxid: 0, zxid: z, time_ms: 1000 + z };
        t.apply(&h(1), &Txn::CreateSession { timeout_ms: 4000 });
        let create = |p: &str, owner, cv| Txn::Create {
            path: p.into(),
            data: p.as_bytes().to_vec(),
            acl: acl::open_acl_unsafe(),
            ephemeral_owner: owner,
            parent_cversion: cv,
        };
        t.apply(&h(2), &create("/a", 0, 1));
        t.apply(&h(3), &create("/a/b", 0, 1));
        t.apply(&h(4), &create("/e", 42, 2));
        t.apply(&h(5), &Txn::SetAcl { path: "/a/b".into(), acl: acl::read_acl_unsafe(), version: 1 });
        t
    }

    #[test]
    fn a_snapshot_round_trips_the_tree() {
        let t = sample_tree();
        let bytes = SnapshotWriter::whole(&t, 99);
        let s = decode(&bytes, "mem").expect("decode");
        assert_eq!((s.zxid, s.time_ms), (5, 99));
        let r = DataTree::restore(s.nodes, s.sessions, s.zxid);
        assert_eq!(r.node_count(), t.node_count());
        assert_eq!(r.sessions(), t.sessions());
        assert_eq!(r.ephemeral_count(), 1);
        for p in ["/", "/a", "/a/b", "/e", "/zookeeper/config"] {
            let (x, y) = (t.get(p).expect(p), r.get(p).expect(p));
            assert_eq!((x.client_stat(), &x.data, &x.acl), (y.client_stat(), &y.data, &y.acl), "{p}");
        }
        assert_eq!(r.approximate_data_size(), t.approximate_data_size());
    }

    #[test]
    fn any_damage_is_detected() {
        let bytes = SnapshotWriter::whole(&sample_tree(), 1);
        for i in (0..bytes.len()).step_by(7) {
            let mut b = bytes.clone();
            b[i] ^= 0x04;
            assert!(decode(&b, "mem").is_err(), "flip at {i}");
        }
        assert!(matches!(decode(&bytes[..bytes.len() - 1], "mem"), Err(SnapshotError::Incomplete(_))));
    }
}
