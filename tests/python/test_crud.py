"""Create / get / set / exists / get_children / delete with kazoo."""

import pytest
from kazoo.exceptions import (
    BadVersionError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
)


def test_create_persistent_returns_path_and_stores_data(zk, path):
    created = zk.create(f"{path}/node", b"hello")
    assert created == f"{path}/node"
    data, stat = zk.get(f"{path}/node")
    assert data == b"hello"
    assert stat.dataLength == 5
    assert stat.ephemeralOwner == 0


def test_create_existing_node_raises_node_exists(zk, path):
    zk.create(f"{path}/dup", b"1")
    with pytest.raises(NodeExistsError):
        zk.create(f"{path}/dup", b"2")
    assert zk.get(f"{path}/dup")[0] == b"1"


def test_create_without_parent_raises_no_node(zk, path):
    with pytest.raises(NoNodeError):
        zk.create(f"{path}/missing/child", b"x")
    assert zk.exists(f"{path}/missing") is None


def test_create_makepath_creates_missing_parents(zk, path):
    zk.create(f"{path}/a/b/c", b"leaf", makepath=True)
    assert zk.get(f"{path}/a/b/c")[0] == b"leaf"
    assert zk.get(f"{path}/a")[0] == b""
    assert zk.get_children(f"{path}/a") == ["b"]


def test_create_include_data_returns_stat_of_new_node(zk, path):
    created, stat = zk.create(f"{path}/c2", b"abc", include_data=True)
    assert created == f"{path}/c2"
    assert stat == zk.exists(f"{path}/c2")
    assert stat.czxid == stat.mzxid == stat.pzxid
    assert stat.dataLength == 3


def test_sequential_suffix_counts_child_creations_zero_padded(zk, path):
    # ZooKeeper keeps an internal per-parent counter of child *creations*; the
    # sequential suffix is that counter, "%010d". The cversion that clients see
    # is derived from it as 2 * creations - numChildren (= creations + deletions),
    # so after a delete the suffix and the visible cversion diverge.
    parent = f"{path}/seq"
    zk.create(parent)
    first = zk.create(f"{parent}/n-", sequence=True)
    assert first == f"{parent}/n-0000000000"
    assert zk.exists(parent).cversion == 1
    zk.create(f"{parent}/plain")
    zk.delete(f"{parent}/plain")
    assert zk.exists(parent).cversion == 3  # 2 creates + 1 delete
    second = zk.create(f"{parent}/n-", sequence=True)
    assert second == f"{parent}/n-0000000002"  # 2 creates so far
    # Different prefixes share the parent's counter.
    third = zk.create(f"{parent}/other-", sequence=True)
    assert third == f"{parent}/other-0000000003"
    assert zk.exists(parent).cversion == 5  # 4 creates + 1 delete
    assert sorted(zk.get_children(parent)) == ["n-0000000000", "n-0000000002", "other-0000000003"]


def test_sequential_counter_ignores_deletes_of_sequential_children(zk, path):
    names = []
    for _ in range(3):
        p = zk.create(f"{path}/q-", sequence=True)
        names.append(p)
        zk.delete(p)
    assert [n.rsplit("-", 1)[1] for n in names] == ["0000000000", "0000000001", "0000000002"]
    s = zk.exists(path)
    assert (s.cversion, s.numChildren) == (6, 0)


def test_sequential_with_empty_name_under_trailing_slash(zk, path):
    created = zk.create(f"{path}/", b"x", sequence=True)
    assert created == f"{path}/0000000000"
    assert zk.get(created)[0] == b"x"


def test_ephemeral_node_owner_is_creating_session(zk, zk2, path):
    zk.create(f"{path}/eph", b"e", ephemeral=True)
    stat = zk2.exists(f"{path}/eph")
    assert stat.ephemeralOwner == zk.client_id[0]
    assert stat.ephemeralOwner != zk2.client_id[0]
    assert stat.ephemeralOwner != 0


def test_ephemeral_sequential_node(zk, path):
    a = zk.create(f"{path}/es-", b"", ephemeral=True, sequence=True)
    b = zk.create(f"{path}/es-", b"", ephemeral=True, sequence=True)
    assert a == f"{path}/es-0000000000"
    assert b == f"{path}/es-0000000001"
    assert zk.exists(b).ephemeralOwner == zk.client_id[0]


def test_ephemeral_node_cannot_have_children(zk, path):
    zk.create(f"{path}/eph", ephemeral=True)
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create(f"{path}/eph/child")
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create(f"{path}/eph/child-", sequence=True)


