#!/usr/bin/env bash
# One command for the whole benchmark on a Debian 12 machine: installs nginx, wrk and the
# build tools from Debian, builds modelmux and the bench tools (release), and runs bench.py.
# Usage: bench/run.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
bench/build.sh nginx-light wrk
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec python3 bench/bench.py build-bench "$@"
