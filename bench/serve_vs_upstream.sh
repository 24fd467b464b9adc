#!/usr/bin/env bash
# Serving side by side: llama-server and `moeinfer serve` on the same GGUF, the same thread count,
# loaded in turn by `moeinfer bench-serve` level by level (upstream then ours at each concurrency,
# identical prompts per level), so that machine noise hits both alike.
# Usage: bench/serve_vs_upstream.sh MODEL.gguf [OUT_DIR]
#   UPSTREAM=path/to/llama-server (default ../shared/peers/llama.cpp/llama-server), T=2, NP=16,
#   CTX=16384 (upstream's total; ours gets CTX/NP per sequence), LEVELS="1 4 8 16", RPC=3,
#   WORDS=48, MAXTOK=64, TMO=900 (seconds per bench-serve run)
set -euo pipefail
MODEL=$1 OUT=${2:-serve-vs-upstream}
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${MOEINFER:-$HERE/../build/moeinfer}
UPSTREAM=${UPSTREAM:-$HERE/../../shared/peers/llama.cpp/llama-server}
T=${T:-2} NP=${NP:-16} CTX=${CTX:-16384} LEVELS=${LEVELS:-"1 4 8 16"} RPC=${RPC:-3}
WORDS=${WORDS:-48} MAXTOK=${MAXTOK:-64} TMO=${TMO:-900}
UP_PORT=${UP_PORT:-18500} OURS_PORT=${OURS_PORT:-18501}
mkdir -p "$OUT"
"$UPSTREAM" -m "$MODEL" -t "$T" -np "$NP" -c "$CTX" --host 127.0.0.1 --port "$UP_PORT" \
    >"$OUT/upstream.log" 2>&1 &
UP=$!
"$BIN" serve -m "$MODEL" -t "$T" -np "$NP" -c $((CTX / NP)) --host 127.0.0.1 --port "$OURS_PORT" \
    >"$OUT/moeinfer.log" 2>&1 &
OURS=$!
trap 'kill $UP $OURS 2>/dev/null || true; wait' EXIT
for port in "$UP_PORT" "$OURS_PORT"; do
    for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 1; done
done
for c in $LEVELS; do
    for who in upstream moeinfer; do
        port=$UP_PORT; [ "$who" = moeinfer ] && port=$OURS_PORT
        echo "$(date +%T) $who concurrency $c" >&2
        timeout "$TMO" "$BIN" bench-serve --url "http://127.0.0.1:$port" --concurrency "$c" \
            --requests-per-client "$RPC" --prompt-tokens "$WORDS" --max-tokens "$MAXTOK" \
            --seed $((100 + c)) --json >"$OUT/$who-$c.json" || echo "$who $c: failed or timed out" >&2
    done
done
python3 - "$OUT" $LEVELS <<'PY'
import json, sys, os
out, levels = sys.argv[1], sys.argv[2:]
print("| concurrency | server | requests | failed | output tok/s | TTFT p50 | ITL p50 | ITL p99 |")
print("|---:|---|---:|---:|---:|---:|---:|---:|")
for c in levels:
    for who in ("upstream", "moeinfer"):
        p = os.path.join(out, f"{who}-{c}.json")
        try:
            L = json.load(open(p))["levels"][0]
        except Exception:
            print(f"| {c} | {who} | - | - | - | - | - | - |"); continue
        print(f"| {c} | {who} | {L['requests']} | {L['failures']} | {L['output_tok_s']:.1f} | "
              f"{L['ttft_p50_s']:.2f} s | {L['itl_p50_s']*1e3:.1f} ms | {L['itl_p99_s']*1e3:.0f} ms |")
PY
