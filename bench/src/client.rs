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
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let len = i32::from_be_bytes(len);
    if !(0..=64 * 1024 * 1024).contains(&len) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame length {len}")));
    }
    let mut buf = vec![0u8; len as usize];
    stream.read_exact(&mut buf)?;
    Ok(buf)
}

impl Client {
    /// Opens a new session with the requested timeout.
    pub fn connect(addr: impl ToSocketAddrs, timeout_ms: i32) -> Result<Client, ClientError> {
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms,
            session_id: 0,
            password: vec![0; 16],
            read_only: Some(false),
        };
        Client::handshake(addr, &req)
    }

    /// Resumes a session on a new connection (what a client does after a disconnect).
    pub fn resume(
        addr: impl ToSocketAddrs,
        session_id: i64,
        password: &[u8],
        last_zxid: i64,
        timeout_ms: i32,
    ) -> Result<Client, ClientError> {
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: last_zxid,
            timeout_ms,
            session_id,
            password: password.to_vec(),
            read_only: Some(false),
        };
        Client::handshake(addr, &req)
    }

    /// Sends a ConnectRequest and reads the ConnectResponse; an expired answer is an error.
    pub fn handshake(addr: impl ToSocketAddrs, req: &ConnectRequest) -> Result<Client, ClientError> {
        let (stream, rsp) = Client::raw_handshake(addr, req)?;
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
        let mut stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
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
