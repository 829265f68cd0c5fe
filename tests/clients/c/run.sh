#!/usr/bin/env bash
# Smoke test of the ZooKeeper C client (Debian's `cli_mt` shell, package
# zookeeper-bin) against a running server.
#
#   tests/clients/c/run.sh HOST:PORT
#
# cli_mt reads commands from stdin and answers asynchronously on stderr, so we
# feed it through a FIFO, one command at a time, and after each command poll
# its stderr (only the part written since the command was sent) for the
# completion line of that command, with a deadline.  Every answer is then
# checked against what real ZooKeeper 3.8 prints.
#
# Env: CLIENT_TIMEOUT  seconds to wait for any single answer (default 20)
#      CI=true         a missing cli_mt (after trying apt-get) is a failure;
#                      otherwise the test is skipped with exit code 77.
# Exit: 0 pass, 1 fail, 2 usage, 77 skipped (not under CI).
set -uo pipefail

HOSTPORT=${1:-}
if [[ -z "$HOSTPORT" || "$HOSTPORT" != *:* ]]; then
    echo "usage: $0 HOST:PORT" >&2
    exit 2
fi
TIMEOUT=${CLIENT_TIMEOUT:-20}
TAG="c-client"

say() { printf '%s: %s\n' "$TAG" "$*"; }

find_cli() {
    local c
    for c in "$(command -v cli_mt 2>/dev/null)" /usr/lib/zookeeper/bin/cli_mt \
             /usr/bin/cli_mt /usr/sbin/cli_mt; do
        [[ -n "$c" && -x "$c" ]] && { echo "$c"; return 0; }
    done
    c=$(dpkg -L zookeeper-bin 2>/dev/null | grep '/cli_mt$' | head -n1)
    [[ -n "$c" && -x "$c" ]] && { echo "$c"; return 0; }
    return 1
}

CLI=$(find_cli)
if [[ -z "$CLI" ]]; then
    say "cli_mt not found; installing zookeeper-bin with apt-get"
    if command -v apt-get >/dev/null; then
        SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo -n"
        export DEBIAN_FRONTEND=noninteractive
        $SUDO apt-get install -y -q zookeeper-bin >/dev/null 2>&1 ||
            { $SUDO apt-get update -q >/dev/null 2>&1 &&
              $SUDO apt-get install -y -q zookeeper-bin >/dev/null 2>&1; }
    fi
    CLI=$(find_cli)
fi
if [[ -z "$CLI" ]]; then
    if [[ "${CI:-}" == "true" ]]; then
        say "FAIL: cli_mt (package zookeeper-bin) is not installed and could not be installed"
        exit 1
    fi
    say "SKIP: cli_mt (package zookeeper-bin) not available"
    exit 77
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/paddock-c-smoke.XXXXXX")
ERR="$WORK/stderr"
OUT="$WORK/stdout"
CLI_PID=""
cleanup() {
    exec 3>&- 2>/dev/null
    if [[ -n "$CLI_PID" ]] && kill -0 "$CLI_PID" 2>/dev/null; then
        kill "$CLI_PID" 2>/dev/null
        wait "$CLI_PID" 2>/dev/null
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
    say "FAIL: $*"
    echo "----- cli_mt stderr -----" >&2
    cat "$ERR" >&2 2>/dev/null
    echo "----- cli_mt stdout -----" >&2
    cat "$OUT" >&2 2>/dev/null
    echo "-------------------------" >&2
    say "FAIL: $*"
    exit 1
}

now_ms() { date +%s%3N; }

mkfifo "$WORK/in"
exec 3<>"$WORK/in"           # keep a writer open so cli_mt never sees EOF early
: >"$ERR"
T_START=$(now_ms)
"$CLI" -h "$HOSTPORT" <"$WORK/in" >"$OUT" 2>"$ERR" &
CLI_PID=$!

# --- helpers -------------------------------------------------------------
OFF=0        # byte offset in $ERR where the current command's output starts
T_CMD=0

segment() { tail -c +"$((OFF + 1))" "$ERR" | grep -v '^Watcher '; }

