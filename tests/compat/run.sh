#!/usr/bin/env bash
# Installs the official SDKs from npm into WORKDIR (once) and runs compat.mjs against the
# modelmux binary. Usage: run.sh MODELMUX_BINARY WORKDIR
set -euo pipefail
binary=$(realpath "$1")
workdir=$2
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$workdir"
cp "$here/package.json" "$here"/*.mjs "$here/../modelmux_daemon.mjs" "$workdir/"
cd "$workdir"
if [ ! -d node_modules/openai ] || [ ! -d node_modules/@anthropic-ai/sdk ]; then
  npm install --no-audit --no-fund --loglevel=error >/dev/null
fi
exec node compat.mjs "$binary"
