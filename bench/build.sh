#!/usr/bin/env bash
# What every bench script needs first on a Debian 12 machine: the build tools and libraries from
# Debian, plus any extra packages named, and a Release build of modelmux and the bench tools in
# build-bench/. Usage: bench/build.sh [EXTRA_PACKAGE...]
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
  libssl-dev libconcurrentqueue-dev libboost1.81-dev libhiredis-dev doctest-dev python3 procps "$@" >/dev/null
cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
cmake --build build-bench
