//! Apache ZooKeeper's on-disk state (its `version-2/` directory), read and written from the
//! format's definitions: `zookeeper.jute` for the records, `FileSnap`/`SnapStream` for snapshots,
//! `FileTxnLog`/`Util` for transaction logs, `DataTree` and `ReferenceCountedACLCache` for the
//! tree's own serialization. Used by `paddock import zookeeper` and `paddock export zookeeper`.
//!
//! Snapshot `snapshot.<zxid hex>` (optionally `.gz` or `.snappy`, by `zookeeper.snapshot.compression.method`):
//! `FileHeader{magic "ZKSN", version 2, dbid}`, the session map (`int count`, then
//! `long id, int timeout`), the ACL cache (`int count`, then `long ref, vector<ACL>`), the nodes in
//! depth-first order as `ustring path, buffer data, long aclRef, StatPersisted` (the root's path is
//! the empty string) until the path `"/"`, then a seal: the Adler-32 of every byte before it as a
//! `long`, and the string `"/"`. Since 3.6 a `ZxidDigest{long zxid, int version, long digest}`
//! and a second seal may follow. The ACL reference -1 is `world:anyone` with every permission.
//!
//! Log `log.<first zxid hex>`: `FileHeader{magic "ZKLG", version 2, dbid}`, then per txn
//! `long adler32(entry), int length, entry, byte 'B'`, where the entry is `TxnHeader` + the txn
//! record (+ a `TxnDigest` since 3.6); zeros (pre-allocation) after the last one. A zero length
//! ends the file.
//!
//! All integers are big-endian; a jute `buffer`/`ustring`/`vector` is an `int` length (-1: null)
//! then its contents.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::acl::{self, Acl, AclList, Id};
use crate::stat::{EphemeralKind, StatPersisted, CONTAINER_EPHEMERAL_OWNER};
use crate::tree::{DataTree, Node, TreeBuilder};
use crate::txn::{Txn, TxnHeader};

/// `FileSnap.SNAP_MAGIC`: "ZKSN".
pub const SNAP_MAGIC: i32 = 0x5a4b_534e;
/// `FileTxnLog.TXNLOG_MAGIC`: "ZKLG".
pub const LOG_MAGIC: i32 = 0x5a4b_4c47;
/// The file format version both headers carry.
pub const FORMAT_VERSION: i32 = 2;
/// ZooKeeper's own subdirectory of dataDir and dataLogDir.
pub const VERSION_DIR: &str = "version-2";
/// The byte that ends every log entry (`Util.writeTxnBytes`).
const END_OF_RECORD: u8 = b'B';
/// The ACL cache reference that stands for `OPEN_ACL_UNSAFE` without an entry.
const OPEN_ACL_REF: i64 = -1;
/// A bound on any one length field, so garbage cannot ask for gigabytes (jute.maxbuffer is
/// far smaller in practice; a node holds at most about 1 MB).
const MAX_LENGTH: usize = 1 << 30;

/// `ZooDefs.OpCode` values that appear in logs.
pub mod opcode {
    pub const CREATE: i32 = 1;
    pub const DELETE: i32 = 2;
    pub const SET_DATA: i32 = 5;
    pub const SET_ACL: i32 = 7;
    pub const CHECK: i32 = 13;
    pub const MULTI: i32 = 14;
    pub const CREATE2: i32 = 15;
    pub const RECONFIG: i32 = 16;
    pub const CREATE_CONTAINER: i32 = 19;
    pub const DELETE_CONTAINER: i32 = 20;
    pub const CREATE_TTL: i32 = 21;
    pub const CREATE_SESSION: i32 = -10;
    pub const CLOSE_SESSION: i32 = -11;
    pub const ERROR: i32 = -1;
}

/// Why ZooKeeper's files cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum ZkError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0}: no {VERSION_DIR} directory with ZooKeeper snapshots or logs: not a ZooKeeper dataDir")]
    NotZooKeeper(String),
    #[error("{path}: {why}")]
    BadFile { path: String, why: String },
    #[error("every ZooKeeper snapshot is damaged: {0}")]
    NoValidSnapshot(String),
    #[error("corrupt ZooKeeper transaction log {path} at offset {offset}: {why}; valid records follow it, so history would be lost; refusing to import")]
    Corrupt { path: String, offset: usize, why: String },
    #[error("ZooKeeper transaction logs are missing txns after zxid {after:#x} (next found: {found:#x}); refusing to import")]
    Gap { after: i64, found: i64 },
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> ZkError + '_ {
    move |source| ZkError::Io { path: path.display().to_string(), source }
}

/// Adler-32 (RFC 1950), the checksum `java.util.zip.Adler32` computes.
#[derive(Debug, Clone, Copy)]
pub struct Adler32 {
    a: u32,
    b: u32,
}

impl Default for Adler32 {
    fn default() -> Self {
        Adler32 { a: 1, b: 0 }
    }
}

impl Adler32 {
    const MOD: u32 = 65521;
    /// Bytes that can be summed before `b` could overflow a u32.
    const NMAX: usize = 5552;

    pub fn update(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(Self::NMAX) {
            for &x in chunk {
                self.a += x as u32;
                self.b += self.a;
            }
            self.a %= Self::MOD;
            self.b %= Self::MOD;
        }
    }

    pub fn value(&self) -> u32 {
        (self.b << 16) | self.a
    }

    /// The checksum of one slice.
    pub fn of(bytes: &[u8]) -> u32 {
        let mut a = Adler32::default();
        a.update(bytes);
        a.value()
    }
}

/// Reads jute's binary encoding; every error names the offset.
struct In<'a> {
    buf: &'a [u8],
    pos: usize,
}

type R<T> = Result<T, String>;

