"""Stat fields, checked field by field against ZooKeeper's rules, and the
built-in /zookeeper subtree."""

import time

from kazoo.security import Permissions


def test_stat_of_new_persistent_node(zk, path):
    before_ms = int(time.time() * 1000)
    zk.create(f"{path}/n", b"four")
    after_ms = int(time.time() * 1000)
    s = zk.exists(f"{path}/n")
    assert s.czxid > 0
    assert s.mzxid == s.czxid
    assert s.pzxid == s.czxid
    # Server clock vs. ours: allow generous skew, they share a machine.
    assert before_ms - 5000 <= s.ctime <= after_ms + 5000
    assert s.mtime == s.ctime
    assert s.version == 0
    assert s.cversion == 0
    assert s.aversion == 0
    assert s.ephemeralOwner == 0
    assert s.dataLength == 4
    assert s.numChildren == 0


def test_set_data_updates_mzxid_mtime_version_only(zk, path):
    zk.create(f"{path}/n", b"a")
    s0 = zk.exists(f"{path}/n")
    s1 = zk.set(f"{path}/n", b"bbb")
    assert s1.czxid == s0.czxid
    assert s1.mzxid > s0.mzxid
    assert s1.pzxid == s0.pzxid  # pzxid only follows children
    assert s1.ctime == s0.ctime
    assert s1.mtime >= s0.mtime
    assert s1.version == 1
    assert s1.cversion == 0
    assert s1.aversion == 0
    assert s1.dataLength == 3
    assert s1.numChildren == 0


def test_set_with_identical_data_still_bumps_version(zk, path):
    zk.create(f"{path}/n", b"same")
    s0 = zk.exists(f"{path}/n")
    s1 = zk.set(f"{path}/n", b"same")
    assert s1.version == 1
    assert s1.mzxid > s0.mzxid


def test_child_create_and_delete_update_parent_cversion_pzxid(zk, path):
    parent = f"{path}/p"
    zk.create(parent, b"pp")
    p0 = zk.exists(parent)

    zk.create(f"{parent}/c")
    c = zk.exists(f"{parent}/c")
    p1 = zk.exists(parent)
    assert p1.cversion == p0.cversion + 1
    assert p1.numChildren == 1
    assert p1.pzxid == c.czxid
    # The parent's own data is untouched.
    assert (p1.mzxid, p1.version, p1.mtime, p1.dataLength) == (p0.mzxid, p0.version, p0.mtime, 2)

    zk.delete(f"{parent}/c")
    p2 = zk.exists(parent)
    assert p2.cversion == p1.cversion + 1
    assert p2.numChildren == 0
    assert p2.pzxid > p1.pzxid  # the delete's zxid
    assert (p2.mzxid, p2.version) == (p0.mzxid, p0.version)


def test_child_data_change_does_not_touch_parent(zk, path):
    parent = f"{path}/p"
    zk.create(f"{parent}/c", makepath=True)
    p0 = zk.exists(parent)
    zk.set(f"{parent}/c", b"changed")
    assert zk.exists(parent) == p0


def test_zxids_increase_across_writes(zk, path):
    zxids = []
    for i in range(5):
        zk.create(f"{path}/z{i}")
        zxids.append(zk.exists(f"{path}/z{i}").czxid)
    assert zxids == sorted(zxids)
    assert len(set(zxids)) == len(zxids)
    s = zk.set(f"{path}/z0", b"x")
    assert s.mzxid > zxids[-1]


def test_ephemeral_stat_fields(zk, path):
    zk.create(f"{path}/e", b"xy", ephemeral=True)
    s = zk.exists(f"{path}/e")
    assert s.ephemeralOwner == zk.client_id[0]
    assert s.czxid == s.mzxid == s.pzxid
    assert (s.version, s.cversion, s.aversion, s.dataLength, s.numChildren) == (0, 0, 0, 2, 0)


def test_root_node_stat(zk):
    data, s = zk.get("/")
    assert data == b""
    assert s.czxid == 0
    assert s.mzxid == 0
    assert s.ctime == 0
    assert s.mtime == 0
    assert s.version == 0
    assert s.aversion == 0
    assert s.ephemeralOwner == 0
    assert s.dataLength == 0
    assert s.numChildren == len(zk.get_children("/"))
    assert "zookeeper" in zk.get_children("/")


def test_zookeeper_system_nodes_exist_with_reference_stats(zk):
    assert sorted(zk.get_children("/zookeeper")) == ["config", "quota"]
    assert zk.get_children("/zookeeper/quota") == []

    data, s = zk.get("/zookeeper")
    assert data == b""
    # Exactly what Apache ZooKeeper 3.8 reports on a fresh standalone server.
    assert (s.czxid, s.mzxid, s.ctime, s.mtime, s.pzxid) == (0, 0, 0, 0, 0)
    assert (s.version, s.cversion, s.aversion) == (0, -2, 0)
    assert (s.ephemeralOwner, s.dataLength, s.numChildren) == (0, 0, 2)

    data, s = zk.get("/zookeeper/quota")
    assert data == b""
    assert tuple(s) == (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)

    data, s = zk.get("/zookeeper/config")
    assert data == b""  # standalone: no dynamic config
    assert (s.czxid, s.mzxid, s.ctime, s.mtime, s.pzxid) == (0, 0, 0, 0, 0)
    assert (s.version, s.cversion, s.aversion) == (0, 0, -1)
    assert (s.ephemeralOwner, s.dataLength, s.numChildren) == (0, 0, 0)


def test_zookeeper_config_node_is_world_readable_only(zk):
    acls, _ = zk.get_acls("/zookeeper/config")
    assert len(acls) == 1
    assert acls[0].perms == Permissions.READ
    assert (acls[0].id.scheme, acls[0].id.id) == ("world", "anyone")
    acls, _ = zk.get_acls("/zookeeper")
    assert [(a.perms, a.id.scheme, a.id.id) for a in acls] == [(Permissions.ALL, "world", "anyone")]
