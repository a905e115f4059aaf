#!/usr/bin/env bash
# Installs Claude Code and Codex CLI from npm (the versions package-lock.json pins) into WORKDIR
# once, then runs agents.mjs against the modelmux binary inside a network namespace that has only
# loopback: the agents and the daemon reach 127.0.0.1 and nothing else.
# Usage: run.sh MODELMUX_BINARY WORKDIR
set -euo pipefail
binary=$(realpath "$1")
workdir=$2
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$workdir/agents"
cp "$here/package.json" "$here/package-lock.json" "$here"/*.mjs "$workdir/agents/"
cp "$here/../modelmux_daemon.mjs" "$workdir/"
cd "$workdir/agents"
if [ ! -x node_modules/.bin/claude ] || [ ! -x node_modules/.bin/codex ]; then
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi
netns=(unshare --net)
if [ "$(id -u)" != 0 ]; then
  netns=(unshare --net --map-root-user)
fi
exec "${netns[@]}" bash -c 'ip link set lo up && exec node agents.mjs "$1"' agents "$binary"