impl<'a> In<'a> {
    fn new(buf: &'a [u8], pos: usize) -> In<'a> {
        In { buf, pos }
    }
    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len());
        let Some(end) = end else {
            return Err(format!("truncated at offset {}", self.pos));
        };
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    fn byte(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }
    fn boolean(&mut self) -> R<bool> {
        Ok(self.byte()? != 0)
    }
    fn int(&mut self) -> R<i32> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn long(&mut self) -> R<i64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }
    /// A length prefix: -1 is null (read as empty), any other negative is damage.
    fn length(&mut self) -> R<usize> {
        let at = self.pos;
        match self.int()? {
            -1 => Ok(0),
            n if n >= 0 && (n as usize) <= MAX_LENGTH => Ok(n as usize),
            n => Err(format!("bad length {n} at offset {at}")),
        }
    }
    fn buffer(&mut self) -> R<&'a [u8]> {
        let n = self.length()?;
        self.take(n)
    }
    fn string(&mut self) -> R<String> {
        let at = self.pos;
        let b = self.buffer()?;
        String::from_utf8(b.to_vec()).map_err(|_| format!("string at offset {at} is not UTF-8"))
    }
    fn acls(&mut self) -> R<Vec<Acl>> {
        let n = self.length()?;
        let mut out = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            let perms = self.int()?;
            let scheme = self.string()?;
            let id = self.string()?;
            out.push(Acl { perms, id: Id { scheme, id } });
        }
        Ok(out)
    }
    fn stat(&mut self) -> R<StatPersisted> {
        Ok(StatPersisted {
            czxid: self.long()?,
            mzxid: self.long()?,
            ctime: self.long()?,
            mtime: self.long()?,
            version: self.int()?,
            cversion: self.int()?,
            aversion: self.int()?,
            ephemeral_owner: self.long()?,
            pzxid: self.long()?,
        })
    }
}

/// Writes jute's binary encoding.
struct Out(Vec<u8>);

impl Out {
    fn int(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn long(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn buffer(&mut self, v: &[u8]) {
        self.int(v.len() as i32);
        self.0.extend_from_slice(v);
    }
    fn string(&mut self, v: &str) {
        self.buffer(v.as_bytes());
    }
    fn acls(&mut self, acls: &[Acl]) {
        self.int(acls.len() as i32);
        for a in acls {
            self.int(a.perms);
            self.string(&a.id.scheme);
            self.string(&a.id.id);
        }
    }
    fn stat(&mut self, s: &StatPersisted) {
        self.long(s.czxid);
        self.long(s.mzxid);
        self.long(s.ctime);
        self.long(s.mtime);
        self.int(s.version);
        self.int(s.cversion);
        self.int(s.aversion);
        self.long(s.ephemeral_owner);
        self.long(s.pzxid);
    }
}

// ---------------------------------------------------------------------------------------------
// Snapshots

/// What a ZooKeeper snapshot holds.
pub struct ZkSnapshot {
    /// The zxid in the file name: the last txn applied when the (fuzzy) snapshot began.
    pub zxid: i64,
    pub sessions: BTreeMap<i64, i32>,
    /// Nodes in file order (parents before children), the root as "/".
    pub nodes: Vec<(String, Node)>,
}

/// The zxid in a `snapshot.<hex>[.ext]` or `log.<hex>` name (`Util.getZxidFromName`).
pub fn zxid_from_name(name: &str, prefix: &str) -> Option<i64> {
    let mut parts = name.split('.');
    if parts.next() != Some(prefix) {
        return None;
    }
    i64::from_str_radix(parts.next()?, 16).ok()
}

/// Decodes snapshot bytes (already decompressed); `zxid` comes from the file name.
pub fn decode_snapshot(bytes: &[u8], zxid: i64) -> Result<ZkSnapshot, String> {
    let mut d = In::new(bytes, 0);
    if d.int()? != SNAP_MAGIC {
        return Err("not a ZooKeeper snapshot (no ZKSN magic)".into());
    }
    let _version = d.int()?;
    let _dbid = d.long()?;
    let mut sessions = BTreeMap::new();
    let count = d.int()?;
    for _ in 0..count.max(0) {
        let id = d.long()?;
        sessions.insert(id, d.int()?);
    }
    let mut acls: HashMap<i64, AclList> = HashMap::new();
    let count = d.int()?;
    for _ in 0..count.max(0) {
        let id = d.long()?;
        acls.insert(id, Arc::from(d.acls()?));
    }
    let open: AclList = Arc::from(acl::open_acl_unsafe());
    let mut nodes = Vec::new();
    loop {
        let at = d.pos;
        let path = d.string()?;
        if path == "/" {
            break;
        }
        let data = d.buffer()?.to_vec();
        let acl_ref = d.long()?;
        let stat = d.stat()?;
        let acl = if acl_ref == OPEN_ACL_REF {
            open.clone()
        } else {
            acls.get(&acl_ref)
                .cloned()
                .ok_or_else(|| format!("node at offset {at} has unknown ACL reference {acl_ref}"))?
        };
        let path = if path.is_empty() { "/".to_string() } else { path };
        if !path.starts_with('/') {
            return Err(format!("bad path {path:?} at offset {at}"));
        }
        nodes.push((path, Node { data, acl, stat, children: Default::default() }));
    }
    check_seal(&mut d)?;
    // The optional zxid digest and its own seal (3.6+); an end of file here is an older format.
    if d.remaining() > 0 {
        let _zxid = d.long()?;
        let digest_version = d.int()?;
        if digest_version < 2 {
            d.string()?;
        } else {
            d.long()?;
        }
        check_seal(&mut d)?;
    }
    Ok(ZkSnapshot { zxid, sessions, nodes })
}

/// `SnapStream.checkSealIntegrity`: the Adler-32 of every byte so far, then the string "/".
fn check_seal(d: &mut In) -> R<()> {
    let expect = Adler32::of(&d.buf[..d.pos]) as i64;
    let at = d.pos;
    let found = d.long()?;
    d.string()?;
    if found != expect {
        return Err(format!("checksum mismatch at offset {at}"));
    }
    Ok(())
}

/// Reads a snapshot file: plain or `.gz` (by its name, as `SnapStream.getStreamMode`).
pub fn read_snapshot(path: &Path, zxid: i64) -> Result<ZkSnapshot, ZkError> {
    let bad = |why: String| ZkError::BadFile { path: path.display().to_string(), why };
    let raw = std::fs::read(path).map_err(io_err(path))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let bytes = match name.rsplit('.').next() {
        Some("gz") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out).map_err(|e| bad(format!("gzip: {e}")))?;
            out
        }
        Some("snappy") => snappy_stream(&raw).map_err(|e| bad(format!("snappy: {e}")))?,
        _ => raw,
    };
    decode_snapshot(&bytes, zxid).map_err(bad)
}