# wait_re REGEX WHAT: wait until the current segment has a line matching REGEX.
wait_re() {
    local re=$1 what=$2 deadline=$(( $(now_ms) + TIMEOUT * 1000 ))
    while :; do
        tail -c +"$((OFF + 1))" "$ERR" | grep -Eq -- "$re" && return 0
        kill -0 "$CLI_PID" 2>/dev/null || fail "cli_mt exited while waiting for $what"
        (( $(now_ms) > deadline )) && fail "no answer within ${TIMEOUT}s: $what (waited for /$re/)"
        sleep 0.02
    done
}

send() {
    OFF=$(stat -c %s "$ERR")
    T_CMD=$(now_ms)
    printf '%s\n' "$1" >&3
}

# Lines of the current segment after the first line matching REGEX.
after() { segment | awk -v re="$1" 'found { print } $0 ~ re && !found { found = 1 }'; }

# run_cmd KIND CMDLINE RCPREFIX EXPECTED_RC
# Sends CMDLINE, waits for "RCPREFIX: rc = N" and for the rest of the answer,
# checks N == EXPECTED_RC.  Leaves the answer body (lines after the rc line) in BODY.
BODY=""
run_cmd() {
    local kind=$1 cmd=$2 prefix=$3 want=$4 rcre rc
    rcre="^$(printf '%s' "$prefix" | sed 's/[][\.*^$+?(){}|]/\\&/g'): rc = -?[0-9]+"
    send "$cmd"
    wait_re "$rcre" "'$cmd'"
    rc=$(segment | grep -Em1 -- "$rcre" | sed -E 's/.*: rc = (-?[0-9]+).*/\1/')
    [[ "$rc" == "$want" ]] || { sleep 0.2; fail "'$cmd' answered rc=$rc, expected rc=$want"; }
    # wait for the tail of the answer (the client prints it in several writes)
    case "$kind" in
        create) [[ "$rc" == 0 ]] && wait_until_after "$rcre" $'^\tname = ' "'$cmd' name" ;;
        get|set) if [[ "$rc" == 0 ]]; then wait_until_after "$rcre" $'^\tephemeralOwner = ' "'$cmd' stat"
                 else wait_until_after "$rcre" '^null$' "'$cmd' stat"; fi ;;
        ls) wait_until_after "$rcre" '^time = [0-9-]+ msec$' "'$cmd' listing" ;;
        delete) ;;
    esac
    BODY=$(after "$rcre")
    say "$(printf '%-36s' "$cmd") rc=$rc ok ($(( $(now_ms) - T_CMD )) ms)"
}

wait_until_after() {
    local rcre=$1 re=$2 what=$3 deadline=$(( $(now_ms) + TIMEOUT * 1000 ))
    while :; do
        after "$rcre" | grep -Eq -- "$re" && return 0
        (( $(now_ms) > deadline )) && fail "incomplete answer within ${TIMEOUT}s: $what"
        sleep 0.02
    done
}

body_has() {   # body_has LITERAL_LINE WHAT
    printf '%s\n' "$BODY" | grep -qxF -- "$1" || fail "$2: expected line '$1' in answer:
$BODY"
}

# wait_watch TYPE PATH: the server must deliver this watch event.
wait_watch() {
    local re="^Watcher $1 state = CONNECTED_STATE for path $2\$" deadline=$(( $(now_ms) + TIMEOUT * 1000 ))
    while :; do
        grep -Eq -- "$re" "$ERR" && { say "watch event $1 for $2 ok"; return 0; }
        (( $(now_ms) > deadline )) && fail "watch event $1 for $2 not delivered within ${TIMEOUT}s"
        sleep 0.02
    done
}

# --- the test ------------------------------------------------------------
P="/paddock-c-smoke-$$-$RANDOM"
say "cli_mt=$CLI server=$HOSTPORT base=$P"

OFF=0
wait_re '^Watcher SESSION_EVENT state = CONNECTED_STATE$' "session to connect"
wait_re '^Got a new session id: 0x[0-9a-f]+$' "session id"
SID=$(grep -Em1 '^Got a new session id: ' "$ERR" | sed 's/.*: //')
[[ "$SID" != "0x0" ]] || fail "server gave session id 0"
say "connected, session $SID ($(( $(now_ms) - T_START )) ms)"

run_cmd create "create $P" "[$P]" 0
body_has $'\t'"name = $P" "create $P"

run_cmd create "create $P/child" "[$P/child]" 0
body_has $'\t'"name = $P/child" "create $P/child"

run_cmd create "create $P/child" "[$P/child]" -110          # ZNODEEXISTS

