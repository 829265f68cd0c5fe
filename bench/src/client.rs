//! A blocking, single-connection ZooKeeper client over `node::proto`: every opcode, raw frames
//! for hostile-input tests, and watch events kept in arrival order.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use node::proto::{
    op, xid, ConnectRequest, ConnectResponse, Packet, Reader, ReplyHeader, Request, Response, WatcherEvent, Writer,
};

/// A reply: the header, and the decoded body when the request succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub header: ReplyHeader,
    pub response: Option<Response>,
}

impl Reply {
    /// The error code (0 on success).
    pub fn err(&self) -> i32 {
        self.header.err
    }
}

/// Why a call failed below the protocol (socket, timeout, garbage, session refused).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("undecodable frame: {0}")]
    Decode(#[from] node::proto::DecodeError),
    #[error("session refused or expired")]
    SessionExpired,
}

/// A connected session.
pub struct Client {
    stream: TcpStream,
    pub addr: SocketAddr,
    pub session_id: i64,
    pub password: Vec<u8>,
    pub timeout_ms: i32,
    pub last_zxid: i64,
    next_xid: i32,
    /// Watch events received and not yet taken, oldest first.
    pub events: VecDeque<WatcherEvent>,
    /// Every frame in arrival order as (xid, zxid), events included: for ordering checks.
    pub arrivals: Vec<(i32, i64)>,
}

/// How long a call waits for its reply before failing.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

fn read_frame(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    node::proto::read_frame(stream, FRAME_BYTES_MAX)
}

/// The largest frame this client accepts.
const FRAME_BYTES_MAX: usize = 64 * 1024 * 1024;

impl Client {
    /// Opens a new session with the requested timeout.
    pub fn connect(addr: impl ToSocketAddrs, timeout_ms: i32) -> Result<Client, ClientError> {
        Client::handshake(addr, &ConnectRequest::new_session(timeout_ms))
    }

    /// Resumes a session on a new connection (what a client does after a disconnect).
    pub fn resume(
        addr: impl ToSocketAddrs,
        session_id: i64,
        password: &[u8],
        last_zxid: i64,
        timeout_ms: i32,
    ) -> Result<Client, ClientError> {
        Client::handshake(addr, &ConnectRequest::resume(session_id, password, last_zxid, timeout_ms))
    }

    /// Sends a ConnectRequest and reads the ConnectResponse; an expired answer is an error.
    pub fn handshake(addr: impl ToSocketAddrs, req: &ConnectRequest) -> Result<Client, ClientError> {
        let (stream, rsp) = Client::raw_handshake(addr, req)?;
        Client::established(stream, rsp, req)
    }

    /// A client on a handshaken stream; an expired answer is an error.
    fn established(stream: TcpStream, rsp: ConnectResponse, req: &ConnectRequest) -> Result<Client, ClientError> {
        if rsp.session_id == 0 || rsp.timeout_ms <= 0 {
            return Err(ClientError::SessionExpired);
        }
        let addr = stream.peer_addr()?;
        Ok(Client {
            stream,
            addr,
            session_id: rsp.session_id,
            password: rsp.password,
            timeout_ms: rsp.timeout_ms,
            last_zxid: req.last_zxid_seen,
            next_xid: 1,
            events: VecDeque::new(),
            arrivals: Vec::new(),
        })
    }

    /// The handshake without interpretation: for tests of expired or refused sessions.
    pub fn raw_handshake(
        addr: impl ToSocketAddrs,
        req: &ConnectRequest,
    ) -> Result<(TcpStream, ConnectResponse), ClientError> {
        Client::handshake_on(TcpStream::connect(addr)?, req)
    }

    /// [`Client::handshake`] with a bound on the TCP connect, so a shell walking a list of
    /// servers does not hang on one that drops packets; an expired answer is an error.
    pub fn handshake_within(
        addr: &SocketAddr,
        req: &ConnectRequest,
        connect_timeout: Duration,
    ) -> Result<Client, ClientError> {
        let (stream, rsp) = Client::handshake_on(TcpStream::connect_timeout(addr, connect_timeout)?, req)?;
        Client::established(stream, rsp, req)
    }

    /// [`Client::handshake`] on a stream the caller connected, e.g. from a chosen source
    /// address (a second client address on loopback); an expired answer is an error.
    pub fn handshake_over(stream: TcpStream, req: &ConnectRequest) -> Result<Client, ClientError> {
        let (stream, rsp) = Client::handshake_on(stream, req)?;
        Client::established(stream, rsp, req)
    }

    /// A new session with the TCP connect and the handshake each bounded by `within`, as
    /// ZooKeeper's client bounds its connect attempts: a server that accepts connections but
    /// does not answer (SIGSTOPped, its listen backlog still open) costs `within`, not
    /// [`REPLY_TIMEOUT`]. Calls on the session then wait [`REPLY_TIMEOUT`] as usual.
    pub fn connect_within(addr: &SocketAddr, timeout_ms: i32, within: Duration) -> Result<Client, ClientError> {
        let req = ConnectRequest::new_session(timeout_ms);
        let stream = TcpStream::connect_timeout(addr, within)?;
        let (stream, rsp) = Client::handshake_on_within(stream, &req, within)?;
        stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
        Client::established(stream, rsp, &req)
    }

    fn handshake_on(stream: TcpStream, req: &ConnectRequest) -> Result<(TcpStream, ConnectResponse), ClientError> {
        Client::handshake_on_within(stream, req, REPLY_TIMEOUT)
    }

