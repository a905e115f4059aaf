#!/usr/bin/env bash
# Builds the libFuzzer targets with Debian's clang (ASan + UBSan) and runs each for SECONDS
# (default 60), two at a time, from seed corpora made of tests/testdata. Prints, per target,
# the executions, the coverage reached (libFuzzer's cov: edges and ft: features) and the corpus
# size. A crash fails the script and leaves its input in build-fuzz/findings/<target>/; turn it
# into a regression test (tests/fuzz_regressions_test.cc) once fixed.
# FUZZ_SEED (default 1) makes a CI run repeatable; FUZZ_SEED=0 lets libFuzzer pick one, for
# longer runs by hand.
# Usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
root=$PWD
build=$root/build-fuzz
CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMODELMUX_FUZZ=ON \
  -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" >/dev/null

# Seeds: a first byte chooses the direction (even: OpenAI, odd: Anthropic) where a target has one.
seed() { # seed TARGET NAME PREFIX_BYTES FILE
  mkdir -p "$build/corpus/$1"
  { printf "$3"; cat "$4"; } >"$build/corpus/$1/$2"
}
tx=tests/testdata/translation
for d in "$tx"/request_openai_to_anthropic_*; do
  seed request_body "$(basename "$d")" '\x00' "$d/input.json"
  seed translate_request "$(basename "$d")" '\x00' "$d/input.json"
done
for d in "$tx"/request_anthropic_to_openai_*; do
  seed request_body "$(basename "$d")" '\x01' "$d/input.json"
  seed translate_request "$(basename "$d")" '\x01' "$d/input.json"
done
for d in "$tx"/response_anthropic_to_openai_* "$tx"/error_anthropic_to_openai; do
  seed translate_response "$(basename "$d")" '\x00' "$d"/input.*
done
for d in "$tx"/response_openai_to_anthropic_* "$tx"/error_openai_to_anthropic; do
  seed translate_response "$(basename "$d")" '\x01' "$d"/input.*
done
for d in "$tx"/stream_*; do
  name=$(basename "$d")
  case $name in # bit 0: upstream, bit 1: client (0 OpenAI, 1 Anthropic); then the cut
  stream_openai_to_anthropic_*) kind='\x02' ;;
  stream_anthropic_to_openai_*) kind='\x01' ;;
  stream_anthropic_passthrough) kind='\x03' ;;
  *) kind='\x00' ;;
  esac
  seed translate_stream "$name" "$kind\\x40" "$d/input.sse"
  seed sse "$name" '\x33' "$d/input.sse"
done
# Responses: bit 0 the target (chat, Anthropic), bit 1 a chat answer; streams by upstream.
for d in "$tx"/request_responses_to_*; do
  kind='\x00'
  case $d in *_to_anthropic_*) kind='\x01' ;; esac
  seed responses_request "$(basename "$d")" "$kind" "$d/input.json"
done
for d in "$tx"/response_openai_to_*; do
  seed responses_request "$(basename "$d")" '\x02' "$d/input.json"
done
for d in "$tx"/response_anthropic_to_*; do
  seed responses_request "$(basename "$d")" '\x03' "$d/input.json"
done
for d in "$tx"/stream_*_to_responses_* "$tx"/stream_responses_passthrough; do
  name=$(basename "$d")
  case $name in
  stream_anthropic_*) kind='\x01' ;;
  stream_responses_*) kind='\x02' ;;
  *) kind='\x00' ;;
  esac
  seed responses_stream "$name" "$kind\\x40" "$d/input.sse"
