#!/usr/bin/env bash
# The soak in one command on a Debian 12 machine: installs the build tools, builds modelmux and
# the bench mock upstream (release), and runs bench/soak.py (10 minutes unless told otherwise).
# Usage: bench/soak.sh [--seconds N] [--clients N] [--fast]
set -euo pipefail
cd "$(dirname "$0")/.."
bench/build.sh
mkdir -p bench/results
exec /usr/bin/python3 bench/soak.py build-bench --out "bench/results/soak-$(date -u +%Y-%m-%d).md" "$@"
