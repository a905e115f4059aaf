#!/usr/bin/env bash
# systemd-analyze verifies systemd/modelmux.service and scores its sandbox. verify checks that
# ExecStart= and ExecReload= exist, so it runs against a scratch root holding the built binary
# at /usr/bin/modelmux, /bin/kill and the system's own units. Usage: verify_unit.sh BINARY UNIT
set -euo pipefail
binary=$1
unit=$2
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/bin" "$root/bin" "$root/usr/lib/systemd" "$root/etc/systemd/system"
cp "$binary" "$root/usr/bin/modelmux"
cp /bin/kill "$root/bin/kill"
cp -r /usr/lib/systemd/system "$root/usr/lib/systemd/"
cp "$unit" "$root/etc/systemd/system/modelmux.service"
systemd-analyze verify --root="$root" /etc/systemd/system/modelmux.service
score=$(systemd-analyze security --offline=true "$root/etc/systemd/system/modelmux.service" |
  sed -n 's/.*Overall exposure level for modelmux.service: \([0-9.]*\).*/\1/p')
echo "systemd-analyze verify: ok; security exposure: $score"
# 0 is a fully locked-down unit, 10 an open one; the README quotes the score.
awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.0) }'
