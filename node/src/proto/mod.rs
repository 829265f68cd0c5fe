//! ZooKeeper's client wire protocol, to the byte: frames, the handshake, every request and
//! response record. One codec for the server, the bench client and the tests.

pub mod jute;

use engine::{Acl, Stat};
pub use jute::{DecodeError, Reader, Writer};

/// Request opcodes (`ZooDefs.OpCode`).
pub mod op {
    pub const NOTIFICATION: i32 = 0;
    pub const CREATE: i32 = 1;
    pub const DELETE: i32 = 2;
    pub const EXISTS: i32 = 3;
    pub const GET_DATA: i32 = 4;
    pub const SET_DATA: i32 = 5;
    pub const GET_ACL: i32 = 6;
    pub const SET_ACL: i32 = 7;
    pub const GET_CHILDREN: i32 = 8;
    pub const SYNC: i32 = 9;
    pub const PING: i32 = 11;
    pub const GET_CHILDREN2: i32 = 12;
    pub const CHECK: i32 = 13;
    pub const MULTI: i32 = 14;
    pub const CREATE2: i32 = 15;
    pub const RECONFIG: i32 = 16;
    pub const CHECK_WATCHES: i32 = 17;
    pub const REMOVE_WATCHES: i32 = 18;
    pub const CREATE_CONTAINER: i32 = 19;
    pub const DELETE_CONTAINER: i32 = 20;
    pub const CREATE_TTL: i32 = 21;
    pub const MULTI_READ: i32 = 22;
    pub const AUTH: i32 = 100;
    pub const SET_WATCHES: i32 = 101;
    pub const SASL: i32 = 102;
    pub const GET_EPHEMERALS: i32 = 103;
    pub const GET_ALL_CHILDREN_NUMBER: i32 = 104;
    pub const SET_WATCHES2: i32 = 105;
    pub const ADD_WATCH: i32 = 106;
    pub const WHO_AM_I: i32 = 107;
    pub const CREATE_SESSION: i32 = -10;
    pub const CLOSE_SESSION: i32 = -11;
    pub const ERROR: i32 = -1;
}

/// Reserved xids (`ClientCnxn`).
pub mod xid {
    pub const NOTIFICATION: i32 = -1;
    pub const PING: i32 = -2;
    pub const AUTH: i32 = -4;
    pub const SET_WATCHES: i32 = -8;
}

/// Watch event types (`Watcher.Event.EventType`).
pub mod event {
    pub const NONE: i32 = -1;
    pub const NODE_CREATED: i32 = 1;
    pub const NODE_DELETED: i32 = 2;
    pub const NODE_DATA_CHANGED: i32 = 3;
    pub const NODE_CHILDREN_CHANGED: i32 = 4;
    /// Keeper state `SyncConnected`, the state of every event the server sends.
    pub const STATE_SYNC_CONNECTED: i32 = 3;
}

/// `WatcherType` of checkWatches/removeWatches.
pub mod watcher_type {
    pub const CHILDREN: i32 = 1;
    pub const DATA: i32 = 2;
    pub const ANY: i32 = 3;
    pub const PERSISTENT: i32 = 4;
    pub const PERSISTENT_RECURSIVE: i32 = 5;
}

/// `AddWatchModes`.
pub mod add_watch_mode {
    pub const PERSISTENT: i32 = 0;
    pub const PERSISTENT_RECURSIVE: i32 = 1;
}

/// Create flags (`CreateMode.toFlag`).
pub mod create_flags {
    pub const PERSISTENT: i32 = 0;
    pub const EPHEMERAL: i32 = 1;
    pub const PERSISTENT_SEQUENTIAL: i32 = 2;
    pub const EPHEMERAL_SEQUENTIAL: i32 = 3;
    pub const CONTAINER: i32 = 4;
    pub const PERSISTENT_WITH_TTL: i32 = 5;
    pub const PERSISTENT_SEQUENTIAL_WITH_TTL: i32 = 6;
}

/// The first frame a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub password: Vec<u8>,
    /// None for clients older than 3.4 that do not send the flag (and must not receive it).
    pub read_only: Option<bool>,
}

impl ConnectRequest {
    /// A request for a new session, as current clients send it (with the readOnly flag).
    pub fn new_session(timeout_ms: i32) -> ConnectRequest {
        ConnectRequest::resume(0, &[0; 16], 0, timeout_ms)
    }

