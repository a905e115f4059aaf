#!/usr/bin/env bash
# Builds modelmux twice — warnings as errors, then with AddressSanitizer and
# UndefinedBehaviorSanitizer — and runs every test (unit, loopback integration, CLI, and the
# official SDK compatibility tests) in each build.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

run_build() {
  local dir=$1
  shift
  cmake -S . -B "$dir" -G Ninja -DMODELMUX_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
  (cd "$dir" && ctest --output-on-failure -j "$jobs")
}

echo "== release build (RelWithDebInfo, -Werror)"
run_build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
echo "== sanitizer build (ASan + UBSan)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  run_build build-asan -DCMAKE_BUILD_TYPE=Debug -DMODELMUX_SANITIZE=ON
