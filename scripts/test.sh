#!/usr/bin/env bash
# Builds modelmux three times — warnings as errors, with AddressSanitizer and
# UndefinedBehaviorSanitizer, and with ThreadSanitizer — and runs every test (unit, loopback
# integration, CLI, the official SDK compatibility tests, the status page in a browser, the
# framing test against nginx) in each build, and a chaos soak of CHAOS_MINUTES (default 2; 0
# skips it) on the release build. Then runs each fuzz target for FUZZ_SECONDS (default 60; 0
# skips them).
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
if [ "${CHAOS_MINUTES:-2}" != 0 ]; then
  echo "== chaos soak on the release build, ${CHAOS_MINUTES:-2} minutes (bench/chaos.sh)"
  bench/chaos.sh --build build --minutes "${CHAOS_MINUTES:-2}" --out build/chaos.md
fi
echo "== sanitizer build (ASan + UBSan)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  run_build build-asan -DCMAKE_BUILD_TYPE=Debug -DMODELMUX_SANITIZE=ON
echo "== sanitizer build (TSan, the whole suite; scripts/tsan.supp says what is suppressed and why)"
TSAN_OPTIONS="suppressions=$PWD/scripts/tsan.supp halt_on_error=1" \
  run_build build-tsan -DCMAKE_BUILD_TYPE=Debug -DMODELMUX_SANITIZE=thread
if [ "${FUZZ_SECONDS:-60}" != 0 ]; then
  echo "== fuzz targets (libFuzzer, clang, ASan + UBSan), ${FUZZ_SECONDS:-60} s each"
  scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
fi