/// The stream header snappy-java's `SnappyOutputStream` writes: a magic, then a version and
/// the oldest compatible version (ints); blocks follow as `int compressed length` + a raw snappy
/// block. A stream may be a concatenation of such streams.
const SNAPPY_JAVA_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];

/// Decompresses a snappy-java stream (`.snappy` snapshots).
fn snappy_stream(raw: &[u8]) -> R<Vec<u8>> {
    let mut d = In::new(raw, 0);
    let mut out = Vec::with_capacity(raw.len() * 3);
    while d.remaining() > 0 {
        if d.remaining() >= 16 && raw[d.pos..d.pos + 8] == SNAPPY_JAVA_MAGIC {
            d.take(16)?;
            continue;
        }
        let at = d.pos;
        let n = d.int()?;
        if n < 0 {
            return Err(format!("bad block length {n} at offset {at}"));
        }
        snappy_block(d.take(n as usize)?, &mut out).map_err(|e| format!("block at offset {at}: {e}"))?;
    }
    Ok(out)
}

/// Decompresses one raw snappy block (the format's own description: a varint length, then
/// literals and back-references), appending to `out`.
fn snappy_block(b: &[u8], out: &mut Vec<u8>) -> R<()> {
    let mut i = 0;
    let (mut len, mut shift) = (0usize, 0);
    loop {
        let x = *b.get(i).ok_or("truncated length")?;
        i += 1;
        len |= ((x & 0x7f) as usize) << shift;
        if x & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 28 {
            return Err("bad length varint".into());
        }
    }
    let start = out.len();
    let want = start + len;
    out.reserve(len);
    let le = |bytes: &[u8]| bytes.iter().rev().fold(0usize, |acc, x| (acc << 8) | *x as usize);
    while i < b.len() {
        let tag = b[i];
        i += 1;
        let (n, offset) = match tag & 3 {
            0 => {
                let mut n = (tag >> 2) as usize;
                if n >= 60 {
                    let extra = n - 59;
                    n = le(b.get(i..i + extra).ok_or("truncated literal length")?);
                    i += extra;
                }
                let lit = b.get(i..i + n + 1).ok_or("truncated literal")?;
                out.extend_from_slice(lit);
                i += n + 1;
                continue;
            }
            1 => {
                let x = *b.get(i).ok_or("truncated copy")? as usize;
                i += 1;
                (4 + ((tag >> 2) & 7) as usize, (((tag >> 5) as usize) << 8) | x)
            }
            2 => {
                let o = le(b.get(i..i + 2).ok_or("truncated copy")?);
                i += 2;
                (1 + (tag >> 2) as usize, o)
            }
            _ => {
                let o = le(b.get(i..i + 4).ok_or("truncated copy")?);
                i += 4;
                (1 + (tag >> 2) as usize, o)
            }
        };
        if offset == 0 || offset > out.len() - start {
            return Err(format!("bad copy offset {offset}"));
        }
        // A copy may overlap what it produces (a run), so byte by byte.
        for _ in 0..n {
            out.push(out[out.len() - offset]);
        }
    }
    if out.len() != want {
        return Err(format!("decompressed {} bytes, header says {len}", out.len() - start));
    }
    Ok(())
}

/// Encodes a tree as a ZooKeeper 3.8 snapshot (no digest section, which ZooKeeper reads as
/// an older snapshot).
pub fn encode_snapshot(tree: &DataTree) -> Vec<u8> {
    // Sized once: paths and data, plus a node's fixed fields (acl ref, stat, two lengths).
    let estimate = tree.approximate_data_size() as usize + tree.node_count() * 96 + (1 << 16);
    let mut out = Out(Vec::with_capacity(estimate));
    out.int(SNAP_MAGIC);
    out.int(FORMAT_VERSION);
    out.long(-1); // FileSnap's dbId
    out.int(tree.sessions().len() as i32);
    for (id, timeout) in tree.sessions() {
        out.long(*id);
        out.int(*timeout);
    }
    // Depth first from the root, parents before children, as DataTree.serializeNode walks.
    let mut order: Vec<(String, &Node)> = Vec::with_capacity(tree.node_count());
    let mut stack = vec!["/".to_string()];
    while let Some(p) = stack.pop() {
        let Some(n) = tree.get(&p) else { continue };
        for c in n.children.iter().rev() {
            stack.push(crate::path::join(&p, c));
        }
        order.push((p, n));
    }
    let mut refs: HashMap<*const [Acl], i64> = HashMap::new();
    let mut lists: Vec<&AclList> = Vec::new();
    for (_, n) in &order {
        let key = Arc::as_ptr(&n.acl);
        if let std::collections::hash_map::Entry::Vacant(e) = refs.entry(key) {
            e.insert(lists.len() as i64 + 1);
            lists.push(&n.acl);
        }
    }
    out.int(lists.len() as i32);
    for (i, l) in lists.iter().enumerate() {
        out.long(i as i64 + 1);
        out.acls(l);
    }
    for (p, n) in &order {
        out.string(if p == "/" { "" } else { p });
        out.buffer(&n.data);
        out.long(refs[&Arc::as_ptr(&n.acl)]);
        out.stat(&n.stat);
    }
    out.string("/");
    let sum = Adler32::of(&out.0) as i64;
    out.long(sum);
    out.string("/");
    out.0
}

