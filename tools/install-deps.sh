#!/usr/bin/env bash
# Installs the Debian packages moeinfer builds with (run as root or with sudo).
# --test also installs what the test suite needs (chromium + python3 for the HTML render test,
# node + npm for the OpenAI-client API tests, both for the web page test, clang-14 + libFuzzer for
# tests/fuzz, Open MPI for expert parallelism and its mpirun tests).
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
PKGS=(cmake g++ make pkg-config libcli11-dev libfmt-dev nlohmann-json3-dev libpcre2-dev libgtest-dev
      libcpp-httplib-dev)
if [ "${1:-}" = "--test" ]; then PKGS+=(chromium python3 clang-14 libfuzzer-14-dev libopenmpi-dev openmpi-bin)
  command -v npm >/dev/null 2>&1 || PKGS+=(nodejs npm)
fi
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