    /// A request that resumes a session on a new connection.
    pub fn resume(session_id: i64, password: &[u8], last_zxid_seen: i64, timeout_ms: i32) -> ConnectRequest {
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen,
            timeout_ms,
            session_id,
            password: password.to_vec(),
            read_only: Some(false),
        }
    }

    pub fn decode(r: &mut Reader) -> Result<ConnectRequest, DecodeError> {
        Ok(ConnectRequest {
            protocol_version: r.i32()?,
            last_zxid_seen: r.i64()?,
            timeout_ms: r.i32()?,
            session_id: r.i64()?,
            password: r.buffer()?,
            read_only: if r.remaining() > 0 { Some(r.bool()?) } else { None },
        })
    }

    pub fn encode(&self, w: &mut Writer) {
        w.i32(self.protocol_version).i64(self.last_zxid_seen).i32(self.timeout_ms);
        w.i64(self.session_id).buffer(&self.password);
        if let Some(ro) = self.read_only {
            w.bool(ro);
        }
    }
}

/// The server's answer to the handshake; timeout 0 and session 0 mean "expired".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub password: Vec<u8>,
    pub read_only: Option<bool>,
}

impl ConnectResponse {
    pub fn decode(r: &mut Reader) -> Result<ConnectResponse, DecodeError> {
        Ok(ConnectResponse {
            protocol_version: r.i32()?,
            timeout_ms: r.i32()?,
            session_id: r.i64()?,
            password: r.buffer()?,
            read_only: if r.remaining() > 0 { Some(r.bool()?) } else { None },
        })
    }

    pub fn encode(&self, w: &mut Writer) {
        w.i32(self.protocol_version).i32(self.timeout_ms).i64(self.session_id).buffer(&self.password);
        if let Some(ro) = self.read_only {
            w.bool(ro);
        }
    }
}

/// Reads one length-prefixed frame from a blocking stream, refusing lengths outside
/// `0..=max_bytes` (the clients' side of the framing the server does on its cores).
pub fn read_frame(input: &mut impl std::io::Read, max_bytes: usize) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len)?;
    let len = i32::from_be_bytes(len);
    let len = usize::try_from(len).ok().filter(|l| *l <= max_bytes).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("frame length {len} out of range"))
    })?;
    let mut buf = vec![0u8; len];
    input.read_exact(&mut buf)?;
    Ok(buf)
}

/// Heads every reply and notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyHeader {
    pub xid: i32,
    pub zxid: i64,
    pub err: i32,
}

impl ReplyHeader {
    pub fn decode(r: &mut Reader) -> Result<ReplyHeader, DecodeError> {
        Ok(ReplyHeader { xid: r.i32()?, zxid: r.i64()?, err: r.i32()? })
    }

    pub fn encode(&self, w: &mut Writer) {
        w.i32(self.xid).i64(self.zxid).i32(self.err);
    }
}

/// A watch notification's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatcherEvent {
    pub event_type: i32,
    pub state: i32,
    pub path: String,
}

impl WatcherEvent {
    pub fn decode(r: &mut Reader) -> Result<WatcherEvent, DecodeError> {
        Ok(WatcherEvent { event_type: r.i32()?, state: r.i32()?, path: r.string()? })
    }

    pub fn encode(&self, w: &mut Writer) {
        w.i32(self.event_type).i32(self.state).string(&self.path);
    }
}

/// Watches a reconnecting client re-arms (`SetWatches`, and `SetWatches2` with the persistent
/// kinds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetWatches {
    pub relative_zxid: i64,
    pub data: Vec<String>,
    pub exist: Vec<String>,
    pub child: Vec<String>,
    pub persistent: Vec<String>,
    pub persistent_recursive: Vec<String>,
}

/// Every request a client can send after the handshake, with its record decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// create, create2, createContainer and createTTL (ttl is -1 unless createTTL).
    Create {
        path: String,
        data: Vec<u8>,
        acl: Vec<Acl>,
        flags: i32,
        ttl: i64,
    },
    Delete {
        path: String,
        version: i32,
    },
    Exists {
        path: String,
        watch: bool,
    },
    GetData {
        path: String,
        watch: bool,
    },
    SetData {
        path: String,
        data: Vec<u8>,
        version: i32,
    },
    GetAcl {
        path: String,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    /// getChildren and getChildren2.
    GetChildren {
        path: String,
        watch: bool,
    },
    Sync {
        path: String,
    },
    Check {
        path: String,
        version: i32,
    },
    /// multi and multiRead: (opcode, request) pairs.
    Multi(Vec<(i32, Request)>),
    Auth {
        auth_type: i32,
        scheme: String,
        auth: Vec<u8>,
    },
    SetWatches(SetWatches),
    AddWatch {
        path: String,
        mode: i32,
    },
    /// checkWatches and removeWatches.
    Watches {
        path: String,
        watcher_type: i32,
    },
    GetEphemerals {
        prefix: String,
    },
    GetAllChildrenNumber {
        path: String,
    },
    WhoAmI,
    CloseSession,
    Ping,
    Reconfig {
        joining: String,
        leaving: String,
        new_members: String,
        config_id: i64,
    },
    Sasl {
        token: Vec<u8>,
    },
}