def test_get_missing_node_raises_no_node(zk, path):
    with pytest.raises(NoNodeError):
        zk.get(f"{path}/nope")


def test_set_with_matching_version_increments_version(zk, path):
    zk.create(f"{path}/v", b"0")
    stat = zk.set(f"{path}/v", b"1", version=0)
    assert stat.version == 1
    stat = zk.set(f"{path}/v", b"22", version=1)
    assert stat.version == 2
    assert stat.dataLength == 2
    stat = zk.set(f"{path}/v", b"333")  # version -1 = any
    assert stat.version == 3
    assert zk.get(f"{path}/v") == (b"333", stat)


def test_set_with_stale_version_raises_bad_version(zk, path):
    zk.create(f"{path}/v", b"0")
    zk.set(f"{path}/v", b"1")
    with pytest.raises(BadVersionError):
        zk.set(f"{path}/v", b"2", version=0)
    data, stat = zk.get(f"{path}/v")
    assert (data, stat.version) == (b"1", 1)


def test_set_on_missing_node_raises_no_node(zk, path):
    with pytest.raises(NoNodeError):
        zk.set(f"{path}/nope", b"x")


def test_exists_returns_stat_or_none(zk, path):
    assert zk.exists(f"{path}/nope") is None
    zk.create(f"{path}/yes", b"12")
    stat = zk.exists(f"{path}/yes")
    assert stat is not None and stat.dataLength == 2


def test_get_children_lists_direct_children_only(zk, path):
    for name in ["b", "a", "c"]:
        zk.create(f"{path}/{name}")
    zk.create(f"{path}/a/grandchild")
    assert sorted(zk.get_children(path)) == ["a", "b", "c"]
    assert zk.get_children(f"{path}/b") == []


def test_get_children_include_data_returns_parent_stat(zk, path):
    zk.create(f"{path}/x")
    zk.create(f"{path}/y")
    children, stat = zk.get_children(path, include_data=True)
    assert sorted(children) == ["x", "y"]
    assert stat == zk.exists(path)
    assert stat.numChildren == 2
    assert stat.cversion == 2


def test_get_children_of_missing_node_raises_no_node(zk, path):
    with pytest.raises(NoNodeError):
        zk.get_children(f"{path}/nope")


def test_delete_node_with_children_raises_not_empty(zk, path):
    zk.create(f"{path}/p/c", makepath=True)
    with pytest.raises(NotEmptyError):
        zk.delete(f"{path}/p")
    assert zk.exists(f"{path}/p") is not None


def test_delete_missing_node_raises_no_node(zk, path):
    with pytest.raises(NoNodeError):
        zk.delete(f"{path}/nope")


def test_delete_with_version(zk, path):
    zk.create(f"{path}/d", b"0")
    zk.set(f"{path}/d", b"1")
    with pytest.raises(BadVersionError):
        zk.delete(f"{path}/d", version=0)
    zk.delete(f"{path}/d", version=1)
    assert zk.exists(f"{path}/d") is None


def test_delete_recursive_removes_subtree(zk, path):
    zk.create(f"{path}/t/a/b", makepath=True)
    zk.create(f"{path}/t/c", makepath=True)
    zk.delete(f"{path}/t", recursive=True)
    assert zk.exists(f"{path}/t") is None
    assert zk.get_children(path) == []


def test_ensure_path_is_idempotent(zk, path):
    target = f"{path}/e/f/g"
    zk.ensure_path(target)
    stat = zk.exists(target)
    zk.ensure_path(target)
    assert zk.exists(target) == stat


def test_binary_and_empty_data_round_trip(zk, path):
    payload = bytes(range(256)) * 4
    zk.create(f"{path}/bin", payload)
    assert zk.get(f"{path}/bin")[0] == payload
    zk.create(f"{path}/empty", b"")
    data, stat = zk.get(f"{path}/empty")
    assert data == b"" and stat.dataLength == 0


def test_large_value_round_trip(zk, path):
    payload = bytes((i * 7) % 251 for i in range(512 * 1024))
    zk.create(f"{path}/big", payload)
    data, stat = zk.get(f"{path}/big")
    assert data == payload
    assert stat.dataLength == len(payload)


def test_unicode_node_names(zk, path):
    name = "ünïcødé-节点"
    zk.create(f"{path}/{name}", "värde".encode())
    assert zk.get_children(path) == [name]
    assert zk.get(f"{path}/{name}")[0].decode() == "värde"