/// The name ZooKeeper gives a snapshot (`Util.makeSnapshotName`).
pub fn snapshot_name(zxid: i64) -> String {
    format!("snapshot.{zxid:x}")
}

// ---------------------------------------------------------------------------------------------
// Transaction logs

/// A txn as ZooKeeper logs it, before it is fitted to Paddock's `Txn`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZkTxn {
    CreateSession {
        timeout_ms: i32,
    },
    /// `paths` are the ephemerals the closing server listed (`CloseSessionTxn`, 3.6+; empty
    /// before); ZooKeeper deletes them and every ephemeral it knows of the session.
    CloseSession {
        paths: Vec<String>,
    },
    /// `create`, `create2`, `createTTL`, `createContainer`; `parent_cversion` -1 means "one more
    /// than now" (an old CreateTxnV0).
    Create {
        op: i32,
        path: String,
        data: Vec<u8>,
        acl: Vec<Acl>,
        ephemeral_owner: i64,
        parent_cversion: i32,
    },
    Delete {
        path: String,
    },
    SetData {
        path: String,
        data: Vec<u8>,
        version: i32,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    Check {
        path: String,
    },
    Error {
        err: i32,
    },
    Multi(Vec<ZkTxn>),
}

/// One log entry.
#[derive(Debug, Clone)]
pub struct ZkRecord {
    /// Where the entry starts in its file (at its checksum).
    pub offset: usize,
    pub hdr: TxnHeader,
    pub txn: ZkTxn,
}

/// How a log file ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZkLogEnd {
    /// A zero length (pre-allocated space) or the end of the file.
    Clean,
    /// A damaged entry with nothing valid after it: what a crash mid-write leaves.
    Torn { offset: usize, why: String },
    /// A damaged entry followed by a valid one.
    Corrupt { offset: usize, why: String },
}

/// A scanned log file.
pub struct ZkLog {
    pub records: Vec<ZkRecord>,
    pub end: ZkLogEnd,
}

/// Decodes one txn record of type `op` (`SerializeUtils.deserializeTxn`). Bytes after it (a
/// `TxnDigest`) are ignored.
fn decode_txn(d: &mut In, op: i32, session_id: i64) -> R<ZkTxn> {
    use opcode::*;
    Ok(match op {
        CREATE_SESSION => ZkTxn::CreateSession { timeout_ms: d.int()? },
        CLOSE_SESSION => ZkTxn::CloseSession { paths: close_session_paths(d) },
        CREATE | CREATE2 => {
            let path = d.string()?;
            let data = d.buffer()?.to_vec();
            let acl = d.acls()?;
            let ephemeral = d.boolean()?;
            // CreateTxnV0 has no parentCVersion; DataTree then counts one more child.
            let parent_cversion = if d.remaining() >= 4 { d.int()? } else { -1 };
            ZkTxn::Create {
                op,
                path,
                data,
                acl,
                ephemeral_owner: if ephemeral { session_id } else { 0 },
                parent_cversion,
            }
        }
        CREATE_TTL => {
            let path = d.string()?;
            let data = d.buffer()?.to_vec();
            let acl = d.acls()?;
            let parent_cversion = d.int()?;
            let ttl = d.long()?;
            let ephemeral_owner = EphemeralKind::ttl_owner(ttl);
            ZkTxn::Create { op, path, data, acl, ephemeral_owner, parent_cversion }
        }
        CREATE_CONTAINER => {
            let path = d.string()?;
            let data = d.buffer()?.to_vec();
            let acl = d.acls()?;
            let parent_cversion = d.int()?;
            ZkTxn::Create { op, path, data, acl, ephemeral_owner: CONTAINER_EPHEMERAL_OWNER, parent_cversion }
        }
        DELETE | DELETE_CONTAINER => ZkTxn::Delete { path: d.string()? },
        SET_DATA | RECONFIG => ZkTxn::SetData { path: d.string()?, data: d.buffer()?.to_vec(), version: d.int()? },
        SET_ACL => ZkTxn::SetAcl { path: d.string()?, acl: d.acls()?, version: d.int()? },
        CHECK => {
            let path = d.string()?;
            d.int()?;
            ZkTxn::Check { path }
        }
        ERROR => ZkTxn::Error { err: d.int()? },
        MULTI => {
            let n = d.length()?;
            let mut txns = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                let sub_op = d.int()?;
                let bytes = d.buffer()?;
                if matches!(sub_op, MULTI | CREATE_SESSION | CLOSE_SESSION) {
                    return Err(format!("op {sub_op} inside a multi"));
                }
                txns.push(decode_txn(&mut In::new(bytes, 0), sub_op, session_id)?);
            }
            ZkTxn::Multi(txns)
        }
        other => return Err(format!("unknown txn type {other}")),
    })
}

