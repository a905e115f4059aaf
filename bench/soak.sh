#!/usr/bin/env bash
# The soak in one command on a Debian 12 machine: installs the build tools, builds modelmux and
# the bench mock upstream (release), and runs bench/soak.py (10 minutes unless told otherwise).
# Usage: bench/soak.sh [--seconds N] [--clients N]
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
  libssl-dev libconcurrentqueue-dev doctest-dev python3 procps >/dev/null
cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
cmake --build build-bench
mkdir -p bench/results
exec /usr/bin/python3 bench/soak.py build-bench --out "bench/results/soak-$(date -u +%Y-%m-%d).md" "$@"
