#!/usr/bin/env bash
# One command for the whole benchmark on a Debian 12 machine: installs nginx, wrk and the
# build tools from Debian, builds modelmux and the bench tools (release), and runs bench.py.
# Usage: bench/run.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
sudo=""
if [ "$(id -u)" != 0 ]; then
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends \
  cmake g++ ninja-build pkg-config libcpp-httplib-dev libsimdjson-dev libyaml-cpp-dev \
  libssl-dev libconcurrentqueue-dev doctest-dev nginx-light wrk python3 procps >/dev/null
cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
cmake --build build-bench
ulimit -n 65536 2>/dev/null || true
exec python3 bench/bench.py build-bench "$@"
