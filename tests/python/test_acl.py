"""ACLs: digest auth, world/auth schemes, permissions, aversion."""

import pytest
from kazoo.exceptions import AuthFailedError, BadVersionError, InvalidACLError, NoAuthError
from kazoo.security import (
    ACL,
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    Id,
    Permissions,
    make_acl,
    make_digest_acl,
    make_digest_acl_credential,
)


def test_default_acl_is_world_anyone_all(zk, path):
    zk.create(f"{path}/n")
    acls, stat = zk.get_acls(f"{path}/n")
    assert [(a.perms, a.id.scheme, a.id.id) for a in acls] == [(Permissions.ALL, "world", "anyone")]
    assert stat == zk.exists(f"{path}/n")


def test_digest_acl_denies_unauthenticated_client(zk, zk2, path):
    zk.add_auth("digest", "alice:secret")
    acl = make_digest_acl("alice", "secret", all=True)
    zk.create(f"{path}/private", b"s3cret", acl=[acl])
    assert zk.get(f"{path}/private")[0] == b"s3cret"
    with pytest.raises(NoAuthError):
        zk2.get(f"{path}/private")
    with pytest.raises(NoAuthError):
        zk2.set(f"{path}/private", b"x")
    with pytest.raises(NoAuthError):
        zk2.get_children(f"{path}/private")
    with pytest.raises(NoAuthError):
        zk2.create(f"{path}/private/child")
    # getACL needs READ or ADMIN (since ZooKeeper 3.6) ...
    with pytest.raises(NoAuthError):
        zk2.get_acls(f"{path}/private")
    # ... but exists() is not guarded at all.
    assert zk2.exists(f"{path}/private").dataLength == 6
    acls, _ = zk.get_acls(f"{path}/private")
    assert acls[0].id == Id("digest", make_digest_acl_credential("alice", "secret"))


def test_get_acls_allowed_with_admin_only(zk, zk2, path):
    zk.create(f"{path}/adm", b"", acl=[make_acl("world", "anyone", admin=True)])
    acls, _ = zk2.get_acls(f"{path}/adm")
    assert [(a.perms, a.id.scheme, a.id.id) for a in acls] == [(Permissions.ADMIN, "world", "anyone")]
    with pytest.raises(NoAuthError):
        zk2.get(f"{path}/adm")


def test_add_auth_grants_access(zk, make_client, path):
    zk.create(f"{path}/p", b"v", acl=[make_digest_acl("bob", "pw", read=True, write=True)])
    other = make_client()
    with pytest.raises(NoAuthError):
        other.get(f"{path}/p")
    other.add_auth("digest", "bob:wrong")
    with pytest.raises(NoAuthError):
        other.get(f"{path}/p")
    other.add_auth("digest", "bob:pw")
    assert other.get(f"{path}/p")[0] == b"v"
    other.set(f"{path}/p", b"w")
    assert zk.exists(f"{path}/p").version == 1


def test_auth_scheme_acl_expands_to_authenticated_identity(zk, path):
    zk.add_auth("digest", "carol:pw")
    zk.create(f"{path}/mine", acl=[ACL(Permissions.ALL, Id("auth", ""))])
    acls, _ = zk.get_acls(f"{path}/mine")
    assert [(a.perms, a.id.scheme, a.id.id) for a in acls] == [
        (Permissions.ALL, "digest", make_digest_acl_credential("carol", "pw"))
    ]


def test_auth_scheme_acl_without_credentials_is_invalid(zk, path):
    with pytest.raises(InvalidACLError):
        zk.create(f"{path}/bad", acl=[ACL(Permissions.ALL, Id("auth", ""))])
    assert zk.exists(f"{path}/bad") is None


def test_empty_acl_list_is_invalid(zk, path):
    with pytest.raises(InvalidACLError):
        zk.set_acls(path, [])


def test_read_only_acl_allows_read_but_denies_write_and_delete_child(zk, path):
    zk.create(f"{path}/ro", b"r", acl=READ_ACL_UNSAFE)
    assert zk.get(f"{path}/ro")[0] == b"r"
    with pytest.raises(NoAuthError):
        zk.set(f"{path}/ro", b"w")
    with pytest.raises(NoAuthError):
        zk.create(f"{path}/ro/child")
    with pytest.raises(NoAuthError):
        zk.set_acls(f"{path}/ro", OPEN_ACL_UNSAFE)
    # Deleting a node needs DELETE on its *parent*, which is open here.
    zk.delete(f"{path}/ro")
    assert zk.exists(f"{path}/ro") is None


def test_delete_requires_delete_permission_on_parent(zk, path):
    parent_acl = [make_acl("world", "anyone", read=True, write=True, create=True, admin=True)]
    zk.create(f"{path}/parent", acl=parent_acl)
    zk.create(f"{path}/parent/child")
    with pytest.raises(NoAuthError):
        zk.delete(f"{path}/parent/child")
    zk.set_acls(f"{path}/parent", OPEN_ACL_UNSAFE)
    zk.delete(f"{path}/parent/child")


def test_set_acls_increments_aversion_only(zk, path):
    zk.create(f"{path}/a", b"x")
    s0 = zk.exists(f"{path}/a")
    s1 = zk.set_acls(f"{path}/a", READ_ACL_UNSAFE + [make_digest_acl("dave", "pw", all=True)])
    assert s1.aversion == 1
    assert (s1.version, s1.cversion, s1.mzxid, s1.mtime) == (s0.version, s0.cversion, s0.mzxid, s0.mtime)
    assert s1.pzxid == s0.pzxid
    acls, s2 = zk.get_acls(f"{path}/a")
    assert s2.aversion == 1
    assert sorted((a.perms, a.id.scheme) for a in acls) == [(Permissions.READ, "world"), (Permissions.ALL, "digest")]


def test_set_acls_with_stale_aversion_raises_bad_version(zk, path):
    zk.create(f"{path}/a")
    zk.set_acls(f"{path}/a", OPEN_ACL_UNSAFE, version=0)
    with pytest.raises(BadVersionError):
        zk.set_acls(f"{path}/a", READ_ACL_UNSAFE, version=0)
    zk.set_acls(f"{path}/a", READ_ACL_UNSAFE, version=1)
    assert zk.exists(f"{path}/a").aversion == 2


def test_set_acls_requires_admin_permission(zk, zk2, path):
    zk.add_auth("digest", "erin:pw")
    acl = [make_digest_acl("erin", "pw", all=True), make_acl("world", "anyone", read=True, write=True)]
    zk.create(f"{path}/adm", b"", acl=acl)
    zk2.set(f"{path}/adm", b"write ok")
    with pytest.raises(NoAuthError):
        zk2.set_acls(f"{path}/adm", OPEN_ACL_UNSAFE)
    zk.set_acls(f"{path}/adm", OPEN_ACL_UNSAFE)


def test_ip_scheme_acl_matches_client_address(zk, path):
    zk.create(f"{path}/local", b"l", acl=[make_acl("ip", "127.0.0.1", all=True)])
    zk.create(f"{path}/subnet", b"s", acl=[make_acl("ip", "127.0.0.0/8", read=True)])
    zk.create(f"{path}/remote", b"r", acl=[make_acl("ip", "192.0.2.1", all=True)])
    assert zk.get(f"{path}/local")[0] == b"l"
    assert zk.get(f"{path}/subnet")[0] == b"s"
    with pytest.raises(NoAuthError):
        zk.get(f"{path}/remote")


def test_unknown_auth_scheme_fails_authentication(make_client):
    c = make_client()
    with pytest.raises(AuthFailedError):
        c.add_auth("nosuchscheme", "whatever")
