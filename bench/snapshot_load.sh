#!/usr/bin/env bash
# Write latency with and without a snapshot in progress (PERF.md): a server holding N znodes
# takes a setData load twice, once with snapshots out of reach (snapCount huge) and once with a
# snapCount small enough that snapshots of the whole tree run back to back during the load.
#
#   bench/snapshot_load.sh [ZNODES=1000000] [SECONDS=10] [RUNS=3]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
znodes=${1:-1000000}
seconds=${2:-10}
runs=${3:-3}
cd "$repo"
cargo build --release -q -p paddock-tools -p paddock-bench --examples
dir=$(mktemp -d)
pid=0
trap 'kill -9 $pid 2>/dev/null; rm -rf "$dir"' EXIT
target/release/examples/seed_snapshot "$dir/seed" "$znodes" 100 >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
measure() { # $1: label, $2: snapCount
    for run in $(seq "$runs"); do
        rm -rf "$dir/data" && cp -r "$dir/seed" "$dir/data"
        printf 'tickTime=2000\ndataDir=%s/data\nclientPort=%s\nclientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\nadmin.enableServer=false\nsnapCount=%s\n' \
            "$dir" "$port" "$2" > "$dir/zoo.cfg"
        target/release/paddock server --cores 2 "$dir/zoo.cfg" 2>"$dir/server.log" &
        pid=$!
        until [[ "$(printf ruok | nc -q1 127.0.0.1 "$port" 2>/dev/null)" == imok ]]; do
            kill -0 $pid 2>/dev/null || { cat "$dir/server.log"; exit 1; }
        done
        json=$(target/release/paddock bench load --servers "127.0.0.1:$port" --sessions 8 --in-flight 4 \
            --ops-kind set --duration "$seconds" --warmup 1 --json 2>/dev/null)
        snaps=$(printf mntr | nc -q1 127.0.0.1 "$port" | awk '/paddock_snapshot_count/ {print $2}')
        python3 - "$json" "$1" "$run" "$snaps" <<'PY'
import json, sys
d = json.loads(sys.argv[1])
l = d["latency_ms"]
print("%s run %s: %.0f ops/s p50 %.3f p99 %.3f p99.9 %.3f max %.3f ms, snapshots %s"
      % (sys.argv[2], sys.argv[3], d["throughput_ops_s"], l["p50"], l["p99"], l["p99_9"], l["max"], sys.argv[4]))
PY
        kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null || true
    done
}
measure "no snapshot" 1000000000
measure "snapshots running" 100000
