#!/usr/bin/env bash
# Install Debian packages the tests or benchmarks need, when their command is missing.
# Usage: scripts/apt_install.sh COMMAND:PACKAGE [COMMAND:PACKAGE ...]
# An empty COMMAND (":PACKAGE") installs PACKAGE unconditionally (the caller has checked).
set -euo pipefail
missing=()
for pair in "$@"; do
  cmd=${pair%%:*}
  if [[ -z $cmd ]] || ! command -v "$cmd" >/dev/null 2>&1; then missing+=("${pair#*:}"); fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
echo "installing ${missing[*]} (apt-get)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
