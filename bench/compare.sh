#!/usr/bin/env bash
# Paddock and Apache ZooKeeper 3.8 side by side on this machine: installs Debian's zookeeper
# package (and jcmd's JDK tools if missing), builds Paddock, then runs bench/compare.py, which
# starts both systems in identical topologies, drives them with the same `paddock bench load`,
# and regenerates bench/results/ (raw runs, tables, SVG plots) and the generated part of PERF.md.
#
#   bench/compare.sh            # medians of 3 runs of every workload, 1M znodes (about 30 min)
#   bench/compare.sh --quick    # one short run of each, 200k znodes (under 10 min)
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -l unlimited 2>/dev/null || true
scripts/zookeeper-run --install
if ! command -v jcmd >/dev/null; then
    apt-get install -y -q openjdk-17-jdk-headless >&2
fi
cargo build --release -p paddock-tools
exec python3 bench/compare.py "$@"
