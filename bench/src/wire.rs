//! The load generator's connection plumbing over `node::proto`: the handshake, request frames
//! encoded into a reused buffer, reply frames read into a reused buffer with only the header
//! decoded (the client must cost the server's cores as little as possible: on a shared machine
//! they are the same cores), and a pipelined connection for setting up and removing keys.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use engine::code;
use node::proto::{op, xid, ConnectRequest, ConnectResponse, Reader, ReplyHeader, Request, Response, Writer};

/// Session timeout asked for; pings keep idle sessions (slow `--rate`) alive well within it.
const SESSION_TIMEOUT_MS: i32 = 30_000;
/// TCP connect and handshake bound per server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A reply later than this counts as OPERATIONTIMEOUT and ends the session: it bounds the drain
/// at the end of a run against a server that stopped answering.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest frame accepted from a server, as the project's blocking client does.
const FRAME_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Largest ConnectResponse: a fixed record of a few dozen bytes.
const CONNECT_RESPONSE_BYTES_MAX: usize = 4096;
/// Buffers of the benchmark's own user-space reader and writer per connection.
pub(crate) const IO_BUFFER_BYTES: usize = 64 * 1024;

/// Encodes one request frame into `scratch` (reused, so steady state allocates nothing here)
/// and queues it on `out`.
pub(crate) fn write_request(
    out: &mut impl Write,
    scratch: &mut Writer,
    xid: i32,
    opcode: i32,
    req: &Request,
) -> io::Result<()> {
    scratch.buf.clear();
    scratch.buf.extend_from_slice(&[0; 4]);
    scratch.i32(xid).i32(opcode);
    req.encode(opcode, scratch);
    let len = i32::try_from(scratch.buf.len() - 4).map_err(|_| io::Error::other("request too large"))?;
    scratch.buf[..4].copy_from_slice(&len.to_be_bytes());
    out.write_all(&scratch.buf)
}

/// Reads one reply frame into `frame` and decodes its header; the body stays in `frame[16..]`.
pub(crate) fn read_reply(input: &mut impl Read, frame: &mut Vec<u8>) -> io::Result<ReplyHeader> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len)?;
    let len = i32::from_be_bytes(len);
    let len = usize::try_from(len)
        .ok()
        .filter(|l| (16..=FRAME_BYTES_MAX).contains(l))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("reply frame length {len}")))?;
    frame.resize(len, 0);
    input.read_exact(frame)?;
    ReplyHeader::decode(&mut Reader::new(frame)).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Opens a TCP connection and a session on it.
pub(crate) fn handshake(addr: SocketAddr) -> io::Result<TcpStream> {
    let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(CONNECT_TIMEOUT))?;
    stream.set_write_timeout(Some(REPLY_TIMEOUT))?;
    let req = ConnectRequest::new_session(SESSION_TIMEOUT_MS);
    let mut w = Writer::frame();
    req.encode(&mut w);
    stream.write_all(&w.finish_frame())?;
    let body = node::proto::read_frame(&mut stream, CONNECT_RESPONSE_BYTES_MAX)?;
    let rsp =
        ConnectResponse::decode(&mut Reader::new(&body)).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    if rsp.session_id == 0 || rsp.timeout_ms <= 0 {
        return Err(io::Error::other("session refused"));
    }
    stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
    Ok(stream)
}

/// A blocking, pipelined connection for setting up and removing the key space.
pub(crate) struct Conn {
    out: BufWriter<TcpStream>,
    input: BufReader<TcpStream>,
    frame: Vec<u8>,
    scratch: Writer,
    next_xid: i32,
}

impl Conn {
    pub(crate) fn open(addr: SocketAddr) -> io::Result<Conn> {
        let stream = handshake(addr)?;
        let input = BufReader::with_capacity(IO_BUFFER_BYTES, stream.try_clone()?);
        Ok(Conn {
            out: BufWriter::with_capacity(IO_BUFFER_BYTES, stream),
            input,
            frame: Vec::new(),
            scratch: Writer::default(),
            next_xid: 1,
        })
    }

    /// Reads up to the reply to `want`, skipping pings and events.
    fn reply_to(&mut self, want: i32) -> io::Result<ReplyHeader> {
        loop {
            let h = read_reply(&mut self.input, &mut self.frame)?;
            if h.xid == want {
                return Ok(h);
            }
            if h.xid != xid::NOTIFICATION && h.xid != xid::PING {
                return Err(io::Error::new(io::ErrorKind::InvalidData, format!("reply {} out of order", h.xid)));
            }
        }
    }

    /// Sends `reqs` with up to `window` in flight and counts the replies by error code.
    pub(crate) fn pipeline(
        &mut self,
        reqs: impl Iterator<Item = (i32, Request)>,
        window: usize,
    ) -> io::Result<BTreeMap<i32, u64>> {
        let mut codes = BTreeMap::new();
        let mut outstanding = VecDeque::new();
        for (opcode, req) in reqs {
            if outstanding.len() >= window {
                self.out.flush()?;
                let want = outstanding.pop_front().unwrap_or_default();
                *codes.entry(self.reply_to(want)?.err).or_insert(0) += 1;
            }
            let x = self.next_xid;
            self.next_xid += 1;
            write_request(&mut self.out, &mut self.scratch, x, opcode, &req)?;
            outstanding.push_back(x);
        }
        self.out.flush()?;
        for want in outstanding {
            *codes.entry(self.reply_to(want)?.err).or_insert(0) += 1;
        }
        Ok(codes)
    }

    /// One request and its reply; the body is decoded when it succeeded.
    pub(crate) fn call(&mut self, opcode: i32, req: Request) -> io::Result<(i32, Option<Response>)> {
        let x = self.next_xid;
        self.next_xid += 1;
        write_request(&mut self.out, &mut self.scratch, x, opcode, &req)?;
        self.out.flush()?;
        let h = self.reply_to(x)?;
        if h.err != code::OK {
            return Ok((h.err, None));
        }
        let body = Response::decode(opcode, &mut Reader::new(&self.frame[16..]))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok((h.err, Some(body)))
    }

    /// Ends the session, so the server need not wait for it to expire.
    pub(crate) fn close(mut self) {
        let _ = self.call(op::CLOSE_SESSION, Request::CloseSession);
    }
}
