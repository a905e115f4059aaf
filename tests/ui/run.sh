#!/usr/bin/env bash
# Installs playwright-core from npm into WORKDIR (once) and runs status_page.mjs against the
# modelmux binary with Debian's chromium. The screenshot lands in WORKDIR/status-page.png.
# Usage: run.sh MODELMUX_BINARY WORKDIR
set -euo pipefail
binary=$(realpath "$1")
mkdir -p "$2"
workdir=$(realpath "$2")
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -x /usr/bin/chromium ]; then
  echo "chromium is not installed (apt-get install -y chromium); .ci/run installs it" >&2
  exit 1
fi
mkdir -p "$workdir"
cp "$here/package.json" "$here"/*.mjs "$here/../modelmux_daemon.mjs" "$workdir/"
cd "$workdir"
if [ ! -d node_modules/playwright-core ]; then
  npm install --no-audit --no-fund --loglevel=error >/dev/null
fi
exec node status_page.mjs "$binary" "$workdir"
