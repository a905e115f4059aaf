#!/usr/bin/env bash
# Shared state measured: latency and CPU per request with redis: configured against without, and
# redis-server's own CPU. Writes bench/results/redis-DATE.md. Usage: bench/redis.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
bench/build.sh wrk redis-server
exec python3 bench/redis.py build-bench "bench/results/redis-$(date -u +%Y-%m-%d).md" "$@"
