"""Helpers shared by the end-to-end tests.

* deadline-bounded waiting (``EventLog``, ``wait_for``);
* four-letter words over a plain socket;
* ZooKeeper 3.5+/3.6+ requests that kazoo 2.11 (the newest release) does not
  expose: createContainer, createTTL, addWatch (persistent and persistent
  recursive watches), removeWatches, getEphemerals, getAllChildrenNumber.
  They go through kazoo's own connection (``KazooClient._call``) with request
  classes written here, following ZooKeeper's jute definitions;
* ``RawSession``: a minimal hand-rolled client session on a plain socket, used
  to observe the exact ConnectResponse and to let a session expire for real
  (close the socket without closeSession).
"""

import socket
import struct
import threading
import time
from collections import namedtuple

from kazoo.exceptions import EXCEPTIONS
from kazoo.protocol.serialization import (
    Create,
    Create2,
    Watch,
    int_struct,
    long_struct,
    read_string,
    write_buffer,
    write_string,
)
from kazoo.protocol.states import EVENT_TYPE_MAP, Callback, WatchedEvent
from kazoo.security import OPEN_ACL_UNSAFE

# CreateMode flags (org.apache.zookeeper.CreateMode).
PERSISTENT = 0
EPHEMERAL = 1
PERSISTENT_SEQUENTIAL = 2
EPHEMERAL_SEQUENTIAL = 3
CONTAINER = 4
PERSISTENT_WITH_TTL = 5
PERSISTENT_SEQUENTIAL_WITH_TTL = 6

# AddWatchMode.
ADD_WATCH_PERSISTENT = 0
ADD_WATCH_PERSISTENT_RECURSIVE = 1

# WatcherType for removeWatches.
WATCHER_CHILDREN = 1
WATCHER_DATA = 2
WATCHER_ANY = 3
WATCHER_PERSISTENT = 4
WATCHER_PERSISTENT_RECURSIVE = 5


# --------------------------------------------------------------------------
# Waiting with deadlines


def wait_for(predicate, timeout=10.0, interval=0.02):
    """Poll `predicate` until truthy or the deadline passes; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)  # poll interval; the deadline above bounds the wait


class EventLog:
    """Thread-safe recorder usable as a callback, with deadline-bounded waits."""

    def __init__(self):
        self._cond = threading.Condition()
        self.items = []

    def __call__(self, *args):
        item = args[0] if len(args) == 1 else args
        with self._cond:
            self.items.append(item)
            self._cond.notify_all()

    def wait_count(self, n, timeout=10.0):
        with self._cond:
            return self._cond.wait_for(lambda: len(self.items) >= n, timeout)

    def wait_until(self, predicate, timeout=10.0):
        with self._cond:
            return self._cond.wait_for(lambda: predicate(list(self.items)), timeout)

    def snapshot(self):
        with self._cond:
            return list(self.items)


# --------------------------------------------------------------------------
# Four-letter words


def four_letter_word(hostport, word, timeout=2.0):
    """Send a four-letter word and return the whole answer as text."""
    host, port = hostport.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(word.encode("ascii"))
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode("utf-8", "replace")


# --------------------------------------------------------------------------
# Extra requests through kazoo's connection


def _serialize_create(path, data, acl, flags):
    b = bytearray()
    b.extend(write_string(path))
    b.extend(write_buffer(data))
    b.extend(int_struct.pack(len(acl)))
    for a in acl:
        b.extend(int_struct.pack(a.perms) + write_string(a.id.scheme) + write_string(a.id.id))
    b.extend(int_struct.pack(flags))
    return b


class CreateContainer(namedtuple("CreateContainer", "path data acl flags")):
    type = 19  # OpCode.createContainer; body = CreateRequest, reply = Create2Response

    def serialize(self):
        return _serialize_create(self.path, self.data, self.acl, self.flags)

    deserialize = Create2.deserialize


class CreateTTL(namedtuple("CreateTTL", "path data acl flags ttl")):
    type = 21  # OpCode.createTTL; body = CreateTTLRequest, reply = Create2Response

    def serialize(self):
        return _serialize_create(self.path, self.data, self.acl, self.flags) + long_struct.pack(self.ttl)

    deserialize = Create2.deserialize


class AddWatch(namedtuple("AddWatch", "path mode")):
    type = 106  # OpCode.addWatch; reply has no body

    def serialize(self):
        return write_string(self.path) + int_struct.pack(self.mode)

    @classmethod
    def deserialize(cls, buf, offset):
        return True


class RemoveWatches(namedtuple("RemoveWatches", "path watcher_type")):
    type = 18  # OpCode.removeWatches; reply has no body

    def serialize(self):
        return write_string(self.path) + int_struct.pack(self.watcher_type)

    @classmethod
    def deserialize(cls, buf, offset):
        return True


class GetEphemerals(namedtuple("GetEphemerals", "prefix")):
    type = 103  # OpCode.getEphemerals

    def serialize(self):
        return write_string(self.prefix)

    @classmethod
    def deserialize(cls, buf, offset):
        count = int_struct.unpack_from(buf, offset)[0]
        offset += int_struct.size
        out = []
        for _ in range(max(count, 0)):
            s, offset = read_string(buf, offset)
            out.append(s)
        return out


class GetAllChildrenNumber(namedtuple("GetAllChildrenNumber", "path")):
    type = 104  # OpCode.getAllChildrenNumber

    def serialize(self):
        return write_string(self.path)

    @classmethod
    def deserialize(cls, buf, offset):
        return int_struct.unpack_from(buf, offset)[0]


def call(client, request, timeout=10.0):
    """Send `request` on kazoo `client`'s connection and wait for its reply."""
    result = client.handler.async_result()
    client._call(request, result)
    return result.get(timeout=timeout)


