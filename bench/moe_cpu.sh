#!/usr/bin/env bash
# MoE CPU throughput on real model shapes: synthesizes OLMoE-1B-7B and DeepSeek-V2-Lite at
# Q4_K_M and Q8_0 (random weights, exact shapes and header, see src/models/synth.h) into a temp
# dir, runs `moeinfer bench` on each, prints the tables, and deletes the files.
#
#   bench/moe_cpu.sh                      # full size: ~4 + 7 + 10 + 16 GiB written one at a time
#   LAYERS=4 bench/moe_cpu.sh             # smaller files (fewer layers) where disk/RAM is short
#   MOEINFER=build/moeinfer P=128 N=32 R=3 T=2 bench/moe_cpu.sh
#
# Env: MOEINFER (binary, default build/moeinfer), PRESETS, TYPES, LAYERS (default: all),
#      P (prompt lengths, default 128), N (generation lengths, default 32), R (reps, default 3),
#      T (threads, default: all cores), TMPDIR (where the files go), JSON=1 (JSON output).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${MOEINFER:-$here/build/moeinfer}
presets=${PRESETS:-"olmoe-1b-7b deepseek-v2-lite"}
types=${TYPES:-"q4_k_m q8_0"}
P=${P:-128} N=${N:-32} R=${R:-3} T=${T:-$(nproc)}
[ -x "$bin" ] || { echo "error: $bin not found (build first or set MOEINFER)" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/moe_cpu.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(uname -m), $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p')"
df -h "$tmp" | tail -1 | awk '{print "# disk free in " $6 ": " $4}'
for preset in $presets; do
    for type in $types; do
        f=$tmp/$preset-$type.gguf
        "$bin" synth --like "$preset" --type "$type" -o "$f" ${LAYERS:+--layers $LAYERS} -q >&2
        if [ "${JSON:-0}" = 1 ]; then
            "$bin" bench -m "$f" -p "$P" -n "$N" -r "$R" -t "$T" --json 2>/dev/null
        else
            "$bin" bench -m "$f" -p "$P" -n "$N" -r "$R" -t "$T" 2>/dev/null
        fi
        rm -f "$f"
    done
done
