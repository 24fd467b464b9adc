#!/usr/bin/env bash
# Installs the Debian packages moeinfer builds and tests with (run as root or with sudo).
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
PKGS=(cmake g++ make pkg-config libcli11-dev libfmt-dev nlohmann-json3-dev libpcre2-dev libgtest-dev
      chromium python3)  # chromium + python3: the HTML report render test
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
