"""Transactions (multi) through kazoo's client.transaction()."""

from kazoo.exceptions import (
    BadVersionError,
    NodeExistsError,
    NoNodeError,
    RolledBackError,
    RuntimeInconsistency,
)


def test_transaction_commits_all_operations(zk, path):
    zk.create(f"{path}/old", b"o")
    zk.create(f"{path}/data", b"d0")
    t = zk.transaction()
    t.create(f"{path}/new", b"n")
    t.set_data(f"{path}/data", b"d1", version=0)
    t.check(f"{path}/data", 1)  # sees the set_data above
    t.delete(f"{path}/old")
    results = t.commit()
    assert results[0] == f"{path}/new"
    assert results[1].version == 1 and results[1].dataLength == 2
    assert results[2] is True
    assert results[3] is True
    assert zk.get(f"{path}/new")[0] == b"n"
    assert zk.get(f"{path}/data")[0] == b"d1"
    assert zk.exists(f"{path}/old") is None


def test_transaction_operations_share_one_zxid(zk, path):
    t = zk.transaction()
    t.create(f"{path}/a")
    t.create(f"{path}/b")
    t.commit()
    a, b = zk.exists(f"{path}/a"), zk.exists(f"{path}/b")
    assert a.czxid == b.czxid
    assert zk.exists(path).pzxid == a.czxid


def test_transaction_failure_is_atomic_with_per_op_results(zk, path):
    zk.create(f"{path}/exists", b"")
    t = zk.transaction()
    t.create(f"{path}/a", b"a")
    t.create(f"{path}/exists", b"again")
    t.create(f"{path}/b", b"b")
    t.set_data(f"{path}/exists", b"zzz")
    results = t.commit()
    # ZooKeeper: ops before the failing one report OK-but-rolled-back (code 0),
    # the failing op its own error, ops after it RUNTIMEINCONSISTENCY (-2).
    assert [type(r) for r in results] == [
        RolledBackError,
        NodeExistsError,
        RuntimeInconsistency,
        RuntimeInconsistency,
    ]
    assert zk.exists(f"{path}/a") is None
    assert zk.exists(f"{path}/b") is None
    assert zk.get(f"{path}/exists")[0] == b""
    assert zk.exists(path).cversion == 1  # only the setup create


def test_transaction_failed_version_check_aborts_everything(zk, path):
    zk.create(f"{path}/guard", b"g")
    zk.create(f"{path}/victim", b"v")
    t = zk.transaction()
    t.delete(f"{path}/victim")
    t.check(f"{path}/guard", 7)
    results = t.commit()
    assert [type(r) for r in results] == [RolledBackError, BadVersionError]
    assert zk.exists(f"{path}/victim") is not None


def test_transaction_missing_node_reports_no_node(zk, path):
    t = zk.transaction()
    t.set_data(f"{path}/missing", b"x")
    t.create(f"{path}/never")
    results = t.commit()
    assert [type(r) for r in results] == [NoNodeError, RuntimeInconsistency]
    assert zk.exists(f"{path}/never") is None


def test_transaction_later_ops_see_earlier_ops(zk, path):
    t = zk.transaction()
    t.create(f"{path}/parent", b"p")
    t.create(f"{path}/parent/child", b"c")
    t.set_data(f"{path}/parent/child", b"c2")
    t.delete(f"{path}/parent/child")
    t.create(f"{path}/parent/seq-", sequence=True)
    results = t.commit()
    assert results[:4] == [f"{path}/parent", f"{path}/parent/child", results[2], True]
    assert results[2].version == 1
    # The sequence counter saw the earlier create in the same transaction.
    assert results[4] == f"{path}/parent/seq-0000000001"
    assert zk.get_children(f"{path}/parent") == ["seq-0000000001"]


def test_transaction_ephemeral_create_is_owned_by_session(zk, path):
    t = zk.transaction()
    t.create(f"{path}/e", b"", ephemeral=True)
    t.commit()
    assert zk.exists(f"{path}/e").ephemeralOwner == zk.client_id[0]


def test_transaction_context_manager_commits(zk, path):
    with zk.transaction() as t:
        t.create(f"{path}/cm1")
        t.create(f"{path}/cm2")
    assert sorted(zk.get_children(path)) == ["cm1", "cm2"]
