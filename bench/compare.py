#!/usr/bin/env python3
"""Paddock and Apache ZooKeeper 3.8 side by side: identical topologies, settings and workloads,
one system after the other, driven by the same `paddock bench load`. Writes bench/results/
(results.json with every run, tables.md, hgrm files, SVG plots) and the generated part of
PERF.md. Run through bench/compare.sh, which installs ZooKeeper and builds Paddock first.
"""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PADDOCK = REPO / "target" / "release" / "paddock"
RESULTS = REPO / "bench" / "results"
PERF_MD = REPO / "PERF.md"
BEGIN, END = "<!-- compare.sh: begin -->", "<!-- compare.sh: end -->"
SYSTEMS = ("paddock", "zookeeper")
LABEL = {"paddock": "Paddock", "zookeeper": "ZooKeeper 3.8"}
# Settings both systems get (zoo.cfg); ZooKeeper's defaults where a key is left out.
COMMON_CFG = (
    "tickTime=2000\ninitLimit=10\nsyncLimit=5\nmaxClientCnxns=0\n"
    "4lw.commands.whitelist=*\nadmin.enableServer=false\nforceSync=yes\n"
)
# zkServer.sh's default heap (ZK_SERVER_HEAP=1000), the collector Java 17 picks by default.
ZK_JVMFLAGS = "-Xmx1000m"


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port(taken):
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p not in taken:
            taken.add(p)
            return p


def four_letter(port, cmd, timeout=2.0):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(cmd.encode())
            out = b""
            while chunk := s.recv(65536):
                out += chunk
            return out.decode(errors="replace")
    except OSError:
        return ""


def mode(port):
    m = re.search(r"^Mode: (\S+)", four_letter(port, "srvr"), re.M)
    return m.group(1) if m else None


def rss_of(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) * 1024
    except (OSError, AttributeError):
        return None


