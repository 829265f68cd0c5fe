"""Fixtures for Paddock's end-to-end suite.

One server process is started per test session, on a free 127.0.0.1 port and
a fresh temporary dataDir:

* ``PADDOCK_TARGET=zookeeper`` -> Apache ZooKeeper 3.8 through
  ``scripts/zookeeper-run`` (the reference behaviour);
* otherwise Paddock: ``$PADDOCK_BIN`` (default ``<repo>/target/release/paddock``)
  run as ``paddock server --cores 2 <zoo.cfg>``.

Both get the same zoo.cfg. The process is killed (SIGTERM, then SIGKILL) at
the end of the session whatever happened, and its log is printed when any
test failed.
"""

import atexit
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from zkhelpers import RawSession, four_letter_word

REPO = Path(__file__).resolve().parents[2]
READY_DEADLINE_S = 20.0
# Default client session timeout (seconds). The server's tickTime of 200 ms
# bounds negotiated timeouts to [400, 4000] ms.
CLIENT_TIMEOUT_S = 4.0

ZOO_CFG = """\
tickTime=200
initLimit=10
syncLimit=5
dataDir={datadir}
clientPort={port}
clientPortAddress=127.0.0.1
maxClientCnxns=0
4lw.commands.whitelist=*
extendedTypesEnabled=true
admin.enableServer=false
znode.container.checkIntervalMs=500
preAllocSize=4096
"""


