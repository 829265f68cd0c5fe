#!/usr/bin/env bash
# Run every real-client smoke test against a running server.
#
#   tests/clients/run-all.sh HOST:PORT
#
# Runs tests/clients/c/run.sh (ZooKeeper C client, cli_mt) and
# tests/clients/curator/run.sh (Apache Curator / ZooKeeper Java client) one
# after the other and exits non-zero if either fails.  A test that skips
# (exit 77: client not installable, only possible without CI=true) is counted
# as skipped; under CI=true a skip counts as a failure.
# Env: CLIENT_TIMEOUT (per-wait deadline, default 20 s), CI, CURATOR_LOG.
set -uo pipefail

HOSTPORT=${1:-}
if [[ -z "$HOSTPORT" || "$HOSTPORT" != *:* ]]; then
    echo "usage: $0 HOST:PORT" >&2
    exit 2
fi
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

passed=0 failed=0 skipped=0
failures=()
for t in c curator; do
    start=$(date +%s%3N)
    echo "=== client smoke test: $t ($HOSTPORT)"
    bash "$HERE/$t/run.sh" "$HOSTPORT"
    rc=$?
    took=$(( $(date +%s%3N) - start ))
    if [[ $rc -eq 0 ]]; then
        passed=$((passed + 1)); echo "=== $t: PASS (${took} ms)"
    elif [[ $rc -eq 77 && "${CI:-}" != "true" ]]; then
        skipped=$((skipped + 1)); echo "=== $t: SKIP (${took} ms)"
    else
        failed=$((failed + 1)); failures+=("$t"); echo "=== $t: FAIL, exit $rc (${took} ms)"
    fi
done

[[ $failed -eq 0 ]] || echo "failed client tests: ${failures[*]}"
echo "clients: $passed passed, $failed failed, $skipped skipped"
[[ $failed -eq 0 ]]