class Ensemble:
    """One system's servers in one topology: configs, start, stop, the leader."""

    def __init__(self, system, root, voters, observers, taskset=None, paddock_cores=None):
        self.system, self.voters, self.observers = system, voters, observers
        self.taskset, self.paddock_cores = taskset, paddock_cores
        self.root = Path(root)
        self.n = voters + observers
        taken = set()
        self.ports = [(free_port(taken), free_port(taken), free_port(taken)) for _ in range(self.n)]
        self.procs = [None] * self.n
        servers = ""
        if self.n > 1:
            for i, (_, q, e) in enumerate(self.ports):
                kind = ":observer" if i >= voters else ""
                servers += f"server.{i + 1}=127.0.0.1:{q}:{e}{kind}\n"
        for i in range(self.n):
            home = self.home(i)
            (home / "data").mkdir(parents=True, exist_ok=True)
            (home / "log").mkdir(parents=True, exist_ok=True)
            (home / "data" / "myid").write_text(f"{i + 1}\n")
            cfg = COMMON_CFG + f"dataDir={home}/data\ndataLogDir={home}/log\nclientPort={self.ports[i][0]}\n"
            cfg += "clientPortAddress=127.0.0.1\n" + servers
            if i >= voters:
                cfg += "peerType=observer\n"
            (home / "zoo.cfg").write_text(cfg)

    def home(self, i):
        return self.root / f"{self.system}-s{i + 1}"

    def command(self, i):
        cfg = str(self.home(i) / "zoo.cfg")
        pin = ["taskset", "-c", self.taskset] if self.taskset else []
        if self.system == "paddock":
            cores = ["--cores", str(self.paddock_cores)] if self.paddock_cores else []
            return pin + [str(PADDOCK), "server", *cores, cfg]
        return pin + [str(REPO / "scripts" / "zookeeper-run"), cfg]

    def env(self):
        env = dict(os.environ)
        if self.system == "zookeeper":
            # QuorumPeerMain (standalone too without server lines) where zookeeper-run starts the standalone class.
            env.update(ZK_JAVA=str(REPO / "scripts" / "zookeeper-quorum-java"), ZK_JVMFLAGS=ZK_JVMFLAGS,
                       ZK_LOG_LEVEL="warn")
        return env

    def start_one(self, i):
        err = open(self.home(i) / "server.log", "ab")
        self.procs[i] = subprocess.Popen(
            self.command(i), env=self.env(), stdin=subprocess.DEVNULL, stdout=err, stderr=err,
            start_new_session=True)

    def start(self, timeout=120):
        for i in range(self.n):
            self.start_one(i)
        self.wait_whole(timeout)

    def wait_whole(self, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            modes = [mode(p[0]) for p in self.ports]
            if all(modes) and (self.n == 1 or modes.count("leader") == 1):
                return
            for i, p in enumerate(self.procs):
                if p is not None and p.poll() is not None:
                    raise RuntimeError(f"{self.system} server {i + 1} exited: see {self.home(i)}/server.log")
            time.sleep(0.1)  # polling interval; the deadline bounds it
        raise RuntimeError(f"{self.system} ensemble not whole within {timeout} s")

    def kill(self, i):
        p = self.procs[i]
        if p is not None and p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        self.procs[i] = None

    def stop(self):
        for i in range(self.n):
            self.kill(i)

    def pid(self, i):
        """The server's own pid: taskset and scripts/zookeeper-run exec, so the child's pid."""
        return self.procs[i].pid

    def pids(self):
        return [self.pid(i) for i in range(self.n)]

    def addrs(self):
        return [f"127.0.0.1:{p[0]}" for p in self.ports]

    def leader(self):
        for i, p in enumerate(self.ports):
            if mode(p[0]) in ("leader", "standalone"):
                return i
        raise RuntimeError("no leader")


class Compare:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.runs = args.runs or (1 if args.quick else 3)
        self.duration = 2 if args.quick else 5
        # ZooKeeper's JIT needs seconds to warm; both systems get the same warm-up.
        self.warmup = 2 if args.quick else 3
        self.work = Path(tempfile.mkdtemp(prefix="paddock-compare-"))
        self.hist_dir = RESULTS / "hist"
        self.results = {"runs": [], "election": {}, "memory": {}, "restart": {}, "floor": None, "plan": []}

    # ---- load runs -------------------------------------------------------------------------

    def load(self, ens, name, kind, addrs=None, sessions=8, in_flight=16, rate=None, extra=(), client_pin=None):
        """`paddock bench load` against `ens` self.runs times; each run recorded in results."""
        out = []
        for run in range(self.runs):
            hist = self.work / f"{ens.system}-{name}-{run}.hgrm"
            cmd = ["taskset", "-c", client_pin] if client_pin else []
            cmd += [str(PADDOCK), "bench", "load", "--json", "--servers", ",".join(addrs or ens.addrs()),
                    "--sessions", str(sessions), "--in-flight", str(in_flight), "--ops-kind", kind,
                    "--duration", str(self.duration), "--warmup", str(self.warmup), "--value-size", "100",
                    "--keys", "1000", "--hist-out", str(hist), "--cpu-pids", ",".join(map(str, ens.pids())),
                    "--max-error-pct", "0", *extra]
            if rate:
                cmd += ["--rate", str(int(rate))]
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
            r = json.loads(p.stdout)
            r.update(system=ens.system, workload=name, run=run, hist=str(hist))
            self.results["runs"].append(r)
            out.append(r)
            log(f"  {ens.system:9} {name:28} run {run + 1}: {r['throughput_ops_s']:>10,.0f} ops/s"
                f"  p99 {r['latency_ms']['p99']:.2f} ms")
        return out

    def median_run(self, system, name, key=lambda r: r["throughput_ops_s"]):
        runs = sorted((r for r in self.results["runs"] if r["system"] == system and r["workload"] == name), key=key)
        return runs[(len(runs) - 1) // 2] if runs else None

    def stat(self, system, name, f):
        vals = [f(r) for r in self.results["runs"] if r["system"] == system and r["workload"] == name]
        return statistics.median(vals) if vals else None

    # ---- topologies ------------------------------------------------------------------------

    def topology(self, label, voters, observers, body, **kw):
        for system in SYSTEMS:
            # Ensemble members share this machine's CPUs: one executor each, as one JVM each.
            kw.setdefault("paddock_cores", 1 if voters + observers > 1 else None)
            ens = Ensemble(system, self.work / f"{label}-{system}", voters, observers, **kw)
            log(f"{label}: starting {LABEL[system]}")
            try:
                ens.start()
                body(ens)
            finally:
                ens.stop()

    def standalone(self, ens):
        for kind in ("get", "set", "mixed"):
            self.load(ens, f"standalone {kind}", kind)

    def voters3(self, ens):
        leader = ens.leader()
        self.load(ens, "3 voters set", "set")
        self.load(ens, "3 voters get", "get")
        self.load(ens, "3 voters mixed", "mixed")
        self.load(ens, "3 voters single-client set", "set", addrs=[ens.addrs()[leader]], sessions=1, in_flight=1)
        self.election(ens)

    def voters3_rate(self, ens):
        self.load(ens, "3 voters set at equal rate", "set", rate=self.equal_rate)

    def observers2(self, ens):
        for kind in ("get", "set", "mixed"):
            self.load(ens, f"3 voters + 2 observers {kind}", kind)

    def pinned(self, ens):
        for kind in ("get", "set"):
            self.load(ens, f"standalone 1 core {kind}", kind, client_pin="0")

    def election(self, ens):
        trials = 3 if self.quick else 7
        scripts = []
        for i in range(ens.n):
            s = ens.root / f"restart-{i + 1}.sh"
            cmd = " ".join(f"'{c}'" for c in ens.command(i))
            envs = " ".join(f"{k}='{v}'" for k, v in ens.env().items()
                            if k in ("ZK_JAVA", "ZK_JVMFLAGS", "ZK_LOG_LEVEL"))
            s.write_text(f"#!/bin/sh\n{envs} setsid {cmd} </dev/null >>'{ens.home(i)}/server.log' 2>&1 &\n")
            s.chmod(0o755)
            scripts.append(s)
        kill = f"pkill -9 -f '{ens.root}/{ens.system}-s[{{id}}]/zoo.cfg'"
        restart = f"{ens.root}/restart-{{id}}.sh"
        p = subprocess.run([str(PADDOCK), "bench", "election", "--json", "--servers", ",".join(ens.addrs()),
                            "--kill-cmd", kill, "--restart-cmd", restart, "--trials", str(trials)],
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"bench election failed:\n{p.stdout}\n{p.stderr[-3000:]}")
        r = json.loads(p.stdout.strip().splitlines()[-1])
        self.results["election"][ens.system] = r
        log(f"  {ens.system:9} election: median first write {r['median_first_write_ms']} ms over {trials} trials")
        # bench election restarted members outside our Popen handles: stop them by pattern later.
        pkill = f"{ens.root}/{ens.system}-s"
        subprocess.run(["pkill", "-9", "-f", pkill])
        for i in range(ens.n):
            ens.procs[i] = None

    def memory_and_restart(self, ens):
        znodes = 200_000 if self.quick else 1_000_000
        log(f"  {ens.system}: creating {znodes:,} znodes of 100 bytes")
        t = time.monotonic()
        cmd = [str(PADDOCK), "bench", "load", "--servers", ens.addrs()[0], "--keys", str(znodes), "--keep",
               "--ops-kind", "get", "--ops", "1", "--warmup", "0", "--value-size", "100", "--json"]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"populating failed:\n{p.stderr[-3000:]}")
        mem = {"znodes": znodes, "populate_s": time.monotonic() - t, "rss_bytes": rss_of(ens.pid(0))}
        if ens.system == "zookeeper":
            mem["heap_after_full_gc_bytes"] = self.zk_live_heap(ens.pid(0))
        restarts = []
        for _ in range(self.runs):
            ens.kill(0)
            t = time.monotonic()
            ens.start_one(0)
            p = subprocess.run([str(PADDOCK), "bench", "ready", "--server", ens.addrs()[0], "--timeout", "300"],
                               capture_output=True, text=True)
            if p.returncode != 0:
                raise RuntimeError(f"{ens.system} did not serve after restart:\n{p.stderr}")
            restarts.append((time.monotonic() - t) * 1000)
        count = re.search(r"zk_znode_count\s+(\d+)", four_letter(ens.ports[0][0], "mntr"))
        mem["znode_count"] = int(count.group(1)) if count else None
        mem["rss_after_restart_bytes"] = rss_of(ens.pid(0))
        if ens.system == "zookeeper":
            mem["heap_after_restart_full_gc_bytes"] = self.zk_live_heap(ens.pid(0))
        self.results["memory"][ens.system] = mem
        self.results["restart"][ens.system] = {"znodes": znodes, "ms": restarts}
        log(f"  {ens.system}: RSS {mem['rss_bytes'] / 2**20:.0f} MiB, restart median "
            f"{statistics.median(restarts):.0f} ms")

    @staticmethod
    def zk_live_heap(pid):
        """Live heap after a full GC, as jcmd reports it (G1: 'used' of 'garbage-first heap')."""
        subprocess.run(["jcmd", str(pid), "GC.run"], capture_output=True, text=True, timeout=120)
        info = subprocess.run(["jcmd", str(pid), "GC.heap_info"], capture_output=True, text=True, timeout=60).stdout
        m = re.search(r"used (\d+)K", info)
        return int(m.group(1)) * 1024 if m else None

    # ---- the whole run ---------------------------------------------------------------------

    def floor(self):
        p = subprocess.run([str(PADDOCK), "bench", "floor", "--json", "--dir", str(self.work)],
                           capture_output=True, text=True, check=True)
        self.results["floor"] = json.loads(p.stdout)

    def plan(self):
        cal = RESULTS / "calibration.json"
        subprocess.run([str(PADDOCK), "bench", "plan", "--calibrate-only", "--save", str(cal)],
                       capture_output=True, text=True, check=True)
        self.results["plan"] = []
        # The pinned run is the model's "dedicated" layout: the server on a core of its own,
        # the load generator on the other.
        for label, v, o, layout in (("standalone", 1, 0, []), ("standalone 1 core", 1, 0, ["--dedicated"]),
                                    ("3 voters", 3, 0, []), ("3 voters + 2 observers", 3, 2, [])):
            kinds = (("get", 100), ("set", 0)) if layout else (("get", 100), ("set", 0), ("mixed", 90))
            for kind, pct in kinds:
                p = subprocess.run([str(PADDOCK), "bench", "plan", "--calibration", str(cal), "--json",
                                    "--voters", str(v), "--observers", str(o), "--read-pct", str(pct), *layout],
                                   capture_output=True, text=True, check=True)
                pred = json.loads(p.stdout)
                pred["workload"] = f"{label} {kind}"
                self.results["plan"].append(pred)

    def run(self):
        RESULTS.mkdir(parents=True, exist_ok=True)
        if self.hist_dir.exists():
            shutil.rmtree(self.hist_dir)
        self.hist_dir.mkdir(parents=True)
        started = time.monotonic()
        self.results["machine"] = machine()
        self.results["settings"] = {"zoo.cfg": COMMON_CFG, "zookeeper_jvmflags": ZK_JVMFLAGS,
                                    "runs": self.runs, "duration_s": self.duration, "warmup_s": self.warmup,
                                    "sessions": 8, "in_flight": 16, "value_size": 100, "keys": 1000,
                                    "quick": self.quick}
        log("floor: fdatasync of a preallocated log, loopback round trips")
        self.floor()
        self.topology("standalone", 1, 0, self.standalone)
        self.topology("3voters", 3, 0, self.voters3)
        zk = self.stat("zookeeper", "3 voters set", lambda r: r["throughput_ops_s"])
        pd = self.stat("paddock", "3 voters set", lambda r: r["throughput_ops_s"])
        self.equal_rate = round(0.5 * min(zk, pd), -2)
        self.results["equal_rate"] = self.equal_rate
        log(f"equal offered load: {self.equal_rate:,.0f} ops/s (half the slower system's 3-voter write throughput)")
        self.topology("3voters-rate", 3, 0, self.voters3_rate)
        self.topology("3voters2observers", 3, 2, self.observers2)
        self.topology("pinned", 1, 0, self.pinned, taskset="1", paddock_cores=1)
        self.topology("memory", 1, 0, self.memory_and_restart)
        log("capacity model: calibration and predictions")
        self.plan()
        self.results["elapsed_s"] = time.monotonic() - started
        self.keep_plotted_histograms()
        (RESULTS / "results.json").write_text(json.dumps(self.results, indent=1))
        tables = render(self.results)
        (RESULTS / "tables.md").write_text(tables)
        self.plots()
        update_perf_md(tables)
        log(f"done in {self.results['elapsed_s'] / 60:.1f} min; tables in {RESULTS / 'tables.md'}, PERF.md updated")
        shutil.rmtree(self.work, ignore_errors=True)

    PLOTTED = ("3 voters set at equal rate", "3 voters set", "standalone get", "3 voters single-client set")

    def keep_plotted_histograms(self):
        for name in self.PLOTTED:
            for system in SYSTEMS:
                r = self.median_run(system, name)
                if r:
                    dest = self.hist_dir / f"{system}-{slug(name)}.hgrm"
                    shutil.copy(r["hist"], dest)
                    r["hist_kept"] = str(dest.relative_to(RESULTS))

    def plots(self):
        spec = {"latency": [], "bars": []}
        for name in self.PLOTTED:
            title = name
            if name.endswith("equal rate"):
                title += f" ({self.equal_rate:,.0f} ops/s offered)"
            series = [{"label": LABEL[s], "hist": self.median_run(s, name)["hist_kept"]} for s in SYSTEMS
                      if self.median_run(s, name)]
            spec["latency"].append({"file": f"plots/latency-{slug(name)}.svg", "title": title + ": latency by percentile",
                                    "series": series})
        # Two bar charts (the labels of one would overlap): one server, then ensembles.
        charts = (("throughput-standalone.svg", "One server", ("standalone ",)),
                  ("throughput-ensemble.svg", "Ensembles (3v: 3 voters, +2o: and 2 observers)",
                   ("3 voters + 2 observers ", "3 voters ")))
        short = {"standalone ": "", "3 voters + 2 observers ": "3v+2o ", "3 voters ": "3v "}
        for file, title, prefixes in charts:
            groups = [w for w in WORKLOAD_ORDER if self.median_run("paddock", w) and "rate" not in w
                      and "single" not in w and w.startswith(prefixes)]
            labels = []
            for w in groups:
                prefix = next(p for p in prefixes if w.startswith(p))
                labels.append(short[prefix] + w[len(prefix):])
            spec["bars"].append({
                "file": f"plots/{file}", "title": f"{title}: ops/s, median of {self.runs} runs", "unit": "ops/s",
                "groups": labels,
                "series": [{"label": LABEL[s], "values": [self.stat(s, w, lambda r: r["throughput_ops_s"]) or 0
                                                          for w in groups]} for s in SYSTEMS]})
        (RESULTS / "plots").mkdir(exist_ok=True)
        (RESULTS / "plots.json").write_text(json.dumps(spec, indent=1))
        subprocess.run([str(PADDOCK), "bench", "plot", "--spec", str(RESULTS / "plots.json")], check=True,
                       capture_output=True)


WORKLOAD_ORDER = [
    "standalone get", "standalone set", "standalone mixed",
    "standalone 1 core get", "standalone 1 core set",
    "3 voters get", "3 voters set", "3 voters mixed", "3 voters set at equal rate", "3 voters single-client set",
    "3 voters + 2 observers get", "3 voters + 2 observers set", "3 voters + 2 observers mixed",
]


def slug(name):
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def machine():
    cpu = ""
    try:
        cpu = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text()).group(1)
    except (OSError, AttributeError):
        pass
    zk = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "zookeeper"], capture_output=True, text=True).stdout
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[:1]
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    # What this script writes itself (PERF.md, bench/results) does not make the build dirty.
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no", "--", ".",
                            ":(exclude)PERF.md", ":(exclude)bench/results"],
                           capture_output=True, text=True).stdout.strip()
    mem = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1)
    return {"cpu": cpu, "cpus": os.cpu_count(), "mem_gib": round(int(mem) / 2**20, 1), "kernel": platform.release(),
            "zookeeper_package": zk, "java": java[0] if java else "", "paddock_commit": commit + ("+dirty" if dirty else ""),
            "date": time.strftime("%Y-%m-%d")}


