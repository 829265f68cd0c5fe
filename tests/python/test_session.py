"""Sessions: negotiation, close, expiry, ephemerals tied to sessions."""

import socket
import threading
import time

import pytest
from kazoo.exceptions import NodeExistsError
from kazoo.protocol.states import EventType, KazooState

from zkhelpers import EPHEMERAL, EventLog, RawSession, get_ephemerals

WAIT = 15.0


@pytest.mark.parametrize(
    "requested_ms, expected_ms",
    [(100, 400), (400, 400), (1500, 1500), (4000, 4000), (60000, 4000)],
)
def test_session_timeout_negotiated_within_2_and_20_ticks(server, requested_ms, expected_ms):
    s = RawSession(server, requested_ms)
    try:
        resp = s.connect_response
        assert resp.timeout == expected_ms
        assert resp.session_id != 0
        assert len(resp.passwd) == 16
        assert resp.protocol_version == 0
    finally:
        s.close_session()


def test_each_client_gets_distinct_session_id(zk, zk2):
    assert zk.client_id[0] != zk2.client_id[0]
    assert zk.client_id[0] != 0


def test_closed_session_removes_ephemerals_and_notifies_watchers(make_client, path):
    owner = make_client()
    observer = make_client()
    owner.create(f"{path}/e1", b"", ephemeral=True)
    owner.create(f"{path}/e2-", b"", ephemeral=True, sequence=True)
    owner.create(f"{path}/keep", b"")
    data_log, child_log = EventLog(), EventLog()
    observer.exists(f"{path}/e1", watch=data_log)
    observer.get_children(path, watch=child_log)
    owner.stop()
    assert data_log.wait_count(1, WAIT)
    assert child_log.wait_count(1, WAIT)
    assert [(e.type, e.path) for e in data_log.snapshot()] == [(EventType.DELETED, f"{path}/e1")]
    assert [(e.type, e.path) for e in child_log.snapshot()] == [(EventType.CHILD, path)]
    assert observer.get_children(path) == ["keep"]


def test_expired_session_removes_ephemerals(zk, server, path):
    # A raw session with a 400 ms timeout creates an ephemeral, then its TCP
    # connection is dropped without closeSession: the server must expire it.
    raw = RawSession(server, 400)
    node = raw.create(f"{path}/doomed", b"", flags=EPHEMERAL)
    assert zk.exists(node).ephemeralOwner == raw.session_id
    gone = threading.Event()
    events = []

    def watcher(event):
        events.append((event.type, event.path))
        gone.set()

    assert zk.exists(node, watch=watcher) is not None
    raw.abandon()
    assert gone.wait(WAIT), "ephemeral of the abandoned session was not removed"
    assert events == [(EventType.DELETED, node)]
    assert zk.exists(node) is None
    # An expired session cannot be resumed.
    late = RawSession(server, 400, session_id=raw.session_id, passwd=raw.connect_response.passwd)
    assert late.connect_response.timeout == 0
    late.abandon()


def test_session_survives_reconnect_with_same_id_and_password(zk, server, path):
    raw = RawSession(server, 4000)
    node = raw.create(f"{path}/e", b"", flags=EPHEMERAL)
    sid, pw = raw.session_id, raw.connect_response.passwd
    raw.abandon()
    # Reattach to the still-live session from a new TCP connection.
    again = RawSession(server, 4000, session_id=sid, passwd=pw)
    try:
        assert again.session_id == sid
        assert again.connect_response.timeout == 4000
        assert zk.exists(node).ephemeralOwner == sid
    finally:
        again.close_session()
    assert zk.exists(node) is None  # closeSession deleted it synchronously


def test_reconnect_with_wrong_password_is_refused(server):
    raw = RawSession(server, 4000)
    sid, pw = raw.session_id, raw.connect_response.passwd
    bad = bytes(b ^ 0xFF for b in pw)
    refused = RawSession(server, 4000, session_id=sid, passwd=bad)
    # ZooKeeper answers timeout 0 / session id 0 for a refused session. (It
    # also closes the session's current connection before checking the
    # password; this test does not depend on that.)
    assert refused.connect_response.timeout == 0
    assert refused.connect_response.session_id == 0
    refused.abandon()
    raw.abandon()
    # The session itself is still alive and reachable with the real password.
    again = RawSession(server, 4000, session_id=sid, passwd=pw)
    assert again.session_id == sid
    assert again.connect_response.timeout == 4000
    again.close_session()


