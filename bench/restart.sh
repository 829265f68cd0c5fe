#!/usr/bin/env bash
# Restart-to-serving time and resident memory of Paddock holding N znodes of B bytes (PERF.md).
# Seeds a dataDir with one snapshot through the engine's own writer, then times `paddock server`
# from exec to the first answered request (recovery runs before the first accept), and reads its
# resident set size once it serves. Runs R times and prints each run and the median.
#
#   bench/restart.sh [ZNODES=1000000] [VALUE_BYTES=100] [RUNS=5]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
znodes=${1:-1000000}
value_bytes=${2:-100}
runs=${3:-5}
cd "$repo"
cargo build --release -q -p paddock-tools -p paddock-bench --examples
dir=$(mktemp -d)
trap 'kill -9 $pid 2>/dev/null; rm -rf "$dir"' EXIT
pid=0
target/release/examples/seed_snapshot "$dir/data" "$znodes" "$value_bytes"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$dir/zoo.cfg" <<CFG
tickTime=2000
dataDir=$dir/data
clientPort=$port
clientPortAddress=127.0.0.1
4lw.commands.whitelist=*
admin.enableServer=false
CFG
times=()
for run in $(seq "$runs"); do
    start=$(date +%s%N)
    target/release/paddock server --cores 2 "$dir/zoo.cfg" 2>"$dir/server.log" &
    pid=$!
    until [[ "$(printf ruok | nc -q1 127.0.0.1 "$port" 2>/dev/null)" == imok ]]; do
        kill -0 $pid 2>/dev/null || { cat "$dir/server.log"; exit 1; }
    done
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    rss_kb=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
    count=$(printf mntr | nc -q1 127.0.0.1 "$port" | awk '/zk_znode_count/ {print $2}')
    echo "run $run: serving after ${ms} ms, RSS $((rss_kb / 1024)) MiB, zk_znode_count $count, $(( rss_kb * 1024 / count )) bytes/znode"
    times+=("$ms")
    kill -9 $pid; wait $pid 2>/dev/null || true
done
median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "median restart-to-serving: ${median} ms over $runs runs ($znodes znodes of $value_bytes bytes)"