/// The optional `CloseSessionTxn{vector<ustring> paths2Delete}`. Whether a server wrote one
/// depends on its `zookeeper.closeSessionTxn.enabled`, which the log does not record, and a
/// `TxnDigest` may follow instead: anything that is not a clean vector of paths, followed by
/// nothing or a 12-byte digest, reads as none (then the session's ephemerals alone go, as
/// ZooKeeper does without the record).
fn close_session_paths(d: &mut In) -> Vec<String> {
    let parse = |d: &mut In| -> R<Vec<String>> {
        let n = d.int()?;
        if n < 0 || n as usize > d.remaining() / 4 {
            return Err("not a path list".into());
        }
        let paths = (0..n).map(|_| d.string()).collect::<R<Vec<String>>>()?;
        if paths.iter().any(|p| !p.starts_with('/')) || !matches!(d.remaining(), 0 | 12) {
            return Err("not a path list".into());
        }
        Ok(paths)
    };
    let mut probe = In::new(d.buf, d.pos);
    parse(&mut probe).unwrap_or_default()
}

/// Decodes one whole log entry: `TxnHeader` then its record.
pub fn decode_entry(bytes: &[u8]) -> Result<(TxnHeader, ZkTxn), String> {
    let mut d = In::new(bytes, 0);
    let hdr = TxnHeader { session_id: d.long()?, cxid: d.int()?, zxid: d.long()?, time_ms: d.long()? };
    let op = d.int()?;
    Ok((hdr, decode_txn(&mut d, op, hdr.session_id)?))
}

/// Checks the entry at `offset`: `Ok(None)` at a zero length (the end), `Ok(Some((next, entry
/// bytes)))` for a whole one, `Err` for damage.
fn entry_at(bytes: &[u8], offset: usize) -> Result<Option<(usize, &[u8])>, String> {
    let mut d = In::new(bytes, offset);
    let Ok(crc) = d.long() else {
        return if bytes[offset..].iter().all(|b| *b == 0) { Ok(None) } else { Err("partial entry header".into()) };
    };
    let Ok(len) = d.int() else {
        return if bytes[offset..].iter().all(|b| *b == 0) { Ok(None) } else { Err("partial entry header".into()) };
    };
    if len == 0 {
        return Ok(None);
    }
    if len < 0 || len as usize > MAX_LENGTH {
        return Err(format!("bad entry length {len}"));
    }
    let entry = d.take(len as usize).map_err(|_| "entry runs past the end of the file".to_string())?;
    if d.byte().ok() != Some(END_OF_RECORD) {
        return Err("entry not followed by its end-of-record byte".into());
    }
    if crc != Adler32::of(entry) as i64 {
        return Err("checksum mismatch".into());
    }
    Ok(Some((d.pos, entry)))
}

/// Whether a whole, checksummed entry starts at any offset from `from` on.
fn valid_entry_after(bytes: &[u8], from: usize) -> bool {
    (from..bytes.len().saturating_sub(13)).any(|off| {
        // Cheap filters first: most offsets hold zeros or cannot frame an entry.
        let len = i32::from_be_bytes([bytes[off + 8], bytes[off + 9], bytes[off + 10], bytes[off + 11]]);
        if len <= 0 || bytes[off..off + 4] != [0, 0, 0, 0] {
            return false;
        }
        let end = off + 12 + len as usize;
        end < bytes.len()
            && bytes[end] == END_OF_RECORD
            && matches!(entry_at(bytes, off), Ok(Some((_, e))) if decode_entry(e).is_ok())
    })
}

/// Scans a log file's bytes.
pub fn scan_log(bytes: &[u8]) -> Result<ZkLog, String> {
    let mut d = In::new(bytes, 0);
    if d.int().ok() != Some(LOG_MAGIC) {
        return Err("not a ZooKeeper transaction log (no ZKLG magic)".into());
    }
    d.int()?;
    d.long()?;
    let mut records = Vec::new();
    let mut offset = d.pos;
    loop {
        let damage = match entry_at(bytes, offset) {
            Ok(None) => {
                // ZooKeeper stops reading a file here; anything valid after it would be lost.
                if valid_entry_after(bytes, offset + 1) {
                    let why = "zero length entry before valid ones".to_string();
                    return Ok(ZkLog { records, end: ZkLogEnd::Corrupt { offset, why } });
                }
                return Ok(ZkLog { records, end: ZkLogEnd::Clean });
            }
            Ok(Some((next, entry))) => match decode_entry(entry) {
                Ok((hdr, txn)) => {
                    records.push(ZkRecord { offset, hdr, txn });
                    offset = next;
                    continue;
                }
                Err(why) => why,
            },
            Err(why) => why,
        };
        let end = if valid_entry_after(bytes, offset + 1) {
            ZkLogEnd::Corrupt { offset, why: damage }
        } else {
            ZkLogEnd::Torn { offset, why: damage }
        };
        return Ok(ZkLog { records, end });
    }
}

// ---------------------------------------------------------------------------------------------
// Replay

