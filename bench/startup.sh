#!/usr/bin/env bash
# Time from `make serve` on a fresh clone to the first /health 200, three ways:
#   1. fresh clone, no venv   (make creates the venv and pip-installs; pip's wheel cache is
#                               whatever this machine has — say so when you report the figure)
#   2. same clone, venv cached, fresh data dir  (embedded PostgreSQL runs initdb)
#   3. same clone, venv cached, data dir kept   (the everyday restart)
# Usage: bench/startup.sh [repo to clone, default: this checkout]
set -euo pipefail

repo=${1:-$(cd "$(dirname "$0")/.." && pwd)}
port=${BENCH_PORT:-$(python3 -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")}
work=$(mktemp -d /tmp/scribe-startup.XXXXXX)
trap 'cp "$work/serve.log" /tmp/scribe-startup-last.log 2>/dev/null; rm -rf "$work"' EXIT

git clone --quiet "$repo" "$work/clone"
cd "$work/clone"

time_make_serve() {  # $1 = label, $2 = data dir
    local start end pid
    start=$(date +%s.%N)
    SCRIBE_DATA_DIR="$2" PORT="$port" setsid make serve >"$work/serve.log" 2>&1 &
    pid=$!
    until curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1; do
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$work/serve.log"
            echo "make serve exited before /health answered" >&2
            exit 1
        fi
        sleep 0.05
    done
    end=$(date +%s.%N)
    printf '%-48s %6.2f s\n' "$1" "$(echo "$end - $start" | bc)"
    kill -TERM -- "-$pid"  # the whole group: make and scribe (which stops its PostgreSQL)
    wait "$pid" 2>/dev/null || true
    while kill -0 -- "-$pid" 2>/dev/null; do sleep 0.1; done  # scribe stopping PostgreSQL
}

time_make_serve "fresh clone, no venv -> /health 200:" "$work/data1"
time_make_serve "venv cached, fresh data dir -> /health 200:" "$work/data2"
time_make_serve "venv cached, data dir kept -> /health 200:" "$work/data2"