    fn handshake_on_within(
        mut stream: TcpStream,
        req: &ConnectRequest,
        within: Duration,
    ) -> Result<(TcpStream, ConnectResponse), ClientError> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(within))?;
        let mut w = Writer::frame();
        req.encode(&mut w);
        stream.write_all(&w.finish_frame())?;
        let frame = read_frame(&mut stream)?;
        let rsp = ConnectResponse::decode(&mut Reader::new(&frame))?;
        Ok((stream, rsp))
    }

    /// The next xid this client will use.
    pub fn next_xid(&mut self) -> i32 {
        let x = self.next_xid;
        self.next_xid += 1;
        x
    }

    /// Writes a request without waiting: for pipelining.
    pub fn send(&mut self, xid: i32, opcode: i32, request: &Request) -> Result<(), ClientError> {
        let p = Packet { xid, op: opcode, request: request.clone() };
        self.stream.write_all(&p.encode())?;
        Ok(())
    }

    /// Writes raw bytes: for hostile-input tests.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.stream.write_all(bytes)?;
        Ok(())
    }

    /// Reads frames until the reply with `xid`, keeping events; decodes the body for `opcode`.
    pub fn receive(&mut self, want_xid: i32, opcode: i32) -> Result<Reply, ClientError> {
        loop {
            let frame = read_frame(&mut self.stream)?;
            let mut r = Reader::new(&frame);
            let header = ReplyHeader::decode(&mut r)?;
            self.arrivals.push((header.xid, header.zxid));
            if header.xid == xid::NOTIFICATION {
                self.events.push_back(WatcherEvent::decode(&mut r)?);
                continue;
            }
            if header.zxid > self.last_zxid {
                self.last_zxid = header.zxid;
            }
            if header.xid != want_xid {
                continue;
            }
            let response = if header.err == 0 { Some(Response::decode(opcode, &mut r)?) } else { None };
            return Ok(Reply { header, response });
        }
    }

    /// Sends one request and waits for its reply.
    pub fn call(&mut self, opcode: i32, request: Request) -> Result<Reply, ClientError> {
        let x = match opcode {
            op::PING => xid::PING,
            op::AUTH => xid::AUTH,
            op::SET_WATCHES | op::SET_WATCHES2 => xid::SET_WATCHES,
            _ => self.next_xid(),
        };
        self.send(x, opcode, &request)?;
        self.receive(x, opcode)
    }

    /// Waits up to `timeout` for a watch event.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<WatcherEvent>, ClientError> {
        if let Some(e) = self.events.pop_front() {
            return Ok(Some(e));
        }
        self.stream.set_read_timeout(Some(timeout))?;
        let got = match read_frame(&mut self.stream) {
            Ok(frame) => {
                let mut r = Reader::new(&frame);
                let header = ReplyHeader::decode(&mut r)?;
                self.arrivals.push((header.xid, header.zxid));
                if header.xid == xid::NOTIFICATION {
                    Some(WatcherEvent::decode(&mut r)?)
                } else {
                    None
                }
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => None,
            Err(e) => return Err(e.into()),
        };
        self.stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
        Ok(got)
    }

    /// Whether the server closed the connection (reads EOF within `timeout`).
    pub fn is_closed_by_server(&mut self, timeout: Duration) -> bool {
        let _ = self.stream.set_read_timeout(Some(timeout));
        let mut b = [0u8; 1024];
        loop {
            match self.stream.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => return false,
                Err(_) => return true,
            }
        }
    }

    /// Closes the socket without closing the session.
    pub fn drop_connection(self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    /// A second handle on the socket for a thread that only reads, so that replies and watch
    /// events are taken while another thread sends (the shell prints events while it waits for
    /// input). Once it exists, read only through it.
    pub fn reader(&self) -> io::Result<FrameReader> {
        Ok(FrameReader { stream: self.stream.try_clone()?, buf: Vec::new() })
    }
}

/// The reading half of a [`Client`]: whole frames, each as its header and undecoded body.
pub struct FrameReader {
    stream: TcpStream,
    /// Bytes read past the last whole frame: a read timeout may fall inside a frame.
    buf: Vec<u8>,
}

/// The largest frame [`FrameReader`] accepts, as `read_frame` does.
const FRAME_LEN_MAX: usize = 64 * 1024 * 1024;

impl FrameReader {
    /// The next frame, or None when `timeout` passes first; Err when the connection is gone.
    /// The body is left undecoded so the caller can tell a null buffer (length -1) from an
    /// empty one, which `Response::decode` does not.
    pub fn next_frame(&mut self, timeout: Duration) -> Result<Option<(ReplyHeader, Vec<u8>)>, ClientError> {
        loop {
            if self.buf.len() >= 4 {
                let len = i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
                let len = usize::try_from(len)
                    .ok()
                    .filter(|l| (16..=FRAME_LEN_MAX).contains(l))
                    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("frame length {len}")))?;
                if self.buf.len() >= 4 + len {
                    let frame: Vec<u8> = self.buf.drain(..4 + len).skip(4).collect();
                    let header = ReplyHeader::decode(&mut Reader::new(&frame))?;
                    return Ok(Some((header, frame[16..].to_vec())));
                }
            }
            self.stream.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Shuts the socket down both ways, which also wakes a thread blocked in `next_frame`.
    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// Sends a four-letter word and returns the server's whole answer.
pub fn four_letter(addr: impl ToSocketAddrs, cmd: &str) -> io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(REPLY_TIMEOUT))?;
    s.write_all(cmd.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}
