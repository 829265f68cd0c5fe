"""Containers, TTL nodes, sync, getAllChildrenNumber, reserved paths and
four-letter words."""

import threading

import pytest
from kazoo.exceptions import BadArgumentsError, NoAuthError, NoNodeError
from kazoo.protocol.states import EventType

from zkhelpers import create_container, create_ttl, four_letter_word, get_all_children_number

# The container/TTL reaper runs every 500 ms (znode.container.checkIntervalMs).
REAP_WAIT = 15.0


def _deleted_event(zk, node):
    """Return an Event set when `node` is deleted (watch set via exists)."""
    ev = threading.Event()

    def watcher(event):
        if event.type == EventType.DELETED:
            ev.set()

    assert zk.exists(node, watch=watcher) is not None
    return ev


def test_create_container_returns_path_and_stat(zk, path):
    created, stat = create_container(zk, f"{path}/box", b"meta")
    assert created == f"{path}/box"
    assert stat == zk.exists(created)
    # ZooKeeper marks containers internally via ephemeralOwner but reports 0.
    assert stat.ephemeralOwner == 0
    assert stat.dataLength == 4
    assert stat.czxid == stat.mzxid == stat.pzxid


def test_container_is_deleted_after_its_last_child_is_removed(zk, path):
    box, _ = create_container(zk, f"{path}/box")
    zk.create(f"{box}/item", b"")
    zk.create(f"{box}/eph", b"", ephemeral=True)  # containers accept ephemeral children
    gone = _deleted_event(zk, box)
    zk.delete(f"{box}/item")
    zk.delete(f"{box}/eph")
    assert gone.wait(REAP_WAIT), "empty container was not reaped"
    assert zk.exists(box) is None


def test_container_that_never_had_children_is_kept(zk, path):
    never_used, _ = create_container(zk, f"{path}/never")
    used, _ = create_container(zk, f"{path}/used")
    zk.create(f"{used}/x")
    gone = _deleted_event(zk, used)
    zk.delete(f"{used}/x")
    # Once the reaper has removed `used`, it has also looked at `never_used`
    # (created earlier) and must have left it alone.
    assert gone.wait(REAP_WAIT)
    assert zk.exists(never_used) is not None


def test_ttl_node_expires_after_ttl(zk, path):
    node, stat = create_ttl(zk, f"{path}/ttl", 300, b"short-lived")
    assert node == f"{path}/ttl"
    assert stat.ephemeralOwner == 0  # TTL is encoded internally, reported as 0
    assert zk.get(node)[0] == b"short-lived"
    gone = _deleted_event(zk, node)
    assert gone.wait(REAP_WAIT), "TTL node was not removed"


def test_ttl_node_with_children_is_not_expired(zk, path):
    parent, _ = create_ttl(zk, f"{path}/parent", 200)
    zk.create(f"{parent}/child")
    lonely, _ = create_ttl(zk, f"{path}/lonely", 200)
    gone = _deleted_event(zk, lonely)
    assert gone.wait(REAP_WAIT)
    # The reaper saw `parent` (older, same TTL) in the same pass: kept.
    assert zk.exists(parent) is not None


def test_ttl_sequential_node_gets_suffix(zk, path):
    node, _ = create_ttl(zk, f"{path}/tseq-", 60000, sequence=True)
    assert node == f"{path}/tseq-0000000000"


@pytest.mark.parametrize("ttl", [0, -1, 1 << 41])
def test_ttl_out_of_range_is_bad_arguments(zk, path, ttl):
    with pytest.raises(BadArgumentsError):
        create_ttl(zk, f"{path}/bad", ttl)
    assert zk.exists(f"{path}/bad") is None


def test_sync_then_read_sees_other_clients_write(zk, zk2, path):
    zk2.create(f"{path}/s", b"written")
    assert zk.sync(path) == path
    assert zk.get(f"{path}/s")[0] == b"written"


def test_get_all_children_number_counts_descendants(zk, path):
    zk.create(f"{path}/a/b/c", makepath=True)
    zk.create(f"{path}/d")
    assert get_all_children_number(zk, path) == 4
    assert get_all_children_number(zk, f"{path}/d") == 0
    with pytest.raises(NoNodeError):
        get_all_children_number(zk, f"{path}/missing")


@pytest.mark.parametrize("reserved", ["/", "/zookeeper", "/zookeeper/quota"])
def test_deleting_reserved_nodes_is_bad_arguments(zk, reserved):
    with pytest.raises(BadArgumentsError):
        zk.delete(reserved)
    assert zk.exists(reserved) is not None


def test_zookeeper_config_is_not_writable(zk):
    with pytest.raises(NoAuthError):
        zk.set("/zookeeper/config", b"x")


def test_four_letter_word_ruok(server):
    assert four_letter_word(server, "ruok") == "imok"


def test_four_letter_word_srvr_reports_standalone_mode(zk, server):
    text = four_letter_word(server, "srvr")
    lines = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
    assert lines["Mode"] == "standalone"
    assert lines["Zxid"].startswith("0x")
    assert int(lines["Node count"]) >= 4


def test_four_letter_word_mntr_reports_server_state(zk, server):
    text = four_letter_word(server, "mntr")
    kv = dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)
    assert kv["zk_server_state"] == "standalone"
    assert int(kv["zk_znode_count"]) >= 4
    assert int(kv["zk_num_alive_connections"]) >= 1


def test_kazoo_command_isro_reports_read_write(zk):
    assert zk.command(b"isro") == "rw"