# ---- rendering ---------------------------------------------------------------------------------

def fmt_n(x):
    return "–" if x is None else f"{x:,.0f}"


def fmt_ms(x):
    return "–" if x is None else (f"{x:.2f}" if x < 10 else f"{x:.1f}")


def fmt_ratio(x):
    return "–" if x is None else f"{x:.2f}×"


def render(res):
    runs = res["runs"]
    by = {}
    for r in runs:
        by.setdefault((r["system"], r["workload"]), []).append(r)

    def med(system, w, f):
        vals = [f(r) for r in by.get((system, w), [])]
        vals = [v for v in vals if v is not None]
        return statistics.median(vals) if vals else None

    tput = lambda r: r["throughput_ops_s"]
    p99 = lambda r: r["latency_ms"]["p99"]
    p50 = lambda r: r["latency_ms"]["p50"]
    m, s, n = res["machine"], res["settings"], res["settings"]["runs"]
    out = []
    out.append(f"Generated by `bench/compare.sh{' --quick' if s['quick'] else ''}` on {m['date']} in "
               f"{res['elapsed_s'] / 60:.0f} min: Paddock {m['paddock_commit']}, Apache ZooKeeper "
               f"{m['zookeeper_package']} (Debian) on {m['java']}, {m['cpus']} × {m['cpu']}, {m['mem_gib']} GiB, "
               f"Linux {m['kernel']}. Each figure is the median of {n} runs of {s['duration_s']} s after "
               f"{s['warmup_s']} s warm-up; {s['sessions']} sessions × {s['in_flight']} in flight, "
               f"{s['value_size']}-byte values over {s['keys']} keys unless the workload says otherwise. "
               f"Raw runs: `bench/results/results.json`.\n")

    # Headline ratios against the targets.
    rows = []

    def ratio(a, b):
        return a / b if a is not None and b else None

    def headline(what, pd, zk, r, target, ok, unit):
        rows.append(f"| {what} | {pd} {unit} | {zk} {unit} | {fmt_ratio(r)} | {target} | "
                    f"{'met' if ok else 'missed'} |")

    for w, what in (("3 voters set", "write throughput, 3 voters"),
                    ("standalone get", "read throughput, one server"),
                    ("3 voters get", "read throughput, 3 voters")):
        a, b = med("paddock", w, tput), med("zookeeper", w, tput)
        target = 3 if "write" in what else 2
        headline(what, fmt_n(a), fmt_n(b), ratio(a, b), f"≥ {target}×", (ratio(a, b) or 0) >= target, "ops/s")
    w = "3 voters set at equal rate"
    a, b = med("paddock", w, p99), med("zookeeper", w, p99)
    headline(f"write p99, 3 voters at {fmt_n(res.get('equal_rate') or rate_of(runs, w))} ops/s offered",
             fmt_ms(a), fmt_ms(b), ratio(a, b), "≤ 0.33×", (ratio(a, b) or 9) <= 1 / 3, "ms")
    el = res["election"]
    if el.get("paddock") and el.get("zookeeper"):
        a, b = el["paddock"]["median_first_write_ms"], el["zookeeper"]["median_first_write_ms"]
        amax = max(el["paddock"]["first_write_ms"])
        headline("leader kill -9 → first write (median; Paddock max " + f"{amax} ms)", a, b, ratio(a, b),
                 "median < 200 ms, max < 400 ms", a < 200 and amax < 400, "ms")
    mem = res["memory"]
    if mem.get("paddock") and mem.get("zookeeper"):
        zn = mem["paddock"]["znodes"]
        a, b = mem["paddock"]["rss_after_restart_bytes"], mem["zookeeper"]["rss_after_restart_bytes"]
        heap = mem["zookeeper"].get("heap_after_restart_full_gc_bytes")
        headline(f"resident memory, {zn:,} znodes of 100 B (after restart; ZooKeeper live heap after full GC "
                 f"{fmt_n(heap and heap / 2**20)} MiB)", fmt_n(a / 2**20), fmt_n(b / 2**20), ratio(a, b),
                 "≤ 0.25×", (ratio(a, b) or 9) <= 0.25, "MiB")
        ra, rb = (statistics.median(res["restart"][x]["ms"]) for x in SYSTEMS)
        headline(f"restart to serving, {zn:,} znodes", fmt_n(ra), fmt_n(rb), ratio(ra, rb), "< 1 s (Paddock)",
                 ra < 1000, "ms")
    fl = res.get("floor")
    single = med("paddock", "3 voters single-client set", p50)
    single_zk = med("zookeeper", "3 voters single-client set", p50)
    out.append("### Against the targets\n")
    out.append("| what | Paddock | ZooKeeper | Paddock / ZooKeeper | target | |")
    out.append("|---|---|---|---|---|---|")
    out += rows
    if fl and single:
        floor = fl["commit_floor_ms"]
        out.append(f"\nSingle-client commit latency, 3 voters (one session, one request at a time, to the leader): "
                   f"Paddock p50 {fmt_ms(single)} ms, ZooKeeper {fmt_ms(single_zk)} ms. The floor measured in the "
                   f"same run (`paddock bench floor`): fdatasync of a 4 KiB overwrite in a preallocated file "
                   f"{fl['fdatasync_ms']['p50']:.3f} ms + 2 × loopback round trip {fl['loopback_rtt_ms']['p50']:.3f} ms "
                   f"= {floor:.3f} ms. Paddock / floor = **{single / floor:.2f}×** (target ≤ 1.5×), "
                   f"ZooKeeper / floor = {single_zk / floor:.2f}×.\n")

    # Every workload.
    out.append("### Every workload\n")
    out.append("| workload | system | ops/s (median; min–max) | p50 ms | p99 ms | p99.9 ms | server CPU s / 1000 ops | RSS MiB (largest server) |")
    out.append("|---|---|---|---|---|---|---|---|")
    for w in WORKLOAD_ORDER:
        for system in SYSTEMS:
            rs = by.get((system, w))
            if not rs:
                continue
            ts = [tput(r) for r in rs]
            rss = med(system, w, lambda r: max((b or 0) for b in r["cpu"]["server_rss_bytes"]) / 2**20)
            out.append(f"| {w} | {LABEL[system]} | {fmt_n(statistics.median(ts))} ({fmt_n(min(ts))}–{fmt_n(max(ts))}) "
                       f"| {fmt_ms(med(system, w, p50))} | {fmt_ms(med(system, w, p99))} "
                       f"| {fmt_ms(med(system, w, lambda r: r['latency_ms']['p99_9']))} "
                       f"| {med(system, w, lambda r: r['cpu']['server_cpu_s_per_1000_ops']):.3f} | {fmt_n(rss)} |")
    out.append("")
    if el:
        out.append("Election (3 voters; `paddock bench election`: SIGKILL the leader, then new sessions write through "
                   "the survivors; the killed member is restarted before the next trial):\n")
        out.append("| system | trials | kill → new leader, median | kill → first write, median | first write, each trial (ms) |")
        out.append("|---|---|---|---|---|")
        for system in SYSTEMS:
            e = el.get(system)
            if e:
                out.append(f"| {LABEL[system]} | {e['trials']} | {e['median_new_leader_ms']} ms | "
                           f"{e['median_first_write_ms']} ms | {', '.join(map(str, e['first_write_ms']))} |")
        out.append("")

    # Read scale-out: what a read costs an observer against a standalone server, per read served.
    lines = []
    for system in SYSTEMS:
        solo = med(system, "standalone get", lambda r: r["cpu"]["server_cpu_s_per_1000_ops"] / 1000)
        obs = med(system, "3 voters + 2 observers get", lambda r: statistics.mean(
            (r["cpu"]["server_cpu_s"][i] or 0) / (r["ops"] / 5) for i in (3, 4)))
        if solo and obs:
            lines.append(f"| {LABEL[system]} | {solo * 1e6:.1f} µs | {obs * 1e6:.1f} µs | {solo / obs:.2f} |")
    if lines:
        out.append("Read scale-out: server CPU per read on a standalone server and on each observer of 3 voters + "
                   "2 observers (reads spread evenly over the five). Given a core of its own, an observer adds "
                   "(standalone cost / observer cost) of a server's read capacity, less the CPU it spends applying "
                   "writes (ARCHITECTURE.md, *Scaling*):\n")
        out.append("| system | CPU per read, standalone | CPU per read, observer | read capacity an observer adds |")
        out.append("|---|---|---|---|")
        out += lines
        out.append("")

    # Capacity model.
    if res["plan"]:
        out.append("### Capacity model against measurement (`paddock bench plan`, calibrated in the same run)\n")
        out.append("| workload | predicted ops/s | measured Paddock ops/s | measured / predicted | predicted p99 ms | measured p99 ms |")
        out.append("|---|---|---|---|---|---|")
        for pr in res["plan"]:
            w = pr["workload"]
            mt, mp = med("paddock", w, tput), med("paddock", w, p99)
            out.append(f"| {w} | {fmt_n(pr['throughput_ops_s'])} | {fmt_n(mt)} | "
                       f"{fmt_ratio(ratio(mt, pr['throughput_ops_s']))} | {fmt_ms(pr['p99_ms'])} | {fmt_ms(mp)} |")
        out.append("")
    out.append("Charts: throughput of [one server](bench/results/plots/throughput-standalone.svg) and of "
               "[ensembles](bench/results/plots/throughput-ensemble.svg); latency by percentile for "
               + ", ".join(f"[{w}](bench/results/plots/latency-{slug(w)}.svg)" for w in Compare.PLOTTED) + ".\n")
    return "\n".join(out)


