#!/usr/bin/env bash
# `moeinfer ... --expert-parallel` under mpirun (registered as ctest `ep_cli` in MOE_MPI builds):
# greedy text equals one process, the per-rank table and the routing-stats ranks, balanced
# placement from those stats, per-rank peak memory of a synthetic file, and bad input (more ranks
# than experts, a rank that cannot open the file, ranks with different files or options), each
# an `error:` line and a non-zero exit well within a time limit (no rank left hanging).
# Usage: test_ep_cli.sh MOEINFER FIXTURES MPIRUN
set -u
BIN=$1
FIX=$2/models
MPIRUN=$3
# CI runs as root, which Open MPI refuses unless told; containers often forbid its
# cross-memory-attach copies; 2 cores run up to 9 ranks.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
MPI=(timeout 120 "$MPIRUN" --bind-to none)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pass=0 fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }
check() {  # check NAME COMMAND...: passes when the command succeeds
  local name=$1; shift
  if "$@"; then ok "$name"; else bad "$name"; fi
}
# expect_error NAME PATTERN COMMAND...: non-zero exit (not a timeout) and PATTERN in stderr.
expect_error() {
  local name=$1 pat=$2; shift 2
  "$@" >"$work/out" 2>"$work/err"
  local rc=$?
  if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q -- "$pat" "$work/err"; then ok "$name"
  else bad "$name (exit $rc)"; sed 's/^/    /' "$work/err" | head -20; fi
}

# 1. Greedy generation: the same text as one process (mixtral: routed only; deepseek2: shared
# experts and a leading dense layer).
for m in mixtral deepseek2; do
  f=$FIX/$m-f32.gguf
  one=$("$BIN" run -m "$f" -p "Once upon a time" -n 16 --temp 0 -t 1 2>/dev/null)
  two=$("${MPI[@]}" -np 2 "$BIN" run -m "$f" -p "Once upon a time" -n 16 --temp 0 -t 1 \
        --expert-parallel --routing-stats "$work/$m-rs.json" 2>"$work/$m-run.err")
  check "$m: greedy run -np 2 equals one process" test -n "$one" -a "$one" == "$two"
  check "$m: rank table printed" grep -q "expert parallel: 2 ranks" "$work/$m-run.err"
done

# 1b. eval: the perplexity of one process, and the per-rank table; and with each combine path
# forced (--ep-combine), the same again (deepseek2: shared experts, so rank 0 sends every row).
printf 'Once upon a time there was a little girl who lived in a village near the forest. %s\n' \
  'Whenever she went out, the little girl wore a red riding cloak.' >"$work/text.txt"
ppl() { sed -n 's/^PPL = \([^ ]* +\/- [^ ]*\).*/\1/p'; }
for m in mixtral deepseek2; do
  f=$FIX/$m-f32.gguf
  one=$("$BIN" eval -m "$f" -f "$work/text.txt" -c 16 -t 1 2>/dev/null | ppl)
  for c in auto gather alltoallv; do
    two=$("${MPI[@]}" -np 3 "$BIN" eval -m "$f" -f "$work/text.txt" -c 16 -t 1 --expert-parallel \
          --ep-combine $c 2>"$work/eval.err" | ppl)
    # Shared experts are added in another order than one process's (a rounding, ~3e-7 in the
    # logits): the perplexities then agree within 1e-5, not digit for digit.
    check "$m: eval -np 3 --ep-combine $c: the perplexity of one process ($one vs $two)" \
      awk -v a="${one%% *}" -v b="${two%% *}" 'BEGIN { d = (a - b) / a; exit !(a > 0 && d < 1e-5 && d > -1e-5) }'
  done
  check "$m: eval prints the rank table" grep -q "expert parallel: 3 ranks" "$work/eval.err"
  check "$m: --ep-combine alltoallv combined every layer with alltoallv" \
    grep -q "combines: 0 gather, [1-9][0-9]* alltoallv" "$work/eval.err"
done

# 2. The routing-stats file says which rank holds each expert (contiguous: 0-3 on rank 0), and
# the HTML report shows it.
check "routing stats carry each expert's rank" python3 - "$work/mixtral-rs.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
ep = j["expert_parallel"]
assert ep["ranks"] == 2, ep
assert all(L["rank"] == [0, 0, 0, 0, 1, 1, 1, 1] for L in ep["layers"]), ep
PY

