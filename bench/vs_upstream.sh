#!/usr/bin/env bash
# moeinfer vs the upstream engine (llama.cpp's llama-bench), side by side on the same files, one
# model at a time: each repetition runs both engines once (-r 1 each, after their own warm-up)
# and the order alternates between repetitions (ours first on even ones), so drift of the shared
# host hits both alike. Prints the issue #17 table: medians over the repetitions, ratios, and the
# share of the bandwidth bound `moeinfer bench` measured in the same process run as its speed.
#
#   bench/vs_upstream.sh /work/big/gptoss-mxfp4.gguf /work/big/olmoe-q8_0.gguf
#   PRESETS=olmoe-1b-7b TYPES="q4_k_m q8_0" bench/vs_upstream.sh   # synthesized (moe_cpu.sh's way)
#   UPSTREAM=../llama.cpp/build/bin P=128,512 N=32 R=5 T=2 bench/vs_upstream.sh model.gguf
#
# Env: UPSTREAM (folder holding llama-bench, default /work/shared/peers/llama.cpp), MOEINFER,
#      P (prompt lengths, comma list, default 128), N (generation length, default 32), R
#      (repetitions, default 3), T (threads, default 2), PRESETS/TYPES/LAYERS (synthesize into a
#      temp dir when no files are given; each file deleted after its run), OURS_ARGS /
#      UPSTREAM_ARGS (extra options), KEEP=DIR (keep the raw JSON of every run there).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${MOEINFER:-$here/build/moeinfer}
up=${UPSTREAM:-/work/shared/peers/llama.cpp}
P=${P:-128} N=${N:-32} R=${R:-3} T=${T:-2}
[ -x "$bin" ] || { echo "error: $bin not found (build first or set MOEINFER)" >&2; exit 1; }
[ -x "$up/llama-bench" ] || { echo "error: no llama-bench in $up (set UPSTREAM)" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vs_upstream.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
raw=${KEEP:-$tmp}
mkdir -p "$raw"

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p');" \
    "-p $P -n $N -t $T, $R alternating repetitions of -r 1 each; upstream: $up"

# One model: R repetitions, alternating which engine goes first; JSON lines per engine.
run_model() {
    local f=$1 name
    name=$(basename "$f" .gguf)
    : >"$raw/$name.ours.jsonl"
    : >"$raw/$name.upstream.jsonl"
    for ((rep = 0; rep < R; rep++)); do
        local order="ours upstream"
        ((rep % 2)) && order="upstream ours"
        for e in $order; do
            if [ "$e" = ours ]; then
                # shellcheck disable=SC2086
                "$bin" bench -m "$f" -p "$P" -n "$N" -r 1 -t "$T" --json ${OURS_ARGS:-} 2>/dev/null |
                    tr -d '\n' >>"$raw/$name.ours.jsonl"
            else
                # shellcheck disable=SC2086
                "$up/llama-bench" -m "$f" -p "$P" -n "$N" -r 1 -t "$T" -o json ${UPSTREAM_ARGS:-} \
                    2>/dev/null | tr -d '\n' >>"$raw/$name.upstream.jsonl"
            fi
            echo >>"$raw/$name.$e.jsonl"
        done
    done
    echo "$name $raw/$name.ours.jsonl $raw/$name.upstream.jsonl" >>"$tmp/models.txt"
}

if [ $# -gt 0 ]; then
    for f in "$@"; do
        [ -r "$f" ] || { echo "error: $f: cannot read" >&2; exit 1; }
        run_model "$f"
    done
else
    for preset in ${PRESETS:-olmoe-1b-7b}; do
        for type in ${TYPES:-q4_k_m}; do
            f=$tmp/$preset-$type.gguf
            "$bin" synth --like "$preset" --type "$type" -o "$f" ${LAYERS:+--layers $LAYERS} -q >&2
            run_model "$f"
            rm -f "$f"
        done
    done
fi
python3 "$here/bench/vs_upstream_table.py" "$tmp/models.txt" "$P" "$N"