def create_container(client, path, value=b"", acl=None):
    """Create a container znode; returns (path, stat)."""
    return call(client, CreateContainer(path, value, acl or OPEN_ACL_UNSAFE, CONTAINER))


def create_ttl(client, path, ttl_ms, value=b"", acl=None, sequence=False):
    """Create a TTL znode; returns (path, stat)."""
    flags = PERSISTENT_SEQUENTIAL_WITH_TTL if sequence else PERSISTENT_WITH_TTL
    return call(client, CreateTTL(path, value, acl or OPEN_ACL_UNSAFE, flags, ttl_ms))


def get_ephemerals(client, prefix="/"):
    return call(client, GetEphemerals(prefix))


def get_all_children_number(client, path):
    return call(client, GetAllChildrenNumber(path))


def _install_persistent_dispatch(client):
    """Make kazoo deliver events to persistent watchers registered here.

    kazoo 2.11 only knows one-shot watchers; events for persistent watches
    arrive as ordinary notifications, which kazoo would drop when no one-shot
    watcher is registered for the path. We hook the connection's event reader
    to dispatch them (on kazoo's callback thread, in order) before kazoo's own
    handling runs.
    """
    if getattr(client, "_e2e_persistent", None) is not None:
        return
    client._e2e_persistent = []
    conn = client._connection
    original = conn._read_watch_event

    def read_watch_event(buffer, offset):
        watch, _ = Watch.deserialize(buffer, offset)
        if watch.type in EVENT_TYPE_MAP:
            event = WatchedEvent(EVENT_TYPE_MAP[watch.type], client._state, watch.path)
            for wpath, recursive, cb in list(client._e2e_persistent):
                if watch.path == wpath or (
                    recursive and (wpath == "/" or watch.path.startswith(wpath + "/"))
                ):
                    client.handler.dispatch_callback(Callback("watch", cb, (event,)))
        return original(buffer, offset)

    conn._read_watch_event = read_watch_event


def add_watch(client, path, callback, recursive=False):
    """addWatch(path, PERSISTENT or PERSISTENT_RECURSIVE) with a kazoo client."""
    _install_persistent_dispatch(client)
    entry = (path, recursive, callback)
    client._e2e_persistent.append(entry)
    mode = ADD_WATCH_PERSISTENT_RECURSIVE if recursive else ADD_WATCH_PERSISTENT
    try:
        call(client, AddWatch(path, mode))
    except Exception:
        client._e2e_persistent.remove(entry)
        raise
    return entry