/// One request frame after the handshake: header and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub xid: i32,
    pub op: i32,
    pub request: Request,
}

/// Ends a multi's list of ops (`MultiHeader(-1, true, -1)`).
fn write_multi_end(w: &mut Writer) {
    w.i32(-1).bool(true).i32(-1);
}

impl Packet {
    /// Decodes a request frame (without its length prefix).
    pub fn decode(frame: &[u8]) -> Result<Packet, DecodeError> {
        let mut r = Reader::new(frame);
        let xid = r.i32()?;
        let op = r.i32()?;
        let request = Request::decode(op, &mut r)?;
        Ok(Packet { xid, op, request })
    }

    /// Encodes a whole frame, length prefix included.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::frame();
        w.i32(self.xid).i32(self.op);
        self.request.encode(self.op, &mut w);
        w.finish_frame()
    }
}

impl Request {
    /// Decodes the record that follows a request header of opcode `op`.
    pub fn decode(op: i32, r: &mut Reader) -> Result<Request, DecodeError> {
        use op::*;
        Ok(match op {
            CREATE | CREATE2 | CREATE_CONTAINER | CREATE_TTL => Request::Create {
                path: r.string()?,
                data: r.buffer()?,
                acl: r.acls()?,
                flags: r.i32()?,
                ttl: if op == CREATE_TTL { r.i64()? } else { -1 },
            },
            DELETE | DELETE_CONTAINER => {
                Request::Delete { path: r.string()?, version: if op == DELETE { r.i32()? } else { -1 } }
            }
            EXISTS => Request::Exists { path: r.string()?, watch: r.bool()? },
            GET_DATA => Request::GetData { path: r.string()?, watch: r.bool()? },
            SET_DATA => Request::SetData { path: r.string()?, data: r.buffer()?, version: r.i32()? },
            GET_ACL => Request::GetAcl { path: r.string()? },
            SET_ACL => Request::SetAcl { path: r.string()?, acl: r.acls()?, version: r.i32()? },
            GET_CHILDREN | GET_CHILDREN2 => Request::GetChildren { path: r.string()?, watch: r.bool()? },
            SYNC => Request::Sync { path: r.string()? },
            CHECK => Request::Check { path: r.string()?, version: r.i32()? },
            MULTI | MULTI_READ => {
                let mut ops = Vec::new();
                loop {
                    let (sub_op, done, _err) = (r.i32()?, r.bool()?, r.i32()?);
                    if done {
                        break;
                    }
                    match sub_op {
                        CREATE | CREATE2 | CREATE_CONTAINER | CREATE_TTL | DELETE | SET_DATA | CHECK | GET_CHILDREN
                        | GET_DATA => ops.push((sub_op, Request::decode(sub_op, r)?)),
                        other => return Err(DecodeError::UnknownOpcode(other)),
                    }
                }
                Request::Multi(ops)
            }
            AUTH => Request::Auth { auth_type: r.i32()?, scheme: r.string()?, auth: r.buffer()? },
            SET_WATCHES | SET_WATCHES2 => {
                let mut sw = SetWatches {
                    relative_zxid: r.i64()?,
                    data: r.strings()?,
                    exist: r.strings()?,
                    child: r.strings()?,
                    ..SetWatches::default()
                };
                if op == SET_WATCHES2 {
                    sw.persistent = r.strings()?;
                    sw.persistent_recursive = r.strings()?;
                }
                Request::SetWatches(sw)
            }
            ADD_WATCH => Request::AddWatch { path: r.string()?, mode: r.i32()? },
            CHECK_WATCHES | REMOVE_WATCHES => Request::Watches { path: r.string()?, watcher_type: r.i32()? },
            GET_EPHEMERALS => Request::GetEphemerals { prefix: r.string()? },
            GET_ALL_CHILDREN_NUMBER => Request::GetAllChildrenNumber { path: r.string()? },
            WHO_AM_I => Request::WhoAmI,
            CLOSE_SESSION => Request::CloseSession,
            PING => Request::Ping,
            RECONFIG => Request::Reconfig {
                joining: r.string()?,
                leaving: r.string()?,
                new_members: r.string()?,
                config_id: r.i64()?,
            },
            SASL => Request::Sasl { token: r.buffer()? },
            other => return Err(DecodeError::UnknownOpcode(other)),
        })
    }

