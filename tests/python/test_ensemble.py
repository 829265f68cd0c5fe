"""A 3-voter ensemble driven by kazoo: replication across members, a client
connected to every member that survives the leader's death, and read-only
mode (``readonlymode.enabled``) on a voter left without a quorum.

Each test starts its own ensemble (it does not use the single-server
``server`` fixture): ``$PADDOCK_BIN`` (default ``<repo>/target/release/paddock``)
run as ``paddock server --cores 1 <zoo.cfg>`` per member, or, with
``PADDOCK_TARGET=zookeeper``, Apache ZooKeeper 3.8 through
``scripts/zookeeper-run`` (with ZooKeeper's quorum main class). The zoo.cfg
layout is the Rust harness's (tests/src/ensemble.rs): tickTime=100, one
directory, ``myid`` and three free ports per member.

Read-only mode is a zoo.cfg key for Paddock (``readonlymode.enabled=true``);
Apache ZooKeeper reads it only as a Java system property, so the ZooKeeper
flavour gets ``-Dreadonlymode.enabled=true`` on its command line as well (and
``localSessionsEnabled=true``, without which it refuses read-only sessions).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError, NotReadOnlyCallError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KeeperState
from kazoo.retry import KazooRetry

from zkhelpers import four_letter_word, wait_for

REPO = Path(__file__).resolve().parents[2]
START_DEADLINE_S = 40.0
ELECTION_DEADLINE_S = 30.0
SESSION_TIMEOUT_S = 4.0

NOT_SERVING = "This ZooKeeper instance is not currently serving requests"

ZOO_CFG = """\
tickTime=100
initLimit=10
syncLimit=5
dataDir={dir}/data
dataLogDir={dir}/log
clientPort={client_port}
clientPortAddress=127.0.0.1
4lw.commands.whitelist=*
admin.enableServer=false
maxClientCnxns=0
preAllocSize=4096
maxSessionTimeout=10000
"""

def _die_with_parent():
    """preexec_fn: SIGKILL the member if the pytest process dies abruptly."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _free_ports(n):
    """n distinct ports nobody listens on right now."""
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


