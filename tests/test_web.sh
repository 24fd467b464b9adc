#!/bin/sh
# The web page of `moeinfer serve` in headless Chromium (Debian's chromium, driven over the
# DevTools protocol by the puppeteer-core npm package pinned in tests/web; it downloads no
# browser). Usage: test_web.sh MOEINFER_BINARY WEB_DIR WORK_DIR (screenshots land in WORK_DIR).
# Skipped (77) without chromium or node/npm, except in CI (CI=true), where that is a failure.
set -eu
bin=$1
dir=$2
work=$3
chrome=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$chrome" ] || ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    if [ "${CI:-}" = "true" ]; then
        echo "error: chromium, node and npm are required in CI (tools/install-deps.sh --test)" >&2
        exit 1
    fi
    echo "chromium or node/npm not found: skipping the web page test" >&2
    exit 77
fi
cd "$dir"
if [ ! -d node_modules/puppeteer-core ]; then
    PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund
fi
rm -rf "$work" && mkdir -p "$work"
export MOEINFER="$bin" CHROMIUM="$chrome" WEB_WORK="$work"
exec node --test page.test.mjs