    /// Encodes the record for opcode `op` (the client side of [`Request::decode`]).
    pub fn encode(&self, op: i32, w: &mut Writer) {
        match self {
            Request::Create { path, data, acl, flags, ttl } => {
                w.string(path).buffer(data).acls(acl).i32(*flags);
                if op == op::CREATE_TTL {
                    w.i64(*ttl);
                }
            }
            Request::Delete { path, version } => {
                w.string(path);
                if op == op::DELETE {
                    w.i32(*version);
                }
            }
            Request::Exists { path, watch }
            | Request::GetData { path, watch }
            | Request::GetChildren { path, watch } => {
                w.string(path).bool(*watch);
            }
            Request::SetData { path, data, version } => {
                w.string(path).buffer(data).i32(*version);
            }
            Request::GetAcl { path }
            | Request::Sync { path }
            | Request::GetAllChildrenNumber { path }
            | Request::GetEphemerals { prefix: path } => {
                w.string(path);
            }
            Request::SetAcl { path, acl, version } => {
                w.string(path).acls(acl).i32(*version);
            }
            Request::Check { path, version } => {
                w.string(path).i32(*version);
            }
            Request::Multi(ops) => {
                for (sub_op, req) in ops {
                    w.i32(*sub_op).bool(false).i32(-1);
                    req.encode(*sub_op, w);
                }
                write_multi_end(w);
            }
            Request::Auth { auth_type, scheme, auth } => {
                w.i32(*auth_type).string(scheme).buffer(auth);
            }
            Request::SetWatches(sw) => {
                w.i64(sw.relative_zxid).strings(&sw.data).strings(&sw.exist).strings(&sw.child);
                if op == op::SET_WATCHES2 {
                    w.strings(&sw.persistent).strings(&sw.persistent_recursive);
                }
            }
            Request::AddWatch { path, mode } => {
                w.string(path).i32(*mode);
            }
            Request::Watches { path, watcher_type } => {
                w.string(path).i32(*watcher_type);
            }
            Request::WhoAmI | Request::CloseSession | Request::Ping => {}
            Request::Reconfig { joining, leaving, new_members, config_id } => {
                w.string(joining).string(leaving).string(new_members).i64(*config_id);
            }
            Request::Sasl { token } => {
                w.buffer(token);
            }
        }
    }

    /// Whether this request changes state (goes through a txn), as ZooKeeper classifies it.
    pub fn is_write(&self, op: i32) -> bool {
        matches!(
            op,
            op::CREATE
                | op::CREATE2
                | op::CREATE_CONTAINER
                | op::CREATE_TTL
                | op::DELETE
                | op::DELETE_CONTAINER
                | op::SET_DATA
                | op::SET_ACL
                | op::CHECK
                | op::MULTI
                | op::RECONFIG
                | op::CLOSE_SESSION
        )
    }
}

/// One result inside a multi or multiRead response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiResult {
    /// The result's opcode, or -1 for an error.
    pub op: i32,
    pub err: i32,
    pub response: Response,
}

/// A decoded response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Empty,
    /// create, sync.
    Path(String),
    /// create2, createContainer, createTTL.
    PathStat(String, Stat),
    /// exists, setData, setACL.
    Stat(Stat),
    Data(Vec<u8>, Stat),
    Acl(Vec<Acl>, Stat),
    Children(Vec<String>),
    Children2(Vec<String>, Stat),
    Multi(Vec<MultiResult>),
    /// getEphemerals.
    Paths(Vec<String>),
    /// getAllChildrenNumber.
    Count(i32),
    /// A bare int body: ZooKeeper's `ErrorResponse` record, which addWatch answers with 0.
    Code(i32),
    /// whoAmI: (scheme, user) pairs.
    ClientInfo(Vec<(String, String)>),
}