def remove_watches(client, path, watcher_type, entry=None):
    call(client, RemoveWatches(path, watcher_type))
    if entry is not None and entry in client._e2e_persistent:
        client._e2e_persistent.remove(entry)


# --------------------------------------------------------------------------
# A raw session on a plain socket

ConnectResponse = namedtuple("ConnectResponse", "protocol_version timeout session_id passwd read_only")


class RawSession:
    """A bare ZooKeeper session: handshake plus synchronous request/reply."""

    def __init__(self, hostport, timeout_ms, session_id=0, passwd=b"\0" * 16):
        host, port = hostport.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.xid = 0
        body = struct.pack("!iqiq", 0, 0, timeout_ms, session_id) + write_buffer(passwd) + b"\0"
        self._send(body)
        reply = self._recv_frame()
        proto, timeout, sid = struct.unpack_from("!iiq", reply, 0)
        off = 16
        plen = struct.unpack_from("!i", reply, off)[0]
        off += 4
        pw = reply[off : off + max(plen, 0)]
        off += max(plen, 0)
        ro = bool(reply[off]) if off < len(reply) else False
        self.connect_response = ConnectResponse(proto, timeout, sid, pw, ro)
        self.events = []

    @property
    def session_id(self):
        return self.connect_response.session_id

    def _send(self, payload):
        self.sock.sendall(struct.pack("!i", len(payload)) + bytes(payload))

    def _recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("server closed the connection")
            buf.extend(chunk)
        return bytes(buf)

    def _recv_frame(self):
        (n,) = struct.unpack("!i", self._recv_exact(4))
        return self._recv_exact(n)

    def request(self, op_type, body=b"", xid=None):
        """Send one request; return (zxid, err, body bytes) of its reply."""
        if xid is None:
            self.xid += 1
            xid = self.xid
        self._send(struct.pack("!ii", xid, op_type) + bytes(body))
        while True:
            frame = self._recv_frame()
            rxid, zxid, err = struct.unpack_from("!iqi", frame, 0)
            if rxid == -1:  # watch notification
                self.events.append(Watch.deserialize(frame, 16)[0])
                continue
            if rxid == -2:  # ping reply
                continue
            if rxid != xid:
                raise AssertionError(f"xid mismatch: sent {xid}, got {rxid}")
            return zxid, err, frame[16:]

    def create(self, path, data=b"", flags=PERSISTENT, acl=None):
        zxid, err, body = self.request(Create.type, _serialize_create(path, data, acl or OPEN_ACL_UNSAFE, flags))
        if err:
            raise EXCEPTIONS[err]()
        return read_string(body, 0)[0]

    def set_watches(self, relative_zxid, data=(), exist=(), child=()):
        """setWatches (opcode 101, xid -8) as a client sends after reconnecting."""
        body = bytearray(long_struct.pack(relative_zxid))
        for paths in (data, exist, child):
            body.extend(int_struct.pack(len(paths)))
            for p in paths:
                body.extend(write_string(p))
        zxid, err, _ = self.request(101, body, xid=-8)
        if err:
            raise EXCEPTIONS[err]()
        return zxid

    def wait_events(self, n, timeout=10.0):
        """Read frames until `n` watch notifications have arrived."""
        deadline = time.monotonic() + timeout
        while len(self.events) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.sock.settimeout(remaining)
            try:
                frame = self._recv_frame()
            except socket.timeout:
                return False
            finally:
                self.sock.settimeout(10)
            rxid = struct.unpack_from("!i", frame, 0)[0]
            if rxid == -1:
                self.events.append(Watch.deserialize(frame, 16)[0])
        return True

    def close_session(self):
        """Send closeSession (-11) and close the socket."""
        try:
            self.request(-11)
        finally:
            self.sock.close()

    def abandon(self):
        """Drop the TCP connection without closing the session (it will expire)."""
        self.sock.close()
