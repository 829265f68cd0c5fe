#!/usr/bin/env bash
# Smoke test of Apache Curator (Debian's libcurator-*-java 5.x, ZooKeeper 3.8
# Java client) against a running server.
#
#   tests/clients/curator/run.sh HOST:PORT
#
# Compiles CuratorSmoke.java with the machine's javac against the jars in
# /usr/share/java into a temporary directory, then runs it.
#
# Env: CLIENT_TIMEOUT  seconds for any single wait in the test (default 20)
#      CI=true         missing packages/compiler (after trying apt-get) are a
#                      failure; otherwise the test is skipped with exit 77.
#      CURATOR_LOG     slf4j-simple log level for the client libraries
#                      (default: warn, but error for ZooKeeper's ClientCnxn,
#                      which warns with stack traces about the test's own
#                      deliberate socket drop and about every close; try
#                      CURATOR_LOG=debug to see every packet)
# Exit: 0 pass, 1 fail, 2 usage, 77 skipped (not under CI).
set -uo pipefail

HOSTPORT=${1:-}
if [[ -z "$HOSTPORT" || "$HOSTPORT" != *:* ]]; then
    echo "usage: $0 HOST:PORT" >&2
    exit 2
fi
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TIMEOUT=${CLIENT_TIMEOUT:-20}
TAG="curator"
J=/usr/share/java
# compile/run classpath: the Debian jars' manifests pull in the rest
JARS=(curator-recipes curator-framework curator-client zookeeper zookeeper-jute
      guava slf4j-api slf4j-simple)
PKGS=(libcurator-recipes-java libcurator-framework-java libcurator-client-java
      libzookeeper-java libguava-java libslf4j-java)

say() { printf '%s: %s\n' "$TAG" "$*"; }

missing() {
    local j
    command -v javac >/dev/null || echo "javac"
    command -v java >/dev/null || echo "java"
    for j in "${JARS[@]}"; do [[ -r "$J/$j.jar" ]] || echo "$J/$j.jar"; done
}

if [[ -n "$(missing)" ]]; then
    say "missing: $(missing | tr '\n' ' ')- installing with apt-get"
    if command -v apt-get >/dev/null; then
        SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo -n"
        export DEBIAN_FRONTEND=noninteractive
        want=("${PKGS[@]}")
        command -v javac >/dev/null || want+=(default-jdk-headless)
        $SUDO apt-get install -y -q --no-install-recommends "${want[@]}" >/dev/null 2>&1 ||
            { $SUDO apt-get update -q >/dev/null 2>&1 &&
              $SUDO apt-get install -y -q --no-install-recommends "${want[@]}" >/dev/null 2>&1; }
    fi
    if [[ -n "$(missing)" ]]; then
        if [[ "${CI:-}" == "true" ]]; then
            say "FAIL: still missing after apt-get: $(missing | tr '\n' ' ')"
            exit 1
        fi
        say "SKIP: missing $(missing | tr '\n' ' ')"
        exit 77
    fi
fi

CP=$(printf "$J/%s.jar:" "${JARS[@]}")
CP=${CP%:}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/paddock-curator-smoke.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

t0=$(date +%s%3N)
if ! javac -nowarn -encoding UTF-8 -d "$WORK" -cp "$CP" "$HERE/CuratorSmoke.java" >"$WORK/javac.log" 2>&1; then
    cat "$WORK/javac.log" >&2
    say "FAIL: javac failed"
    exit 1
fi
say "compiled CuratorSmoke.java with $(javac -version 2>&1) ($(( $(date +%s%3N) - t0 )) ms)"

# Outer guard in case the JVM itself wedges; the program has its own watchdog.
CLIENT_TIMEOUT=$TIMEOUT timeout -k 5 $(( TIMEOUT * 10 + 60 )) \
    java -Xss512k -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
        -Dorg.slf4j.simpleLogger.defaultLogLevel="${CURATOR_LOG:-warn}" \
        -Dorg.slf4j.simpleLogger.log.org.apache.zookeeper.ClientCnxn="${CURATOR_LOG:-error}" \
        -Dorg.slf4j.simpleLogger.showDateTime=true \
        -Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS \
        -Dzookeeper.jmx.log4j.disable=true \
        -cp "$WORK:$CP" CuratorSmoke "$HOSTPORT"
rc=$?
if [[ $rc -eq 124 || $rc -eq 137 ]]; then
    say "FAIL: killed by the outer timeout"
    exit 1
fi
[[ $rc -eq 0 ]] || exit 1
exit 0
