"""One-shot watches, kazoo's DataWatch/ChildrenWatch, and persistent watches."""

import threading

import pytest
from kazoo.exceptions import BadVersionError, NodeExistsError
from kazoo.protocol.states import EventType
from kazoo.recipe.watchers import ChildrenWatch, DataWatch

from zkhelpers import (
    WATCHER_ANY,
    EventLog,
    add_watch,
    remove_watches,
)

WAIT = 10.0


def _events(log):
    return [(e.type, e.path) for e in log.snapshot()]


def test_get_watch_fires_changed_on_set_from_other_client(zk, zk2, path):
    node = f"{path}/w"
    zk.create(node, b"0")
    log = EventLog()
    zk.get(node, watch=log)
    zk2.set(node, b"1")
    assert log.wait_count(1, WAIT)
    assert _events(log) == [(EventType.CHANGED, node)]


def test_get_watch_fires_deleted_on_delete(zk, zk2, path):
    node = f"{path}/w"
    zk.create(node, b"0")
    log = EventLog()
    zk.get(node, watch=log)
    zk2.delete(node)
    assert log.wait_count(1, WAIT)
    assert _events(log) == [(EventType.DELETED, node)]


def test_exists_watch_on_missing_node_fires_created(zk, zk2, path):
    node = f"{path}/later"
    log = EventLog()
    assert zk.exists(node, watch=log) is None
    zk2.create(node, b"now")
    assert log.wait_count(1, WAIT)
    assert _events(log) == [(EventType.CREATED, node)]


def test_children_watch_fires_child_on_create_and_delete(zk, zk2, path):
    log = EventLog()
    zk.get_children(path, watch=log)
    zk2.create(f"{path}/kid")
    assert log.wait_count(1, WAIT)
    assert _events(log) == [(EventType.CHILD, path)]
    zk.get_children(path, watch=log)
    zk2.delete(f"{path}/kid")
    assert log.wait_count(2, WAIT)
    assert _events(log)[1] == (EventType.CHILD, path)


def test_children_watch_ignores_child_data_changes(zk, zk2, path):
    zk.create(f"{path}/kid", b"0")
    child_log = EventLog()
    zk.get_children(path, watch=child_log)
    zk2.set(f"{path}/kid", b"1")
    # Sync point: a later child event must be the first one we see.
    zk2.create(f"{path}/kid2")
    assert child_log.wait_count(1, WAIT)
    assert _events(child_log) == [(EventType.CHILD, path)]
    assert sorted(zk.get_children(path)) == ["kid", "kid2"]


def test_deleting_watched_parent_fires_deleted_on_child_watch(zk, zk2, path):
    node = f"{path}/parent"
    zk.create(node)
    log = EventLog()
    zk.get_children(node, watch=log)
    zk2.delete(node)
    assert log.wait_count(1, WAIT)
    assert _events(log) == [(EventType.DELETED, node)]


def test_data_watch_is_one_shot(zk, zk2, path):
    a, b = f"{path}/a", f"{path}/b"
    zk.create(a, b"0")
    zk.create(b, b"0")
    first = EventLog()
    zk.get(a, watch=first)
    zk2.set(a, b"1")
    assert first.wait_count(1, WAIT)
    zk2.set(a, b"2")  # must not be delivered to `first`
    # Events reach a client in order: once a later watch on `b` fires, any
    # stray second event for `a` would already have been delivered.
    second = EventLog()
    zk.get(b, watch=second)
    zk2.set(b, b"1")
    assert second.wait_count(1, WAIT)
    assert _events(first) == [(EventType.CHANGED, a)]


def test_same_watcher_registered_twice_fires_once(zk, zk2, path):
    node = f"{path}/n"
    zk.create(node, b"0")
    log = EventLog()
    zk.get(node, watch=log)
    zk.exists(node, watch=log)  # same callable, same path, same kind (data)
    zk2.set(node, b"1")
    other = EventLog()
    zk.exists(f"{path}/sync", watch=other)
    zk2.create(f"{path}/sync")
    assert other.wait_count(1, WAIT)
    assert _events(log) == [(EventType.CHANGED, node)]


def test_watch_notification_precedes_read_of_new_value(zk, zk2, path):
    # ZooKeeper guarantees a client sees the watch event before it sees the
    # new data in a later read on the same session.
    node = f"{path}/n"
    zk.create(node, b"old")
    fired = threading.Event()
    seen = []

    def watcher(event):
        seen.append(event.type)
        fired.set()

    zk.get(node, watch=watcher)
    zk2.set(node, b"new")
    assert fired.wait(WAIT)
    assert zk.get(node)[0] == b"new"
    assert seen == [EventType.CHANGED]


