#!/usr/bin/env bash
# Paddock end-to-end suite (Python + kazoo).
#
#   tests/python/run.sh [pytest args...]
#
# Target server:
#   PADDOCK_TARGET=zookeeper  Apache ZooKeeper 3.8 via scripts/zookeeper-run
#   (default)                 Paddock: $PADDOCK_BIN, default target/release/paddock
#
# Creates $REPO/.venv on first use and installs kazoo + pytest into it.
# Exits with pytest's status (non-zero when any test fails).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VENV=$REPO/.venv
KAZOO_REQ="kazoo==2.11.0"
PYTEST_REQ="pytest>=7,<9"

die() {
    echo "tests/python/run.sh: ERROR: $*" >&2
    exit 1
}

have_python() { command -v python3 >/dev/null 2>&1; }

apt_install() {
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "tests/python/run.sh: installing $* with apt-get" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2 ||
            { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2; } ||
            true
    fi
}

if ! have_python; then
    apt_install python3 python3-venv python3-pip
    have_python || die "python3 is not available${CI:+ (CI=$CI)}; cannot run the Python e2e suite"
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    rm -rf "$VENV"
    if ! python3 -m venv "$VENV" >&2; then
        rm -rf "$VENV"
        apt_install python3-venv python3-pip
        python3 -m venv "$VENV" >&2 || { rm -rf "$VENV"; die "python3 -m venv failed (is python3-venv installed?)"; }
    fi
fi
PY=$VENV/bin/python

if ! "$PY" -c 'import kazoo, pytest' >/dev/null 2>&1; then
    "$PY" -m pip --version >/dev/null 2>&1 || "$PY" -m ensurepip --upgrade >/dev/null 2>&1 ||
        die "pip is not available in $VENV"
    "$PY" -m pip install -q --disable-pip-version-check "$KAZOO_REQ" "$PYTEST_REQ" ||
        die "pip install of kazoo/pytest failed"
    "$PY" -c 'import kazoo, pytest' || die "kazoo/pytest still not importable after install"
fi

cd "$REPO"
exec "$PY" -m pytest -q -p no:cacheprovider tests/python "$@"
