#!/usr/bin/env bash
# The chaos soak in one command on a Debian 12 machine: installs what it needs from Debian
# (python3-aiohttp, redis-server; with no --build, also the build tools), builds modelmux
# (Release, in build-bench/) unless --build names a build already made, and runs
# bench/chaos.py: open-loop load at 80 % of the measured throughput while upstreams, Redis and
# clients fail, then the checks and a verdict (exit 1 when red). The report goes to
# bench/results/chaos-DATE.md unless --out says otherwise.
# Usage: bench/chaos.sh [--minutes N] [--concurrency C] [--build DIR] [--out FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
build=""
out="bench/results/chaos-$(date -u +%Y-%m-%d).md"
args=()
while [ $# -gt 0 ]; do
  case $1 in
  --build) build=$2; shift 2 ;;
  --out) out=$2; shift 2 ;;
  *) args+=("$1"); shift ;;
  esac
done
if [ -z "$build" ]; then
  bench/build.sh python3-aiohttp redis-server
  build=build-bench
else
  need=()
  /usr/bin/python3 -c "import aiohttp" 2>/dev/null || need+=(python3-aiohttp)
  command -v redis-server >/dev/null || need+=(redis-server)
  if [ "${#need[@]}" -gt 0 ]; then
    sudo=""
    if [ "$(id -u)" != 0 ]; then
      sudo=sudo
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
fi
mkdir -p "$(dirname "$out")"
exec /usr/bin/python3 bench/chaos.py "$build" --out "$out" "${args[@]}"