def test_datawatch_recipe_tracks_values_and_deletion(zk, zk2, path):
    node = f"{path}/dw"
    zk2.create(node, b"v0")
    log = EventLog()

    @DataWatch(zk, node)
    def watcher(data, stat, event=None):
        log((data, stat.version if stat else None))

    assert log.wait_count(1, WAIT)
    zk2.set(node, b"v1")
    assert log.wait_until(lambda items: (b"v1", 1) in items, WAIT)
    zk2.delete(node)
    assert log.wait_until(lambda items: items[-1] == (None, None), WAIT)
    assert log.snapshot()[0] == (b"v0", 0)


def test_childrenwatch_recipe_tracks_membership(zk, zk2, path):
    log = EventLog()
    ChildrenWatch(zk, path, func=lambda children: log(sorted(children)))
    assert log.wait_count(1, WAIT)
    assert log.snapshot()[0] == []
    zk2.create(f"{path}/m1")
    assert log.wait_until(lambda items: items[-1] == ["m1"], WAIT)
    zk2.create(f"{path}/m2")
    assert log.wait_until(lambda items: items[-1] == ["m1", "m2"], WAIT)
    zk2.delete(f"{path}/m1")
    assert log.wait_until(lambda items: items[-1] == ["m2"], WAIT)


def test_persistent_watch_fires_repeatedly(zk, zk2, path):
    node = f"{path}/p"
    log = EventLog()
    add_watch(zk, node, log)
    zk2.create(node, b"0")
    zk2.set(node, b"1")
    zk2.set(node, b"2")
    zk2.create(f"{node}/child")  # non-recursive persistent watch: CHILD on node
    zk2.delete(f"{node}/child")
    zk2.delete(node)
    assert log.wait_count(6, WAIT)
    assert _events(log) == [
        (EventType.CREATED, node),
        (EventType.CHANGED, node),
        (EventType.CHANGED, node),
        (EventType.CHILD, node),
        (EventType.CHILD, node),
        (EventType.DELETED, node),
    ]


def test_persistent_recursive_watch_sees_descendants(zk, zk2, path):
    root = f"{path}/r"
    zk.create(root)
    log = EventLog()
    add_watch(zk, root, log, recursive=True)
    zk2.create(f"{root}/a", b"")
    zk2.create(f"{root}/a/b", b"")
    zk2.set(f"{root}/a/b", b"x")
    zk2.delete(f"{root}/a/b")
    zk2.create(f"{path}/outside")  # not under the watched root
    zk2.set(root, b"top")
    assert log.wait_count(5, WAIT)
    # Recursive watches deliver no CHILD events, only node events.
    assert _events(log) == [
        (EventType.CREATED, f"{root}/a"),
        (EventType.CREATED, f"{root}/a/b"),
        (EventType.CHANGED, f"{root}/a/b"),
        (EventType.DELETED, f"{root}/a/b"),
        (EventType.CHANGED, root),
    ]


def test_remove_persistent_watch_stops_events(zk, zk2, path):
    node = f"{path}/p"
    zk.create(node, b"0")
    log = EventLog()
    add_watch(zk, node, log)
    zk2.set(node, b"1")
    assert log.wait_count(1, WAIT)
    # Keep our local dispatch entry: only the server can stop the events now.
    remove_watches(zk, node, WATCHER_ANY)
    zk2.set(node, b"2")
    sync = EventLog()
    zk.get_children(path, watch=sync)
    zk2.create(f"{path}/sync")
    assert sync.wait_count(1, WAIT)
    assert _events(log) == [(EventType.CHANGED, node)]


def test_failed_write_does_not_trigger_watch(zk, zk2, path):
    node = f"{path}/n"
    zk.create(node, b"0")
    log = EventLog()
    zk.get(node, watch=log)
    zk.get_children(node, watch=log)
    with pytest.raises(BadVersionError):
        zk2.set(node, b"x", version=42)
    with pytest.raises(NodeExistsError):
        zk2.create(node)
    sync = EventLog()
    zk.exists(f"{path}/sync", watch=sync)
    zk2.create(f"{path}/sync")
    assert sync.wait_count(1, WAIT)
    assert log.snapshot() == []
