#!/bin/sh
# API tests of `moeinfer serve` with the official openai npm package (tests/api, node's built-in
# test runner). Usage: test_api.sh MOEINFER_BINARY API_DIR. Skipped (77) without node/npm, except
# in CI (CI=true), where that is a failure.
set -eu
bin=$1
dir=$2
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    if [ "${CI:-}" = "true" ]; then
        echo "error: node and npm are required in CI (tools/install-deps.sh --test)" >&2
        exit 1
    fi
    echo "node/npm not found: skipping the API tests" >&2
    exit 77
fi
cd "$dir"
if [ ! -d node_modules/openai ]; then
    npm ci --no-audit --no-fund
fi
export MOEINFER="$bin"
status=0
# One file at a time: each starts its own server, and the machine may have few cores.
for f in *.test.mjs; do
    echo "== $f"
    node --test "$f" || status=1
done
exit $status
