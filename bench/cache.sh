#!/usr/bin/env bash
# The response cache measured: CPU, throughput and latency of a hit against the same request
# proxied and sent direct, whole and streamed, and the memory an answer held costs. Writes
# bench/results/cache-DATE.md. Usage: bench/cache.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
bench/build.sh wrk
exec python3 bench/cache.py build-bench "bench/results/cache-$(date -u +%Y-%m-%d).md" "$@"