"$BIN" routing-report "$work/mixtral-rs.json" -o "$work/report.html" >/dev/null 2>&1
check "routing report shows the placement" grep -q "Expert placement over 2 ranks" "$work/report.html"

# 3. Balanced placement from those statistics: the same text again.
one=$("$BIN" run -m "$FIX/mixtral-f32.gguf" -p "Once upon a time" -n 16 --temp 0 -t 1 2>/dev/null)
bal=$("${MPI[@]}" -np 2 "$BIN" run -m "$FIX/mixtral-f32.gguf" -p "Once upon a time" -n 16 \
      --temp 0 -t 1 --expert-parallel --ep-placement balanced \
      --ep-routing-stats "$work/mixtral-rs.json" 2>/dev/null)
check "balanced placement: greedy run -np 2 equals one process" test "$one" == "$bal"

# 4. Bad input: clear errors, no hang.
L=(logits --tokens 1,2,3 -o "$work/l.f32" -t 1 --expert-parallel)
expect_error "more ranks than experts" "only 8 experts" \
  "${MPI[@]}" -np 9 "$BIN" "${L[@]}" -m "$FIX/mixtral-f32.gguf"
expect_error "a rank cannot open the file" "error: rank 1:.*missing.gguf" \
  "${MPI[@]}" -np 1 "$BIN" "${L[@]}" -m "$FIX/mixtral-f32.gguf" : \
  -np 1 "$BIN" "${L[@]}" -m "$work/missing.gguf"
expect_error "ranks with different files" "different model file or options" \
  "${MPI[@]}" -np 1 "$BIN" "${L[@]}" -m "$FIX/mixtral-f32.gguf" : \
  -np 1 "$BIN" "${L[@]}" -m "$FIX/qwen3moe-f32.gguf"
expect_error "ranks with different options" "different model file or options" \
  "${MPI[@]}" -np 1 "$BIN" "${L[@]}" -m "$FIX/mixtral-f32.gguf" : \
  -np 1 "$BIN" logits --tokens 1,2,4 -o "$work/l.f32" -t 1 --expert-parallel \
  -m "$FIX/mixtral-f32.gguf"
expect_error "balanced placement without statistics" "needs --ep-routing-stats" \
  "${MPI[@]}" -np 2 "$BIN" "${L[@]}" -m "$FIX/mixtral-f32.gguf" --ep-placement balanced
expect_error "a dense model" "no MoE layers" \
  "${MPI[@]}" -np 2 "$BIN" "${L[@]}" -m "$FIX/llama-f32.gguf"

# 5. Per-rank peak memory on a synthetic file: below non-expert + experts/N + 96 MiB (code,
# MPI's buffers, activations, KV at a 64-token context).
syn=$work/olmoe-syn.gguf
"$BIN" synth --like olmoe-1b-7b --type q4_0 --layers 2 -o "$syn" >/dev/null 2>&1 ||
  bad "synth failed"
read -r nonexp experts < <("$BIN" inspect "$syn" --json | python3 -c '
import json, sys
j = json.load(sys.stdin)
r = j["breakdown"]["routed_experts"]["bytes"]
print(j["weight_bytes"] - r, r)')
for np in 2 4; do
  "${MPI[@]}" -np $np "$BIN" bench -m "$syn" -p 8 -n 4 -r 1 -t 1 --bw-mib 8 --expert-parallel \
    >/dev/null 2>"$work/bench$np.err"
  check "bench -np $np: per-rank peak RSS below non-expert + experts/$np + 96 MiB" \
    python3 - "$work/bench$np.err" "$nonexp" "$experts" "$np" <<'PY'
import re, sys
err, nonexp, experts, n = open(sys.argv[1]).read(), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rows = re.findall(r"^\| (\d+) \|.*\| ([\d.]+) MiB \|$", err, re.M)
assert len(rows) == n, err
bound = nonexp + experts / n + 96 * 2**20
for rank, peak in rows:
    peak = float(peak) * 2**20
    print(f"    rank {rank}: peak {peak / 2**20:.1f} MiB, bound {bound / 2**20:.1f} MiB")
    assert peak < bound
PY
done

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