impl Response {
    /// Decodes the body of a successful reply to a request of opcode `op`.
    pub fn decode(op: i32, r: &mut Reader) -> Result<Response, DecodeError> {
        use op::*;
        Ok(match op {
            CREATE | SYNC => Response::Path(r.string()?),
            CREATE2 | CREATE_CONTAINER | CREATE_TTL => Response::PathStat(r.string()?, r.stat()?),
            EXISTS | SET_DATA | SET_ACL => Response::Stat(r.stat()?),
            GET_DATA => Response::Data(r.buffer()?, r.stat()?),
            GET_ACL => Response::Acl(r.acls()?, r.stat()?),
            GET_CHILDREN => Response::Children(r.strings()?),
            GET_CHILDREN2 => Response::Children2(r.strings()?, r.stat()?),
            MULTI | MULTI_READ => {
                let mut results = Vec::new();
                loop {
                    let (sub_op, done, err) = (r.i32()?, r.bool()?, r.i32()?);
                    if done {
                        break;
                    }
                    let response = match sub_op {
                        ERROR => {
                            r.i32()?;
                            Response::Empty
                        }
                        DELETE | CHECK => Response::Empty,
                        other => Response::decode(other, r)?,
                    };
                    results.push(MultiResult { op: sub_op, err, response });
                }
                Response::Multi(results)
            }
            GET_EPHEMERALS => Response::Paths(r.strings()?),
            GET_ALL_CHILDREN_NUMBER => Response::Count(r.i32()?),
            ADD_WATCH => Response::Code(r.i32()?),
            WHO_AM_I => {
                let n = r.vec_len()?;
                Response::ClientInfo((0..n).map(|_| Ok((r.string()?, r.string()?))).collect::<Result<_, _>>()?)
            }
            _ => Response::Empty,
        })
    }

    /// Encodes the body (the server side of [`Response::decode`]).
    pub fn encode(&self, w: &mut Writer) {
        match self {
            Response::Empty => {}
            Response::Path(p) => {
                w.string(p);
            }
            Response::PathStat(p, s) => {
                w.string(p).stat(s);
            }
            Response::Stat(s) => {
                w.stat(s);
            }
            Response::Data(d, s) => {
                w.buffer(d).stat(s);
            }
            Response::Acl(a, s) => {
                w.acls(a).stat(s);
            }
            Response::Children(c) | Response::Paths(c) => {
                w.strings(c);
            }
            Response::Children2(c, s) => {
                w.strings(c).stat(s);
            }
            Response::Multi(results) => {
                for m in results {
                    w.i32(m.op).bool(false).i32(m.err);
                    if m.op == op::ERROR {
                        w.i32(m.err);
                    } else {
                        m.response.encode(w);
                    }
                }
                write_multi_end(w);
            }
            Response::Count(n) | Response::Code(n) => {
                w.i32(*n);
            }
            Response::ClientInfo(infos) => {
                w.i32(infos.len() as i32);
                for (scheme, user) in infos {
                    w.string(scheme).string(user);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn multi_round_trips() {
        let p = Packet {
            xid: 5,
            op: op::MULTI,
            request: Request::Multi(vec![
                (
                    op::CREATE,
                    Request::Create {
                        path: "/a".into(),
                        data: vec![1],
                        acl: engine::acl::open_acl_unsafe(),
                        flags: 0,
                        ttl: -1,
                    },
                ),
                (op::CHECK, Request::Check { path: "/a".into(), version: 0 }),
                (op::DELETE, Request::Delete { path: "/a".into(), version: -1 }),
            ]),
        };
        let frame = p.encode();
        assert_eq!(Packet::decode(&frame[4..]), Ok(p));
    }

    #[test]
    fn connect_request_without_read_only_flag_decodes() {
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 3,
            timeout_ms: 4000,
            session_id: 0,
            password: vec![0; 16],
            read_only: None,
        };
        let mut w = Writer::default();
        req.encode(&mut w);
        assert_eq!(ConnectRequest::decode(&mut Reader::new(&w.buf)), Ok(req));
    }

    proptest! {
        #[test]
        fn decoder_never_panics_on_arbitrary_frames(frame in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Packet::decode(&frame);
            let _ = ConnectRequest::decode(&mut Reader::new(&frame));
        }

        #[test]
        fn decoder_never_panics_on_valid_headers(op in -12i32..110, body in proptest::collection::vec(any::<u8>(), 0..128)) {
            let mut frame = vec![0, 0, 0, 1];
            frame.extend_from_slice(&op.to_be_bytes());
            frame.extend_from_slice(&body);
            let _ = Packet::decode(&frame);
        }
    }
}
