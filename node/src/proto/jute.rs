//! Jute's binary encoding: big-endian ints and longs, length-prefixed buffers, strings and
//! vectors, with -1 as the length of a null buffer or vector.

use engine::{Acl, Id, Stat};

/// Why a record could not be decoded; the server answers any of these by closing the connection,
/// as ZooKeeper does on a marshalling failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record truncated at byte {0}")]
    Truncated(usize),
    #[error("negative or oversized length {0} at byte {1}")]
    BadLength(i32, usize),
    #[error("unknown opcode {0}")]
    UnknownOpcode(i32),
}

/// Reads jute values from a frame.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Reads from the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated(self.pos));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        Ok(self.take(1)?[0] != 0)
    }

    /// A buffer; null (length -1) reads as empty, as ZooKeeper stores it.
    pub fn buffer(&mut self) -> Result<Vec<u8>, DecodeError> {
        let at = self.pos;
        let len = self.i32()?;
        if len == -1 {
            return Ok(Vec::new());
        }
        if len < 0 || len as usize > self.remaining() {
            return Err(DecodeError::BadLength(len, at));
        }
        Ok(self.take(len as usize)?.to_vec())
    }

    /// A string; invalid UTF-8 is replaced, as Java's decoder does.
    pub fn string(&mut self) -> Result<String, DecodeError> {
        let at = self.pos;
        let len = self.i32()?;
        if len == -1 {
            return Ok(String::new());
        }
        if len < 0 || len as usize > self.remaining() {
            return Err(DecodeError::BadLength(len, at));
        }
        Ok(String::from_utf8_lossy(self.take(len as usize)?).into_owned())
    }

    /// A vector length; null reads as 0. Each element takes at least one byte, which bounds it.
    pub fn vec_len(&mut self) -> Result<usize, DecodeError> {
        let at = self.pos;
        let len = self.i32()?;
        if len == -1 {
            return Ok(0);
        }
        if len < 0 || len as usize > self.remaining() {
            return Err(DecodeError::BadLength(len, at));
        }
        Ok(len as usize)
    }

    pub fn strings(&mut self) -> Result<Vec<String>, DecodeError> {
        let n = self.vec_len()?;
        (0..n).map(|_| self.string()).collect()
    }

    pub fn id(&mut self) -> Result<Id, DecodeError> {
        Ok(Id { scheme: self.string()?, id: self.string()? })
    }

    pub fn acl(&mut self) -> Result<Acl, DecodeError> {
        Ok(Acl { perms: self.i32()?, id: self.id()? })
    }

    pub fn acls(&mut self) -> Result<Vec<Acl>, DecodeError> {
        let n = self.vec_len()?;
        (0..n).map(|_| self.acl()).collect()
    }

    pub fn stat(&mut self) -> Result<Stat, DecodeError> {
        Ok(Stat {
            czxid: self.i64()?,
            mzxid: self.i64()?,
            ctime: self.i64()?,
            mtime: self.i64()?,
            version: self.i32()?,
            cversion: self.i32()?,
            aversion: self.i32()?,
            ephemeral_owner: self.i64()?,
            data_length: self.i32()?,
            num_children: self.i32()?,
            pzxid: self.i64()?,
        })
    }
}

/// Writes jute values into a growing buffer.
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    /// A writer whose first four bytes are reserved for the frame length.
    pub fn frame() -> Writer {
        Writer { buf: vec![0; 4] }
    }

    /// Fills in the frame length reserved by [`Writer::frame`] and returns the frame.
    pub fn finish_frame(mut self) -> Vec<u8> {
        let len = (self.buf.len() - 4) as i32;
        self.buf[..4].copy_from_slice(&len.to_be_bytes());
        self.buf
    }

    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.buf.push(v as u8);
        self
    }

    pub fn buffer(&mut self, v: &[u8]) -> &mut Self {
        self.i32(v.len() as i32);
        self.buf.extend_from_slice(v);
        self
    }

    pub fn string(&mut self, v: &str) -> &mut Self {
        self.buffer(v.as_bytes())
    }

    pub fn strings<S: AsRef<str>>(&mut self, v: &[S]) -> &mut Self {
        self.i32(v.len() as i32);
        for s in v {
            self.string(s.as_ref());
        }
        self
    }

    pub fn acl(&mut self, a: &Acl) -> &mut Self {
        self.i32(a.perms).string(&a.id.scheme).string(&a.id.id)
    }

    pub fn acls(&mut self, v: &[Acl]) -> &mut Self {
        self.i32(v.len() as i32);
        for a in v {
            self.acl(a);
        }
        self
    }

    pub fn stat(&mut self, s: &Stat) -> &mut Self {
        self.i64(s.czxid).i64(s.mzxid).i64(s.ctime).i64(s.mtime);
        self.i32(s.version).i32(s.cversion).i32(s.aversion);
        self.i64(s.ephemeral_owner).i32(s.data_length).i32(s.num_children).i64(s.pzxid)
    }
}