class Ensemble:
    def __init__(self, target, voters=3, extra_cfg="", zookeeper_flags=()):
        self.target = target
        # JVM flags for the ZooKeeper flavour (settings it reads only as system properties).
        self.zookeeper_flags = list(zookeeper_flags)
        self.root = Path(tempfile.mkdtemp(prefix=f"paddock-ensemble-{target}-"))
        self.ids = list(range(1, voters + 1))
        ports = _free_ports(3 * voters)
        self.client_port = {i: ports[3 * (i - 1)] for i in self.ids}
        servers = "".join(
            f"server.{i}=127.0.0.1:{ports[3 * (i - 1) + 1]}:{ports[3 * (i - 1) + 2]}\n" for i in self.ids
        )
        self.procs = {}
        self.logs = {}
        for i in self.ids:
            d = self.dir(i)
            (d / "data").mkdir(parents=True)
            (d / "log").mkdir()
            (d / "data" / "myid").write_text(f"{i}\n")
            (d / "zoo.cfg").write_text(ZOO_CFG.format(dir=d, client_port=self.client_port[i]) + servers + extra_cfg)

    def dir(self, i):
        return self.root / f"s{i}"

    def hostport(self, i):
        return f"127.0.0.1:{self.client_port[i]}"

    def hosts(self, ids=None):
        return ",".join(self.hostport(i) for i in (ids or self.ids))

    def _command(self, i):
        cfg = str(self.dir(i) / "zoo.cfg")
        if self.target == "zookeeper":
            return [str(REPO / "scripts" / "zookeeper-run"), cfg] + self.zookeeper_flags
        binary = os.environ.get("PADDOCK_BIN") or str(REPO / "target" / "release" / "paddock")
        if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
            raise RuntimeError(f"Paddock binary {binary!r} not found (cargo build --release, or set PADDOCK_BIN)")
        return [binary, "server", "--cores", "1", cfg]

    def start(self, i):
        assert i not in self.procs, f"server {i} is already running"
        env = dict(os.environ)
        if self.target == "zookeeper":
            if "ZK_JAVA" in env:
                env["PADDOCK_ZK_REAL_JAVA"] = env["ZK_JAVA"]
            # Runs QuorumPeerMain where scripts/zookeeper-run starts the standalone class.
            env["ZK_JAVA"] = str(REPO / "scripts" / "zookeeper-quorum-java")
        log = open(self.dir(i) / "server.log", "ab")
        log.write(f"=== harness: starting server {i} ({self.target})\n".encode())
        log.flush()
        self.logs[i] = log
        self.procs[i] = subprocess.Popen(
            self._command(i),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd=str(self.dir(i)),
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )

    def kill(self, i):
        """SIGKILL, as a crash."""
        p = self.procs.pop(i, None)
        if p is not None:
            try:
                p.kill()
            except ProcessLookupError:
                pass
            p.wait(timeout=10)
        log = self.logs.pop(i, None)
        if log is not None:
            log.close()

    def close(self):
        for i in list(self.procs):
            self.kill(i)

    def mode(self, i):
        """leader/follower/observer from srvr; None when not serving or down."""
        if i not in self.procs:
            return None
        try:
            text = four_letter_word(self.hostport(i), "srvr", timeout=2.0)
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("Mode:"):
                return line.split(":", 1)[1].strip()
        return None

    def leader(self):
        leaders = [i for i in self.procs if self.mode(i) == "leader"]
        return leaders[0] if len(leaders) == 1 else None

    def wait_modes(self, timeout):
        """Until every running member has a mode and exactly one leads; the leader."""

        def formed():
            modes = {i: self.mode(i) for i in self.procs}
            if not modes or any(m is None for m in modes.values()):
                return None
            leaders = [i for i, m in modes.items() if m == "leader"]
            return leaders[0] if len(leaders) == 1 else None

        leader = wait_for(formed, timeout=timeout, interval=0.02)
        if leader is None:
            raise AssertionError(f"no single leader within {timeout}s: {self.describe()}")
        return leader

    def describe(self):
        return ", ".join(f"{i}: {self.mode(i) if i in self.procs else 'down'}" for i in self.ids)

    def log_tails(self, lines=60):
        out = []
        for i in self.ids:
            try:
                text = (self.dir(i) / "server.log").read_text(errors="replace")
            except OSError:
                text = "(no log)"
            out.append(f"--- server {i} ---\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(out)


def _target():
    return "zookeeper" if os.environ.get("PADDOCK_TARGET", "").lower() == "zookeeper" else "paddock"


def _run_ensemble(request, **kwargs):
    """Starts an ensemble of the selected flavour, yields it formed, and stops it
    (keeping its directory and printing the logs' tails when a test failed)."""
    target = _target()
    if target == "zookeeper":
        r = subprocess.run([str(REPO / "scripts" / "zookeeper-run"), "--install"], stdout=subprocess.DEVNULL)
        if r.returncode != 0:
            pytest.fail(f"Apache ZooKeeper is not available (scripts/zookeeper-run --install exited {r.returncode})")
    failed_before = request.session.testsfailed
    e = Ensemble(target, **kwargs)
    ok = False
    try:
        for i in e.ids:
            e.start(i)
        e.wait_modes(START_DEADLINE_S)
        yield e
        ok = request.session.testsfailed == failed_before
    finally:
        e.close()
        if not ok:
            print(f"ensemble kept in {e.root}\n{e.log_tails()}", file=sys.stderr)
        elif os.environ.get("PADDOCK_KEEP_TMP") != "1":
            shutil.rmtree(e.root, ignore_errors=True)


@pytest.fixture
def ensemble(request):
    yield from _run_ensemble(request)


# ZooKeeper (3.6.2 on, ZOOKEEPER-3864) serves read-only clients only with local
# sessions: without localSessionsEnabled its read-only server answers their
# ConnectRequest with NOTREADONLY. Paddock accepts both keys and ignores them.
READ_ONLY_CFG = "readonlymode.enabled=true\nlocalSessionsEnabled=true\nlocalSessionsUpgradingEnabled=true\n"


@pytest.fixture
def read_only_ensemble(request):
    yield from _run_ensemble(request, extra_cfg=READ_ONLY_CFG, zookeeper_flags=["-Dreadonlymode.enabled=true"])


def _client(hosts):
    zk = KazooClient(hosts=hosts, timeout=SESSION_TIMEOUT_S)
    zk.start(timeout=15)
    return zk


def test_write_through_one_member_read_after_sync_through_another(ensemble):
    clients = {i: _client(ensemble.hostport(i)) for i in ensemble.ids}
    try:
        base = f"/ens-{uuid.uuid4().hex[:8]}"
        clients[1].create(base, b"")
        for i, writer in clients.items():
            writer.create(f"{base}/from-{i}", str(i).encode())
        for i, reader in clients.items():
            reader.sync(base)
            assert sorted(reader.get_children(base)) == [f"from-{j}" for j in ensemble.ids], f"server {i}"
        for round_ in range(9):
            writer = clients[ensemble.ids[round_ % 3]]
            reader = clients[ensemble.ids[(round_ + 1) % 3]]
            value = f"round-{round_}".encode()
            writer.set(f"{base}/from-1", value)
            reader.sync(f"{base}/from-1")
            assert reader.get(f"{base}/from-1")[0] == value, f"round {round_}"
    finally:
        for c in clients.values():
            c.stop()
            c.close()


def test_a_client_of_every_member_survives_the_leaders_death_and_keeps_writing(ensemble):
    zk = _client(ensemble.hosts())
    retry = KazooRetry(max_tries=-1, deadline=ELECTION_DEADLINE_S, delay=0.05, max_delay=0.5)
    try:
        base = f"/failover-{uuid.uuid4().hex[:8]}"
        zk.create(base, b"")
        zk.create(f"{base}/eph", b"", ephemeral=True)
        session = zk.client_id[0]

        def create(path):
            try:
                zk.create(path, b"")
            except NodeExistsError:
                pass  # a retry of a create whose reply was lost

        for n in range(20):
            retry(create, f"{base}/n-{n:04}")
        leader = ensemble.leader()
        assert leader is not None, ensemble.describe()
        killed = time.monotonic()
        ensemble.kill(leader)
        for n in range(20, 60):
            retry(create, f"{base}/n-{n:04}")
            if n == 20:
                print(f"kazoo failover: kill -> first write {1000 * (time.monotonic() - killed):.0f} ms", file=sys.stderr)
        new_leader = ensemble.wait_modes(ELECTION_DEADLINE_S)
        assert new_leader != leader
        assert zk.client_id[0] == session, "the session survived the failover"
        assert zk.exists(f"{base}/eph") is not None, "the ephemeral of the live session survived"
        # Every write is on every surviving member.
        for i in ensemble.procs:
            other = _client(ensemble.hostport(i))
            try:
                other.sync(base)
                children = set(other.get_children(base))
                assert {f"n-{n:04}" for n in range(60)} <= children, f"server {i}"
            finally:
                other.stop()
                other.close()
    finally:
        zk.stop()
        zk.close()


def _four_letter(ensemble, i, word):
    """A four-letter word's answer, stripped; None when the member does not answer."""
    try:
        return four_letter_word(ensemble.hostport(i), word, timeout=2.0).strip()
    except OSError:
        return None


def test_a_voter_without_a_quorum_serves_read_only_clients_until_the_quorum_returns(read_only_ensemble):
    e = read_only_ensemble
    leader = e.leader()
    assert leader is not None, e.describe()
    survivor = min(i for i in e.ids if i != leader)
    others = [i for i in e.ids if i != survivor]
    base = f"/ro-{uuid.uuid4().hex[:8]}"
    zk = _client(e.hostport(survivor))
    try:
        zk.create(base, b"kept")
    finally:
        zk.stop()
        zk.close()

    for i in others:
        e.kill(i)
    killed = time.monotonic()
    # Read-only after max(2 s, tickTime) without a quorum, once the survivor has noticed.
    assert wait_for(lambda: _four_letter(e, survivor, "isro") == "ro", timeout=30.0, interval=0.05), (
        f"isro is {_four_letter(e, survivor, 'isro')!r} 30 s after losing the quorum"
    )
    print(f"read-only {1000 * (time.monotonic() - killed):.0f} ms after the kill", file=sys.stderr)
    assert e.mode(survivor) == "read-only", _four_letter(e, survivor, "srvr")

    ro = KazooClient(hosts=e.hostport(survivor), timeout=SESSION_TIMEOUT_S, read_only=True)
    try:
        ro.start(timeout=10)
        assert ro.client_state == KeeperState.CONNECTED_RO, ro.client_state
        assert ro.get(base)[0] == b"kept"
        with pytest.raises(NotReadOnlyCallError):
            ro.create(f"{base}/write", b"")
        assert ro.exists(f"{base}/write") is None
    finally:
        ro.stop()
        ro.close()

    # A client that did not ask for read-only gets no session from a read-only server.
    normal = KazooClient(hosts=e.hostport(survivor), timeout=SESSION_TIMEOUT_S)
    try:
        with pytest.raises(KazooTimeoutError):
            normal.start(timeout=3)
    finally:
        normal.stop()
        normal.close()

    for i in others:
        e.start(i)
    assert wait_for(lambda: _four_letter(e, survivor, "isro") == "rw", timeout=ELECTION_DEADLINE_S, interval=0.05), (
        f"isro is {_four_letter(e, survivor, 'isro')!r} {ELECTION_DEADLINE_S} s after the quorum returned; {e.describe()}"
    )
    zk = _client(e.hostport(survivor))
    retry = KazooRetry(max_tries=-1, deadline=ELECTION_DEADLINE_S, delay=0.05, max_delay=0.5)
    try:

        def create(path):
            try:
                zk.create(path, b"")
            except NodeExistsError:
                pass  # a retry of a create whose reply was lost

        retry(create, f"{base}/after")
        zk.sync(base)
        assert zk.get_children(base) == ["after"]
    finally:
        zk.stop()
        zk.close()