/// Fits a ZooKeeper txn to Paddock's, against the tree it is about to apply to, so that
/// `DataTree::apply` does what ZooKeeper's `DataTree.processTxn` does with it.
pub fn to_txn(tree: &DataTree, session_id: i64, txn: &ZkTxn) -> Txn {
    match txn {
        ZkTxn::CreateSession { timeout_ms } => Txn::CreateSession { timeout_ms: *timeout_ms },
        ZkTxn::CloseSession { paths } => {
            // Listed paths the tree does not count as the session's own are deleted too.
            let own: std::collections::HashSet<&String> = tree.ephemerals_of(session_id).collect();
            let mut extra: Vec<Txn> =
                paths.iter().filter(|p| !own.contains(p)).map(|p| Txn::Delete { path: p.clone() }).collect();
            if extra.is_empty() {
                Txn::CloseSession
            } else {
                extra.push(Txn::CloseSession);
                Txn::Multi(extra)
            }
        }
        ZkTxn::Create { op, path, data, acl, ephemeral_owner, parent_cversion } => {
            let current = tree.get(crate::path::parent(path)).map_or(0, |n| n.stat.cversion);
            let exists = tree.get(path).is_some();
            let parent_cversion = if exists && *op != opcode::CREATE {
                // processTxn fixes the parent's cversion of an existing node only for `create`.
                i32::MIN
            } else if *parent_cversion == -1 {
                current.wrapping_add(1)
            } else {
                *parent_cversion
            };
            Txn::Create {
                path: path.clone(),
                data: data.clone(),
                acl: acl.clone(),
                ephemeral_owner: *ephemeral_owner,
                parent_cversion,
            }
        }
        ZkTxn::Delete { path } => Txn::Delete { path: path.clone() },
        ZkTxn::SetData { path, data, version } => {
            Txn::SetData { path: path.clone(), data: data.clone(), version: *version }
        }
        ZkTxn::SetAcl { path, acl, version } => Txn::SetAcl { path: path.clone(), acl: acl.clone(), version: *version },
        ZkTxn::Check { path } => Txn::Check { path: path.clone() },
        ZkTxn::Error { err } => Txn::Error { err: *err },
        ZkTxn::Multi(txns) => Txn::Multi(txns.iter().map(|t| to_txn(tree, session_id, t)).collect()),
    }
}

/// The result of an import.
pub struct Imported {
    pub tree: DataTree,
    /// The snapshot the tree started from, if any.
    pub snapshot: Option<PathBuf>,
    pub replayed: usize,
    /// What was skipped or cut, for the operator.
    pub warnings: Vec<String>,
}