done
for f in config.example.yaml tests/testdata/*.yaml; do
  seed config "$(basename "$f")" '' "$f"
done
mkdir -p "$build/corpus/metrics_labels"
printf 'custom:local-llama' >"$build/corpus/metrics_labels/plain"
printf 'a "quoted" \\ back\nslash' >"$build/corpus/metrics_labels/escapes"
printf '\xff\xfe not utf-8 \xc3' >"$build/corpus/metrics_labels/bytes"

mkdir -p "$build/corpus/probe_answers"
printf '%s' '{"capabilities":["completion","tools","vision","thinking"],"model_info":{"llama.context_length":131072}}' \
  >"$build/corpus/probe_answers/ollama_show"

# The cache: requests (for their canonical form) and whole answers (bit 2 clear), and streams
# (bit 2 set), by protocol in bits 0-1 (0 OpenAI chat, 1 Anthropic, 2 Responses).
for d in "$tx"/request_openai_to_anthropic_*; do
  seed cache_replay "$(basename "$d")" '\x00' "$d/input.json"
done
for d in "$tx"/response_openai_to_anthropic_*; do
  seed cache_replay "$(basename "$d")" '\x00' "$d/input.json"
done
for d in "$tx"/response_anthropic_to_openai_*; do
  seed cache_replay "$(basename "$d")" '\x01' "$d/input.json"
done
for d in "$tx"/stream_openai_to_anthropic_* "$tx"/stream_anthropic_to_openai_*; do
  name=$(basename "$d")
  case $name in
  stream_openai_*) kind='\x04' ;;
  *) kind='\x05' ;;
  esac
  seed cache_replay "$name" "$kind" "$d/input.sse"
done
for d in "$tx"/stream_responses_passthrough; do
  seed cache_replay "$(basename "$d")" '\x06' "$d/input.sse"
done

mkdir -p "$build/corpus/shared_values"
printf 'modelmux-answer-1\ncustom:local\n278 210 34 10 0 1\n{"id":"c","choices":[]}' \
  >"$build/corpus/shared_values/answer"
printf 'openai\tgpt-4o\t0123456789abcdef\t1796342460000' >"$build/corpus/shared_values/cooldown"

# Request heads, the cut at byte 0x20 of each: the framing classes of tests/framing_test.cc.
mkdir -p "$build/corpus/request_head"
printf ' POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}' \
  >"$build/corpus/request_head/content_length"
printf ' POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n' \
  >"$build/corpus/request_head/chunked"
printf ' POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\nHost: a\r\nHost: b\r\n\r\n' \
  >"$build/corpus/request_head/smuggle"
printf ' GET http://h/x HTTP/1.1\nHost: x\r\nX: a\r\n b\r\n\r\n' >"$build/corpus/request_head/lines"

targets=(request_body sse translate_request translate_response translate_stream config metrics_labels
  responses_request responses_stream probe_answers cache_replay shared_values request_head)
mkdir -p "$build/logs" "$build/findings"
run_one() {
  local t=$1
  mkdir -p "$build/findings/$t"
  "$build/fuzz/fuzz_$t" "$build/corpus/$t" -max_total_time="$seconds" -rss_limit_mb=2048 \
    -max_len=65536 -seed="${FUZZ_SEED:-1}" -print_final_stats=1 -artifact_prefix="$build/findings/$t/" \
    >"$build/logs/$t.log" 2>&1
}
failed=0
pids=()
for t in "${targets[@]}"; do
  run_one "$t" &
  pids+=("$!:$t")
  if [ "${#pids[@]}" -ge "$(nproc)" ]; then
    p=${pids[0]}
    wait "${p%%:*}" || { echo "fuzz_${p#*:} FOUND A CRASH: see $build/logs/${p#*:}.log"; failed=1; }
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do
  wait "${p%%:*}" || { echo "fuzz_${p#*:} FOUND A CRASH: see $build/logs/${p#*:}.log"; failed=1; }
done

printf '\n| target | seconds | executions | exec/s | cov (edges) | ft | corpus |\n|---|---|---|---|---|---|---|\n'
for t in "${targets[@]}"; do
  log=$build/logs/$t.log
  runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  rate=$(grep -o 'stat::average_exec_per_sec:[[:space:]]*[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(echo "$last" | grep -o 'cov: [0-9]*' | grep -o '[0-9]*' || echo "?")
  ft=$(echo "$last" | grep -o 'ft: [0-9]*' | grep -o '[0-9]*' || echo "?")
  corp=$(echo "$last" | grep -o 'corp: [0-9]*' | grep -o '[0-9]*' || echo "?")
  echo "| fuzz_$t | $seconds | $runs | $rate | $cov | $ft | $corp |"
done
if [ "$failed" != 0 ]; then
  grep -h -A3 "fuzz invariant broken\|ERROR: AddressSanitizer\|runtime error\|SUMMARY" "$build"/logs/*.log | head -40
  exit 1
fi