def rate_of(runs, w):
    for r in runs:
        if r["workload"] == w:
            return r.get("rate_target_ops_s")
    return None


def update_perf_md(tables):
    text = PERF_MD.read_text()
    if BEGIN not in text or END not in text:
        raise RuntimeError(f"PERF.md lacks the {BEGIN} / {END} markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    PERF_MD.write_text(f"{head}{BEGIN}\n{tables}\n{END}{tail}")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="one short run of each, 200k znodes (under 10 min)")
    ap.add_argument("--runs", type=int, help="runs per workload (default 3, quick 1)")
    ap.add_argument("--render-only", action="store_true", help="re-render tables and PERF.md from results.json")
    ap.add_argument("--plan-only", action="store_true",
                    help="recalibrate and redo the capacity model's predictions in results.json, then re-render")
    args = ap.parse_args()
    if args.plan_only:
        c = Compare(args)
        c.results = json.loads((RESULTS / "results.json").read_text())
        c.plan()
        (RESULTS / "results.json").write_text(json.dumps(c.results, indent=1))
        args.render_only = True
    if args.render_only:
        tables = render(json.loads((RESULTS / "results.json").read_text()))
        (RESULTS / "tables.md").write_text(tables)
        update_perf_md(tables)
        return
    c = Compare(args)
    try:
        c.run()
    finally:
        subprocess.run(["pkill", "-9", "-f", str(c.work)])


if __name__ == "__main__":
    main()
