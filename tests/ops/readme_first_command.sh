#!/usr/bin/env bash
# Runs the README's first command as a fresh Debian 12 machine would, with apt-get, cmake and the
# daemon replaced by fakes that record their calls: as root with no sudo installed (a container,
# a new VM), and as an unprivileged user with sudo. Both must install the packages, build and
# serve. Usage: readme_first_command.sh README.md
set -euo pipefail
readme=$(realpath "$1")
command=$(awk '/^```sh$/ {inside=1; next} /^```$/ && inside {exit} inside {print}' "$readme")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"

make_fakes() { # make_fakes DIR WITH_SUDO
  local dir=$1
  mkdir -p "$dir"
  for tool in apt-get cmake; do
    printf '#!/bin/sh\necho "%s $*" >>"%s/calls"\n' "$tool" "$work" >"$dir/$tool"
  done
  if [ "$2" = yes ]; then
    printf '#!/bin/sh\necho "sudo $*" >>"%s/calls"\n' "$work" >"$dir/sudo"
  fi
  ln -s "$(command -v id)" "$dir/id"
  chmod 755 "$dir"/*
}
mkdir -p "$work/build"
printf '#!/bin/sh\necho "modelmux $*" >>"%s/calls"\n' "$work" >"$work/build/modelmux"
chmod 755 "$work/build/modelmux"

check() { # check LABEL EXPECTED_PREFIX
  grep -q "^$2apt-get update" "$work/calls" || { echo "$1: no '$2apt-get update'"; cat "$work/calls"; exit 1; }
  grep -q "^$2apt-get install -y cmake g++" "$work/calls" || { echo "$1: no install"; exit 1; }
  grep -q "^modelmux serve -c config.example.yaml" "$work/calls" || { echo "$1: no serve"; exit 1; }
  echo "ok - $1"
  rm -f "$work/calls"
}

# Root, no sudo on the machine.
make_fakes "$work/root-bin" no
(cd "$work" && PATH="$work/root-bin" /bin/sh -c "$command")
check "as root without sudo" ""

# A user with sudo.
make_fakes "$work/user-bin" yes
touch "$work/calls" && chmod 666 "$work/calls"
(cd "$work" && setpriv --reuid=65534 --regid=65534 --clear-groups \
  env PATH="$work/user-bin" /bin/sh -c "$command")
check "as a user with sudo" "sudo "