run_cmd get "get $P/child" "$P/child" 0                    # also sets a data watch
body_has " value_len = 3" "get $P/child"
body_has "new" "get $P/child (data written by cli_mt's create)"
body_has $'\t'"version=0"$'\t'"aversion=0" "get $P/child"
body_has $'\t'"ephemeralOwner = 0" "get $P/child"
czxid=$(printf '%s\n' "$BODY" | sed -nE 's/^\tczxid=([0-9a-f]+)$/\1/p')
mzxid=$(printf '%s\n' "$BODY" | sed -nE 's/^\tmzxid=([0-9a-f]+)$/\1/p')
[[ -n "$czxid" && "$czxid" == "$mzxid" && "$czxid" != 0 ]] ||
    fail "get $P/child: expected czxid == mzxid != 0, got czxid=$czxid mzxid=$mzxid"

run_cmd set "set $P/child hello" "$P/child" 0
body_has $'\t'"version=1"$'\t'"aversion=0" "set $P/child"
wait_watch CHANGED_EVENT "$P/child"

run_cmd get "get $P/child" "$P/child" 0
body_has " value_len = 5" "get $P/child after set"
body_has "hello" "get $P/child after set"
body_has $'\t'"version=1"$'\t'"aversion=0" "get $P/child after set"
mzxid2=$(printf '%s\n' "$BODY" | sed -nE 's/^\tmzxid=([0-9a-f]+)$/\1/p')
(( 16#$mzxid2 > 16#$mzxid )) || fail "mzxid did not grow after set ($mzxid -> $mzxid2)"

# sequential node: the suffix is the parent's cversion (1 child created so far)
run_cmd create "create +s $P/seq-" "[$P/seq-]" 0
body_has $'\t'"name = $P/seq-0000000001" "create +s $P/seq-"

run_cmd ls "ls $P" "$P" 0                                   # also sets a child watch
kids=$(printf '%s\n' "$BODY" | grep -E $'^\t[^\t=]+$' | sed 's/^\t//' | sort | tr '\n' ' ')
[[ "$kids" == "child seq-0000000001 " ]] || fail "ls $P: expected children 'child seq-0000000001', got '$kids'"

run_cmd ls "ls /" "/" 0
printf '%s\n' "$BODY" | grep -qxF $'\t'"${P#/}" || fail "ls /: $P not listed:
$BODY"
printf '%s\n' "$BODY" | grep -qxF $'\t'"zookeeper" || fail "ls /: /zookeeper not listed:
$BODY"

run_cmd delete "delete $P/child" "$P/child" 0
wait_watch DELETED_EVENT "$P/child"
wait_watch CHILD_EVENT "$P"

run_cmd get "get $P/child" "$P/child" -101                # ZNONODE

# ZooKeeper takes the sequence suffix from the parent's cversion, which
# creates bump and deletes do not: 2 creates so far -> 0000000002
run_cmd create "create +s $P/seq-" "[$P/seq-]" 0
body_has $'\t'"name = $P/seq-0000000002" "create +s $P/seq- after a delete"
run_cmd delete "delete $P/seq-0000000002" "$P/seq-0000000002" 0
run_cmd delete "delete $P/child" "$P/child" -101
run_cmd delete "delete $P" "$P" -111                      # ZNOTEMPTY
run_cmd delete "delete $P/seq-0000000001" "$P/seq-0000000001" 0
run_cmd delete "delete $P" "$P" 0
run_cmd ls "ls $P" "$P" -101

OFF=$(stat -c %s "$ERR")
printf 'quit\n' >&3
deadline=$(( $(now_ms) + TIMEOUT * 1000 ))
while kill -0 "$CLI_PID" 2>/dev/null; do
    (( $(now_ms) > deadline )) && fail "cli_mt did not exit within ${TIMEOUT}s after quit"
    sleep 0.02
done
wait "$CLI_PID"; rc=$?
CLI_PID=""
[[ $rc -eq 0 ]] || fail "cli_mt exited with status $rc"
grep -qx 'Quitting...' "$ERR" || fail "cli_mt did not acknowledge quit"
if grep -Eq '^Watcher SESSION_EVENT state = (EXPIRED_SESSION|AUTH_FAILED|CONNECTING)_STATE' "$ERR"; then
    fail "session was lost during the test"
fi
say "PASS ($(( $(now_ms) - T_START )) ms total)"
