//! The engine's own binary encoding of txns and nodes, for the log and snapshots: big-endian,
//! length-prefixed, versioned by the file headers that contain it. Decoding never panics on bad
//! input; it reports where it stopped.

use crate::acl::{Acl, Id};
use crate::stat::StatPersisted;
use crate::txn::{Txn, TxnHeader};

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("truncated at byte {0}")]
    Truncated(usize),
    #[error("unknown txn tag {0} at byte {1}")]
    UnknownTag(u8, usize),
    #[error("length {0} out of range at byte {1}")]
    BadLength(u32, usize),
}

/// Appends encoded values to a buffer.
pub struct Enc<'a>(pub &'a mut Vec<u8>);

impl Enc<'_> {
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.0.extend_from_slice(v);
    }
    pub fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }
    pub fn acls(&mut self, acls: &[Acl]) {
        self.u32(acls.len() as u32);
        for a in acls {
            self.i32(a.perms);
            self.str(&a.id.scheme);
            self.str(&a.id.id);
        }
    }
    pub fn stat(&mut self, s: &StatPersisted) {
        self.i64(s.czxid);
        self.i64(s.mzxid);
        self.i64(s.ctime);
        self.i64(s.mtime);
        self.i32(s.version);
        self.i32(s.cversion);
        self.i32(s.aversion);
        self.i64(s.ephemeral_owner);
        self.i64(s.pzxid);
    }
    pub fn header(&mut self, h: &TxnHeader) {
        self.i64(h.session_id);
        self.i32(h.cxid);
        self.i64(h.zxid);
        self.i64(h.time_ms);
    }
    pub fn txn(&mut self, t: &Txn) {
        match t {
            Txn::CreateSession { timeout_ms } => {
                self.u8(0);
                self.i32(*timeout_ms);
            }
            Txn::CloseSession => self.u8(1),
            Txn::Create { path, data, acl, ephemeral_owner, parent_cversion } => {
                self.u8(2);
                self.str(path);
                self.bytes(data);
                self.acls(acl);
                self.i64(*ephemeral_owner);
                self.i32(*parent_cversion);
            }
            Txn::Delete { path } => {
                self.u8(3);
                self.str(path);
            }
            Txn::SetData { path, data, version } => {
                self.u8(4);
                self.str(path);
                self.bytes(data);
                self.i32(*version);
            }
            Txn::SetAcl { path, acl, version } => {
                self.u8(5);
                self.str(path);
                self.acls(acl);
                self.i32(*version);
            }
            Txn::Check { path } => {
                self.u8(6);
                self.str(path);
            }
            Txn::Multi(txns) => {
                self.u8(7);
                self.u32(txns.len() as u32);
                for t in txns {
                    self.txn(t);
                }
            }
            Txn::Error { err } => {
                self.u8(8);
                self.i32(*err);
            }
        }
    }
}

/// Reads encoded values from a slice.
pub struct Dec<'a> {
    buf: &'a [u8],
    pub pos: usize,
}

impl<'a> Dec<'a> {
    pub fn new(buf: &'a [u8]) -> Dec<'a> {
        Dec { buf, pos: 0 }
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.remaining() < n {
            return Err(CodecError::Truncated(self.pos));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> Result<u32, CodecError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn i32(&mut self) -> Result<i32, CodecError> {
        Ok(self.u32()? as i32)
    }
    pub fn i64(&mut self) -> Result<i64, CodecError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }
    pub fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let at = self.pos;
        let n = self.u32()?;
        if n as usize > self.remaining() {
            return Err(CodecError::BadLength(n, at));
        }
        self.take(n as usize)
    }
    pub fn string(&mut self) -> Result<String, CodecError> {
        Ok(String::from_utf8_lossy(self.bytes()?).into_owned())
    }
    fn count(&mut self, min_item_bytes: usize) -> Result<usize, CodecError> {
        let at = self.pos;
        let n = self.u32()?;
        if (n as usize).saturating_mul(min_item_bytes) > self.remaining() {
            return Err(CodecError::BadLength(n, at));
        }
        Ok(n as usize)
    }
    pub fn acls(&mut self) -> Result<Vec<Acl>, CodecError> {
        let n = self.count(12)?;
        (0..n).map(|_| Ok(Acl { perms: self.i32()?, id: Id { scheme: self.string()?, id: self.string()? } })).collect()
    }
    pub fn stat(&mut self) -> Result<StatPersisted, CodecError> {
        Ok(StatPersisted {
            czxid: self.i64()?,
            mzxid: self.i64()?,
            ctime: self.i64()?,
            mtime: self.i64()?,
            version: self.i32()?,
            cversion: self.i32()?,
            aversion: self.i32()?,
            ephemeral_owner: self.i64()?,
            pzxid: self.i64()?,
        })
    }
    pub fn header(&mut self) -> Result<TxnHeader, CodecError> {
        Ok(TxnHeader { session_id: self.i64()?, cxid: self.i32()?, zxid: self.i64()?, time_ms: self.i64()? })
    }
    pub fn txn(&mut self) -> Result<Txn, CodecError> {
        let at = self.pos;
        Ok(match self.u8()? {
            0 => Txn::CreateSession { timeout_ms: self.i32()? },
            1 => Txn::CloseSession,
            2 => Txn::Create {
                path: self.string()?,
                data: self.bytes()?.to_vec(),
                acl: self.acls()?,
                ephemeral_owner: self.i64()?,
                parent_cversion: self.i32()?,
            },
            3 => Txn::Delete { path: self.string()? },
            4 => Txn::SetData { path: self.string()?, data: self.bytes()?.to_vec(), version: self.i32()? },
            5 => Txn::SetAcl { path: self.string()?, acl: self.acls()?, version: self.i32()? },
            6 => Txn::Check { path: self.string()? },
            7 => {
                let n = self.count(1)?;
                Txn::Multi((0..n).map(|_| self.txn()).collect::<Result<_, _>>()?)
            }
            8 => Txn::Error { err: self.i32()? },
            tag => return Err(CodecError::UnknownTag(tag, at)),
        })
    }
}

/// Encodes a txn with its header: the payload of one log record.
pub fn encode_txn(hdr: &TxnHeader, txn: &Txn, out: &mut Vec<u8>) {
    let mut e = Enc(out);
    e.header(hdr);
    e.txn(txn);
}

/// Decodes a log record's payload.
pub fn decode_txn(payload: &[u8]) -> Result<(TxnHeader, Txn), CodecError> {
    let mut d = Dec::new(payload);
    let hdr = d.header()?;
    let txn = d.txn()?;
    Ok((hdr, txn))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn txns_round_trip() {
        let hdr = TxnHeader { session_id: 5, cxid: 7, zxid: 9, time_ms: 11 };
        let txn = Txn::Multi(vec![
            Txn::Create {
                path: "/a".into(),
                data: b"d".to_vec(),
                acl: crate::acl::open_acl_unsafe(),
                ephemeral_owner: 5,
                parent_cversion: 2,
            },
            Txn::SetAcl { path: "/a".into(), acl: crate::acl::read_acl_unsafe(), version: 1 },
            Txn::Error { err: -101 },
        ]);
        let mut buf = Vec::new();
        encode_txn(&hdr, &txn, &mut buf);
        assert_eq!(decode_txn(&buf), Ok((hdr, txn)));
    }

    proptest! {
        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_txn(&bytes);
        }
    }
}