fn list(dir: &Path, prefix: &str) -> Result<Vec<(i64, PathBuf)>, ZkError> {
    let mut out = Vec::new();
    if !dir.is_dir() {
        return Ok(out);
    }
    for e in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let e = e.map_err(io_err(dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(z) = zxid_from_name(&name, prefix) {
            out.push((z, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Loads ZooKeeper's state as ZooKeeper's own start-up does (`FileTxnSnapLog.restore`): the
/// newest snapshot that reads back whole (older ones in turn if not), then every logged txn
/// after its zxid. `snap_dir` and `log_dir` are the `version-2` directories.
pub fn import(snap_dir: &Path, log_dir: &Path) -> Result<Imported, ZkError> {
    let snapshots = list(snap_dir, "snapshot")?;
    let logs = list(log_dir, "log")?;
    if snapshots.is_empty() && logs.is_empty() {
        return Err(ZkError::NotZooKeeper(snap_dir.display().to_string()));
    }
    let mut warnings = Vec::new();
    let mut loaded = None;
    for (zxid, path) in snapshots.iter().rev() {
        match read_snapshot(path, *zxid) {
            Ok(s) => {
                loaded = Some((s, path.clone()));
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, "skipping damaged ZooKeeper snapshot, trying an older one");
                warnings.push(format!("skipped damaged snapshot: {e}"));
            }
        }
    }
    let (mut tree, snapshot) = match loaded {
        Some((s, path)) => {
            let mut b = TreeBuilder::new(s.nodes.len() + 1);
            let has = |p: &str| s.nodes.iter().any(|(q, _)| q == p);
            if !has(crate::tree::CONFIG_PATH) && has(crate::tree::ZOOKEEPER_PATH) {
                // A 3.4 snapshot predates the config node; 3.5+ adds it on upgrade
                // (`DataTree.addConfigNode`): empty, world-readable, aversion -1.
                let stat = StatPersisted { aversion: -1, ..StatPersisted::default() };
                let acl: AclList = Arc::from(acl::read_acl_unsafe());
                let node = Node { data: Vec::new(), acl, stat, children: Default::default() };
                b.add(crate::tree::CONFIG_PATH.to_string(), node);
                warnings.push(format!(
                    "{}: no {} node (ZooKeeper 3.4); added it",
                    path.display(),
                    crate::tree::CONFIG_PATH
                ));
            }
            for (p, n) in s.nodes {
                b.add(p, n);
            }
            (b.finish(s.sessions, s.zxid), Some(path))
        }
        None if !snapshots.is_empty() => return Err(ZkError::NoValidSnapshot(warnings.join("; "))),
        None => (DataTree::new(), None),
    };
    let from = tree.last_zxid();
    // FileTxnIterator: the last log starting at or before from + 1, and every later one.
    let start = logs.iter().rposition(|(first, _)| *first <= from + 1).unwrap_or(0);
    let count = logs.len();
    let mut replayed = 0;
    let mut expect_next = from;
    for (i, (_, path)) in logs.iter().enumerate().skip(start) {
        let bytes = std::fs::read(path).map_err(io_err(path))?;
        let scan = scan_log(&bytes).map_err(|why| ZkError::BadFile { path: path.display().to_string(), why })?;
        for r in &scan.records {
            if r.hdr.zxid <= expect_next {
                continue;
            }
            // Within an epoch zxids count up by one; a new epoch starts its own count.
            if r.hdr.zxid != expect_next + 1 && (r.hdr.zxid >> 32) == (expect_next >> 32) {
                return Err(ZkError::Gap { after: expect_next, found: r.hdr.zxid });
            }
            let txn = to_txn(&tree, r.hdr.session_id, &r.txn);
            tree.apply(&r.hdr, &txn);
            expect_next = r.hdr.zxid;
            replayed += 1;
        }
        match scan.end {
            ZkLogEnd::Clean => {}
            ZkLogEnd::Corrupt { offset, why } => {
                return Err(ZkError::Corrupt { path: path.display().to_string(), offset, why })
            }
            ZkLogEnd::Torn { offset, why } => {
                // ZooKeeper reads a log up to a damaged entry and goes on with the next file.
                // After a crash it starts a new log at the first zxid it lacks, so a later file
                // that carries on without a gap (checked above, as the next records are read)
                // means the cut entry was never part of history; a gap refuses the import.
                let later = if i + 1 != count { ", later logs carry on from there" } else { "" };
                let w = format!(
                    "{}: ends in a partial or damaged entry at offset {offset} ({why}), as a crash mid-write leaves; imported the txns before it, up to zxid {:#x}{later}",
                    path.display(),
                    tree.last_zxid()
                );
                tracing::warn!("{w}");
                warnings.push(w);
            }
        }
    }
    Ok(Imported { tree, snapshot, replayed, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(zxid: i64) -> TxnHeader {
        TxnHeader { session_id: 0x100, cxid: 1, zxid, time_ms: 5000 + zxid }
    }

    /// Encodes a log entry as ZooKeeper's `Util.marshallTxnEntry` + `writeTxnBytes` do.
    fn entry(h: &TxnHeader, op: i32, record: &[u8]) -> Vec<u8> {
        let mut e = Out(Vec::new());
        e.long(h.session_id);
        e.int(h.cxid);
        e.long(h.zxid);
        e.long(h.time_ms);
        e.int(op);
        e.0.extend_from_slice(record);
        let mut out = Out(Vec::new());
        out.long(Adler32::of(&e.0) as i64);
        out.buffer(&e.0);
        out.0.push(END_OF_RECORD);
        out.0
    }

    fn create_record(path: &str, ephemeral: bool, parent_cversion: i32) -> Vec<u8> {
        let mut r = Out(Vec::new());
        r.string(path);
        r.buffer(b"v");
        r.acls(&acl::open_acl_unsafe());
        r.0.push(ephemeral as u8);
        r.int(parent_cversion);
        r.0
    }

    fn log(entries: &[Vec<u8>], padding: usize) -> Vec<u8> {
        let mut out = Out(Vec::new());
        out.int(LOG_MAGIC);
        out.int(FORMAT_VERSION);
        out.long(0);
        for e in entries {
            out.0.extend_from_slice(e);
        }
        out.0.resize(out.0.len() + padding, 0);
        out.0
    }

    #[test]
    fn snappy_blocks_decode_literals_and_overlapping_copies() {
        // "abcabcabcabcX": a 3-byte literal, a copy of 9 at offset 3 (1-byte offset form), "X".
        let block = [13u8, 2 << 2, b'a', b'b', b'c', 1 | (5 << 2), 3, 0, b'X'];
        let mut stream = SNAPPY_JAVA_MAGIC.to_vec();
        stream.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
        stream.extend_from_slice(&(block.len() as i32).to_be_bytes());
        stream.extend_from_slice(&block);
        assert_eq!(snappy_stream(&stream).expect("decode"), b"abcabcabcabcX");
        assert!(snappy_stream(&stream[..stream.len() - 1]).is_err());
    }

    #[test]
    fn adler32_matches_known_values() {
        assert_eq!(Adler32::of(b""), 1);
        assert_eq!(Adler32::of(b"Wikipedia"), 0x11e6_0398);
        let big = vec![0xffu8; 100_000];
        // Reference computed without chunking, in u64.
        let (mut a, mut b) = (1u64, 0u64);
        for x in &big {
            a = (a + *x as u64) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!(Adler32::of(&big) as u64, (b << 16) | a);
    }

    #[test]
    fn a_log_is_read_up_to_its_padding() {
        let mut session = Out(Vec::new());
        session.int(30_000);
        let bytes = log(
            &[
                entry(&hdr(1), opcode::CREATE_SESSION, &session.0),
                entry(&hdr(2), opcode::CREATE, &create_record("/a", false, 1)),
                entry(&hdr(3), opcode::CREATE2, &create_record("/a/e", true, 1)),
            ],
            4096,
        );
        let scan = scan_log(&bytes).expect("scan");
        assert_eq!(scan.end, ZkLogEnd::Clean);
        assert_eq!(scan.records.iter().map(|r| r.hdr.zxid).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert!(matches!(&scan.records[2].txn, ZkTxn::Create { ephemeral_owner: 0x100, .. }));
    }

    #[test]
    fn a_torn_last_entry_is_a_torn_tail_and_damage_before_valid_entries_is_corruption() {
        let e1 = entry(&hdr(1), opcode::CREATE, &create_record("/a", false, 1));
        let e2 = entry(&hdr(2), opcode::CREATE, &create_record("/b", false, 2));
        let whole = log(&[e1.clone(), e2.clone()], 0);
        // The second entry half written, zeros after it.
        let mut torn = whole[..whole.len() - e2.len() / 2].to_vec();
        torn.resize(whole.len() + 100, 0);
        let scan = scan_log(&torn).expect("scan");
        assert_eq!(scan.records.len(), 1);
        assert!(matches!(scan.end, ZkLogEnd::Torn { offset, .. } if offset == 16 + e1.len()));
        // A flipped byte in the first entry, the second intact.
        let mut bad = whole.clone();
        bad[16 + 30] ^= 1;
        let scan = scan_log(&bad).expect("scan");
        assert!(scan.records.is_empty());
        assert!(matches!(scan.end, ZkLogEnd::Corrupt { offset: 16, .. }));
    }

    fn temp_version_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("paddock-zk-{tag}-{}", std::process::id())).join(VERSION_DIR);
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    }

    fn creates(zxids: std::ops::RangeInclusive<i64>) -> Vec<Vec<u8>> {
        zxids.map(|z| entry(&hdr(z), opcode::CREATE, &create_record(&format!("/n{z}"), false, z as i32))).collect()
    }

    #[test]
    fn a_torn_tail_before_a_later_log_is_history_only_if_nothing_is_missing() {
        // Crashed mid-write of txn 4, restarted: the next log starts at 4 (what ZooKeeper does).
        let dir = temp_version_dir("torn-then-later");
        let mut first = log(&creates(1..=4), 0);
        first.truncate(first.len() - 5);
        first.resize(first.len() + 512, 0);
        std::fs::write(dir.join("log.1"), &first).expect("write");
        std::fs::write(dir.join("log.4"), log(&creates(4..=6), 512)).expect("write");
        let imported = import(&dir, &dir).expect("import");
        assert_eq!((imported.tree.last_zxid(), imported.replayed), (6, 6));
        assert_eq!(imported.warnings.len(), 1, "{:?}", imported.warnings);
        // The same cut with the next log starting after it: txn 4 is lost, refused.
        std::fs::remove_file(dir.join("log.4")).expect("rm");
        std::fs::write(dir.join("log.5"), log(&creates(5..=6), 512)).expect("write");
        assert!(matches!(import(&dir, &dir), Err(ZkError::Gap { after: 3, found: 5 })));
        let _ = std::fs::remove_dir_all(dir.parent().expect("parent"));
    }

    #[test]
    fn a_zookeeper_3_4_snapshot_gets_the_config_node_on_import() {
        // 3.4's fresh tree: /, /zookeeper, /zookeeper/quota, all world:anyone (ref -1), no digest.
        let mut out = Out(Vec::new());
        out.int(SNAP_MAGIC);
        out.int(FORMAT_VERSION);
        out.long(-1);
        out.int(0);
        out.int(0);
        for p in ["", "/zookeeper", "/zookeeper/quota"] {
            out.string(p);
            out.buffer(b"");
            out.long(OPEN_ACL_REF);
            out.stat(&StatPersisted::default());
        }
        out.string("/");
        let sum = Adler32::of(&out.0) as i64;
        out.long(sum);
        out.string("/");
        let dir = temp_version_dir("3.4");
        std::fs::write(dir.join("snapshot.0"), &out.0).expect("write");
        let imported = import(&dir, &dir).expect("import");
        let fresh = DataTree::new();
        for p in ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"] {
            let (x, y) = (fresh.get(p).expect(p), imported.tree.get(p).expect(p));
            assert_eq!((x.client_stat(), &x.acl), (y.client_stat(), &y.acl), "{p}");
        }
        let _ = std::fs::remove_dir_all(dir.parent().expect("parent"));
    }

    #[test]
    fn replay_fills_in_what_zookeeper_derives() {
        let mut t = DataTree::new();
        // A CreateTxnV0-style -1 parent cversion counts one more child.
        let z = ZkTxn::Create {
            op: opcode::CREATE,
            path: "/a".into(),
            data: vec![],
            acl: acl::open_acl_unsafe(),
            ephemeral_owner: 0,
            parent_cversion: -1,
        };
        let txn = to_txn(&t, 7, &z);
        t.apply(&hdr(1), &txn);
        assert_eq!(t.get("/").map(|n| n.stat.cversion), Some(1));
        // create2 of an existing node leaves the parent alone; create raises its cversion.
        let again = |op, cv| ZkTxn::Create {
            op,
            path: "/a".into(),
            data: vec![],
            acl: acl::open_acl_unsafe(),
            ephemeral_owner: 0,
            parent_cversion: cv,
        };
        let txn = to_txn(&t, 7, &again(opcode::CREATE2, 7));
        t.apply(&hdr(2), &txn);
        assert_eq!(t.get("/").map(|n| (n.stat.cversion, n.stat.pzxid)), Some((1, 1)));
        let txn = to_txn(&t, 7, &again(opcode::CREATE, 7));
        t.apply(&hdr(3), &txn);
        assert_eq!(t.get("/").map(|n| (n.stat.cversion, n.stat.pzxid)), Some((7, 3)));
    }

    #[test]
    fn an_exported_snapshot_reads_back_the_same_tree() {
        let mut t = DataTree::new();
        t.apply(&hdr(1), &Txn::CreateSession { timeout_ms: 9000 });
        let mk = |p: &str, owner, cv, acl: Vec<Acl>| Txn::Create {
            path: p.into(),
            data: p.as_bytes().to_vec(),
            acl,
            ephemeral_owner: owner,
            parent_cversion: cv,
        };
        let digest = vec![Acl { perms: 31, id: Id::new("digest", "u:hash=") }];
        t.apply(&hdr(2), &mk("/a", 0, 1, acl::open_acl_unsafe()));
        t.apply(&hdr(3), &mk("/a/b", 0, 1, digest.clone()));
        t.apply(&hdr(4), &mk("/e", 0x100, 2, digest));
        t.apply(&hdr(5), &mk("/c", CONTAINER_EPHEMERAL_OWNER, 3, acl::open_acl_unsafe()));
        let bytes = encode_snapshot(&t);
        let s = decode_snapshot(&bytes, t.last_zxid()).expect("decode");
        assert_eq!(s.sessions, *t.sessions());
        assert_eq!(s.nodes[0].0, "/", "the root comes first");
        let r = DataTree::restore(s.nodes, s.sessions, s.zxid);
        assert_eq!(r.node_count(), t.node_count());
        for p in t.paths() {
            let (x, y) = (t.get(&p).expect("node"), r.get(&p).expect("node"));
            assert_eq!((x.client_stat(), &x.data, &x.acl), (y.client_stat(), &y.data, &y.acl), "{p}");
        }
        let mut flipped = bytes.clone();
        flipped[40] ^= 1;
        assert!(decode_snapshot(&flipped, 5).is_err());
    }
}