def test_kazoo_client_sees_lost_when_its_session_is_closed_elsewhere(make_client, server, path):
    victim = make_client()
    states = EventLog()
    victim.add_listener(states)
    victim.create(f"{path}/eph", b"", ephemeral=True)
    session_id, passwd = victim.client_id
    # Attach to the same session from another connection and close it there.
    # (ZooKeeper drops the victim's connection when the session is attached
    # elsewhere; if the victim wins the race and re-attaches first, retry.)
    deadline = time.monotonic() + WAIT
    while not states.wait_until(lambda items: KazooState.LOST in items, 1.0):
        assert time.monotonic() < deadline, "victim never saw its session end"
        try:
            RawSession(server, 4000, session_id=session_id, passwd=passwd).close_session()
        except (ConnectionError, OSError):
            pass
    # kazoo then establishes a brand-new session.
    assert states.wait_until(lambda items: items[-1] == KazooState.CONNECTED, WAIT)
    assert victim.client_id[0] != session_id
    assert victim.exists(f"{path}/eph") is None


def test_connection_drop_keeps_session_and_ephemerals(make_client, path):
    victim = make_client()
    other = make_client()
    states = EventLog()
    victim.add_listener(states)
    session_id = victim.client_id[0]
    victim.create(f"{path}/eph", b"", ephemeral=True)
    other.create(f"{path}/data", b"0")
    values = EventLog()
    victim.DataWatch(f"{path}/data", lambda data, stat: values(data))
    assert values.wait_count(1, WAIT)
    # Break the TCP connection under kazoo: it reconnects to the *same*
    # session (ConnectRequest with the old session id and password).
    victim._connection._socket.shutdown(socket.SHUT_RDWR)
    assert states.wait_until(lambda items: KazooState.SUSPENDED in items, WAIT)
    other.set(f"{path}/data", b"1")
    assert states.wait_until(lambda items: items[-1] == KazooState.CONNECTED, WAIT)
    assert KazooState.LOST not in states.snapshot()
    assert victim.client_id[0] == session_id
    assert other.exists(f"{path}/eph").ephemeralOwner == session_id
    # kazoo drops its watches on disconnect; DataWatch re-reads and re-arms.
    assert values.wait_until(lambda items: items[-1] == b"1", WAIT)
    other.set(f"{path}/data", b"2")
    assert values.wait_until(lambda items: items[-1] == b"2", WAIT)


def test_set_watches_reports_changes_missed_while_disconnected(zk, server, path):
    zk.create(f"{path}/changed", b"0")
    zk.create(f"{path}/deleted", b"0")
    zk.create(f"{path}/parent", b"")
    zk.create(f"{path}/quiet", b"0")
    last_seen = zk.exists(f"{path}/quiet").mzxid
    # What happens while our (raw) client is "disconnected":
    zk.set(f"{path}/changed", b"1")
    zk.delete(f"{path}/deleted")
    zk.create(f"{path}/born", b"")
    zk.create(f"{path}/parent/kid", b"")
    raw = RawSession(server, 4000)
    try:
        raw.set_watches(
            last_seen,
            data=[f"{path}/changed", f"{path}/deleted", f"{path}/quiet"],
            exist=[f"{path}/born", f"{path}/unborn"],
            child=[f"{path}/parent"],
        )
        assert raw.wait_events(4, WAIT)
        got = sorted((w.type, w.path) for w in raw.events)
        # Watch.type codes: 1 created, 2 deleted, 3 changed, 4 child.
        assert got == sorted([
            (3, f"{path}/changed"),
            (2, f"{path}/deleted"),
            (1, f"{path}/born"),
            (4, f"{path}/parent"),
        ])
        # The untouched ones were registered as ordinary watches.
        zk.set(f"{path}/quiet", b"1")
        zk.create(f"{path}/unborn", b"")
        assert raw.wait_events(6, WAIT)
        assert sorted((w.type, w.path) for w in raw.events[4:]) == [
            (1, f"{path}/unborn"),
            (3, f"{path}/quiet"),
        ]
    finally:
        raw.close_session()


def test_ephemeral_name_reusable_after_owner_session_closes(make_client, path):
    a = make_client()
    b = make_client()
    a.create(f"{path}/leader", b"a", ephemeral=True)
    with pytest.raises(NodeExistsError):
        b.create(f"{path}/leader", b"b", ephemeral=True)
    a.stop()
    b.create(f"{path}/leader", b"b", ephemeral=True)
    assert b.exists(f"{path}/leader").ephemeralOwner == b.client_id[0]


def test_get_ephemerals_lists_only_this_sessions_nodes(zk, zk2, path):
    zk.create(f"{path}/mine1", ephemeral=True)
    zk.create(f"{path}/sub/mine2", ephemeral=True, makepath=True)
    zk2.create(f"{path}/theirs", ephemeral=True)
    zk.create(f"{path}/persistent")
    assert sorted(get_ephemerals(zk, path)) == [f"{path}/mine1", f"{path}/sub/mine2"]
    assert get_ephemerals(zk2, path) == [f"{path}/theirs"]
    assert get_ephemerals(zk, f"{path}/sub") == [f"{path}/sub/mine2"]