def _die_with_parent():
    """preexec_fn: SIGKILL the server if the pytest process dies abruptly."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, target):
        self.target = target
        self.tmpdir = Path(tempfile.mkdtemp(prefix=f"paddock-e2e-{target}-"))
        self.datadir = self.tmpdir / "data"
        self.datadir.mkdir()
        self.cfg = self.tmpdir / "zoo.cfg"
        self.log_path = self.tmpdir / "server.log"
        self.proc = None
        self.port = None
        self.ruok = None
        self._log_file = None

    @property
    def hostport(self):
        return f"127.0.0.1:{self.port}"

    def _command(self):
        if self.target == "zookeeper":
            return [str(REPO / "scripts" / "zookeeper-run"), str(self.cfg)]
        binary = os.environ.get("PADDOCK_BIN") or str(REPO / "target" / "release" / "paddock")
        if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
            raise RuntimeError(
                f"Paddock binary {binary!r} not found or not executable "
                "(build it with `cargo build --release`, set PADDOCK_BIN, "
                "or set PADDOCK_TARGET=zookeeper to test against Apache ZooKeeper)"
            )
        return [binary, "server", "--cores", "2", str(self.cfg)]

    def _prepare(self):
        if self.target != "zookeeper":
            return
        # Install the package (if needed) outside the readiness deadline.
        try:
            r = subprocess.run(
                [str(REPO / "scripts" / "zookeeper-run"), "--install"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=1200,
            )
        except subprocess.TimeoutExpired as e:
            raise RuntimeError("installing Apache ZooKeeper timed out") from e
        if r.returncode != 0:
            raise RuntimeError(
                f"Apache ZooKeeper is not available (scripts/zookeeper-run --install exited "
                f"{r.returncode}):\n{r.stdout.decode(errors='replace')[-4000:]}"
            )

    def start(self):
        self._prepare()
        last_error = None
        for _attempt in range(3):  # a free port can be stolen between probe and bind
            self.port = _free_port()
            self.cfg.write_text(ZOO_CFG.format(datadir=self.datadir, port=self.port))
            self._log_file = open(self.log_path, "ab")
            self._log_file.write(f"=== starting {self.target} on port {self.port}\n".encode())
            self._log_file.flush()
            self.proc = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                cwd=str(self.tmpdir),
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
            try:
                self._wait_ready()
                return
            except RuntimeError as e:
                last_error = e
                exited_early = self.proc.poll() is not None
                self.stop()
                if not exited_early:
                    break  # running but unresponsive: retrying will not help
        raise RuntimeError(f"{last_error}\n--- server log ---\n{self.log_tail()}")

    def _wait_ready(self):
        deadline = time.monotonic() + READY_DEADLINE_S
        while True:
            code = self.proc.poll()
            if code is not None:
                raise RuntimeError(f"{self.target} exited with code {code} before becoming ready")
            if self._probe():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.target} not ready after {READY_DEADLINE_S}s on {self.hostport}")
            time.sleep(0.05)  # polling interval of a deadline-bounded readiness loop

    def _probe(self):
        # `ruok` alone is not enough: ZooKeeper answers "imok" as soon as its
        # listener is up, before the database is loaded and sessions work. So
        # a real session handshake (plus closeSession) must succeed too.
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                pass
        except OSError:
            return False  # nothing listening yet
        try:
            self.ruok = four_letter_word(self.hostport, "ruok", timeout=1.0).strip()
        except OSError:
            self.ruok = None  # four-letter words are optional for readiness
        try:
            s = RawSession(self.hostport, 4000)
        except (OSError, ConnectionError, struct.error):
            return False
        try:
            ok = s.connect_response.timeout > 0 and s.session_id != 0
            s.close_session()
            return ok
        except (OSError, ConnectionError, struct.error):
            return False
        finally:
            s.sock.close()

    def stop(self):
        proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                try:
                    os.kill(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log_tail(self, lines=80):
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


_SERVER = None


@pytest.fixture(scope="session")
def server():
    """Start one server for the whole session and yield its "host:port"."""
    global _SERVER
    target = "zookeeper" if os.environ.get("PADDOCK_TARGET", "").lower() == "zookeeper" else "paddock"
    srv = ServerProcess(target)
    _SERVER = srv
    atexit.register(srv.stop)
    try:
        _disarm()  # startup has its own deadlines (install, readiness)
        try:
            srv.start()
        finally:
            _arm()
        yield srv.hostport
    finally:
        srv.stop()
        if os.environ.get("PADDOCK_KEEP_TMP") != "1" and not _SESSION_FAILED[0]:
            shutil.rmtree(srv.tmpdir, ignore_errors=True)


_SESSION_FAILED = [False]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        _SESSION_FAILED[0] = True


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _SERVER is not None and _SESSION_FAILED[0]:
        terminalreporter.section(f"{_SERVER.target} server log (tail of {_SERVER.log_path})")
        terminalreporter.write_line(_SERVER.log_tail())


# Watchdog: kazoo's synchronous calls wait forever for a reply, so a server
# that never answers would hang the suite. Each test phase (setup, call,
# teardown) gets a SIGALRM deadline that turns such a hang into a failure.
# Starting the server (which may install ZooKeeper) is exempt.
TEST_TIMEOUT_S = float(os.environ.get("PADDOCK_TEST_TIMEOUT", "60"))
_USE_ALARM = TEST_TIMEOUT_S > 0 and hasattr(signal, "setitimer")


class WatchdogTimeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise WatchdogTimeout(f"test phase exceeded {TEST_TIMEOUT_S:.0f}s (PADDOCK_TEST_TIMEOUT)")


def _arm():
    if _USE_ALARM:
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, TEST_TIMEOUT_S)


def _disarm():
    if _USE_ALARM:
        signal.setitimer(signal.ITIMER_REAL, 0)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    _arm()
    try:
        yield
    finally:
        _disarm()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    _arm()
    try:
        yield
    finally:
        _disarm()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item):
    _arm()
    try:
        yield
    finally:
        _disarm()


class ClientFactory:
    """Makes connected KazooClients and closes all of them at teardown."""

    def __init__(self, hostport):
        self.hostport = hostport
        self.clients = []

    def __call__(self, timeout=CLIENT_TIMEOUT_S, **kwargs):
        zk = KazooClient(hosts=self.hostport, timeout=timeout, **kwargs)
        zk.start(timeout=15)
        self.clients.append(zk)
        return zk

    def close_all(self):
        for zk in self.clients:
            try:
                zk.stop()
                zk.close()
            except Exception:
                pass


@pytest.fixture
def make_client(server):
    factory = ClientFactory(server)
    try:
        yield factory
    finally:
        factory.close_all()


@pytest.fixture
def zk(make_client):
    return make_client()


@pytest.fixture
def zk2(make_client):
    return make_client()


@pytest.fixture
def path(request, server):
    """A unique, existing persistent znode for this test: /e2e/<test>-<rand>."""
    name = request.node.name.replace("[", "-").replace("]", "").replace("/", "_")
    p = f"/e2e/{name}-{uuid.uuid4().hex[:8]}"
    admin = KazooClient(hosts=server, timeout=CLIENT_TIMEOUT_S)
    admin.start(timeout=15)
    try:
        admin.ensure_path(p)
        yield p
        try:
            admin.delete(p, recursive=True)
        except NoNodeError:
            pass
        except Exception:
            pass  # cleanup is best effort (e.g. nodes with restrictive ACLs)
    finally:
        admin.stop()
        admin.close()
