#!/usr/bin/env bash
# Renders the HTML reports (routing-report and compare) in headless Chromium and checks from the
# screenshots that the plots were drawn: many coloured (non-grey) pixels in several distinct colours.
# Usage: test_report_render.sh MOEINFER_BINARY FIXTURES_DIR SOURCE_DIR WORK_DIR
# Exit 77 (skipped) only when chromium is absent outside CI; in CI (CI=true) it must run.
set -euo pipefail
BIN=$1 FIX=$2 SRC=$3 WORK=$4

CHROME=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$CHROME" ]; then
    if [ "${CI:-}" = "true" ]; then
        echo "error: chromium is not installed but CI=true requires the render check (tools/install-deps.sh)"
        exit 1
    fi
    echo "SKIPPED: chromium is not installed (tools/install-deps.sh installs it); reports not rendered"
    exit 77
fi
command -v python3 >/dev/null || { echo "error: python3 is needed to read the screenshots"; exit 1; }

rm -rf "$WORK" && mkdir -p "$WORK"
cd "$WORK"

# Models: the bundled demo pair when present, else the reference fixtures.
MOE="$SRC/models/demo-moe.gguf" DENSE="$SRC/models/demo-dense.gguf"
[ -f "$MOE" ] || MOE="$FIX/models/mixtral-q8_0.gguf"
[ -f "$DENSE" ] || DENSE="$FIX/models/llama-q8_0.gguf"

"$BIN" run -m "$MOE" -p "And the LORD said unto Moses" -n 24 --temp 0 -t 2 \
    --routing-stats routing.json >run.log 2>&1 || { cat run.log; exit 1; }
"$BIN" routing-report routing.json -o routing.html
"$BIN" compare "$MOE" "$DENSE" -n 16 -t 2 --bench-tokens 64 --ppl-ctx 128 --ppl-windows 4 \
    --text "$SRC/data/eval-kjv.txt" --top-k-sweep --sweep-k 1,4,all --sweep-decode-tokens 8 \
    --domains --domain-ctx 128 --permutations 50 -o compare >compare.log 2>&1 ||
    { cat compare.log; exit 1; }
grep -q "Top-k sweep" compare.html || { echo "error: compare.html has no top-k sweep"; exit 1; }
grep -q "no routing to sweep" compare.html || { echo "error: compare.html: no dense-side note"; exit 1; }
# The sweep report alone (eval --top-k --html) and the routing report with a domains section.
"$BIN" eval -m "$MOE" -f "$SRC/data/eval-kjv.txt" -c 128 --chunks 4 -t 2 --top-k 1,4,all \
    --decode-tokens 8 --html sweep.html >sweep.log 2>&1 || { cat sweep.log; exit 1; }
"$BIN" routing-stats -m "$MOE" --domain argument="$SRC/data/domain-argument.txt" \
    --domain wisdom="$SRC/data/domain-wisdom.txt" --domain vision="$SRC/data/domain-vision.txt" \
    -c 128 --windows 4 --permutations 50 -t 2 -o domains.json >domains.log 2>&1 ||
    { cat domains.log; exit 1; }
"$BIN" routing-report domains.json -o domains.html
# The serving section (compare --serve): both models behind `moeinfer serve` under load.
"$BIN" compare "$MOE" "$DENSE" -n 8 -t 2 --bench-tokens 64 --ppl-ctx 128 --ppl-windows 2 \
    --text "$SRC/data/eval-kjv.txt" --serve --serve-concurrency 1,2,4 --serve-max-tokens 12 \
    -o serving >serving.log 2>&1 || { cat serving.log; exit 1; }
grep -q '^## Serving' serving.md || { echo "error: serving.md has no Serving section"; exit 1; }

shot() {  # shot HTML PNG HEIGHT
    local profile
    profile=$(mktemp -d)
    timeout 120 "$CHROME" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --disable-dev-shm-usage --hide-scrollbars --user-data-dir="$profile" \
        --screenshot="$2" --window-size=1200,"$3" "file://$WORK/$1" >"$2.log" 2>&1 || true
    rm -rf "$profile"
    [ -s "$2" ] || { echo "error: chromium wrote no screenshot for $1"; cat "$2.log"; exit 1; }
}
shot routing.html routing.png 1400
shot compare.html compare.png 3600
# Only the serving section, cut out of the page with the head (styles) kept.
python3 - serving.html serving-only.html <<'PY'
import sys
h = open(sys.argv[1]).read()
head, body = h[:h.index('<body>') + 6], h[h.index('<h2>Serving</h2>'):]
open(sys.argv[2], 'w').write(head + body)
PY
shot serving-only.html serving.png 1400
shot sweep.html sweep.png 1100
shot domains.html domains.png 2400

# check PNG MIN_COLOURED_SHARE MIN_DISTINCT_COLOURS [RRGGBB ...]
check() {
python3 - "$@" <<'PY'
import os, struct, sys, zlib
path, min_share, min_colors = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
# Colours that must each cover >= REQUIRED_SHARE of the page (default 0.3%: e.g. the two models'
# bars; line plots have less ink).
required = {c: 0 for c in sys.argv[4:]}
req_share = float(os.environ.get('REQUIRED_SHARE', '0.003'))
want = {c: (int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)) for c in required}
data = open(path, 'rb').read()
assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
pos, idat = 8, b''
while pos < len(data):
    n, kind = struct.unpack('>I4s', data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b'IHDR':
        w, h, depth, ctype = struct.unpack('>IIBB', body[:10])
    elif kind == b'IDAT':
        idat += body
    pos += 12 + n
assert depth == 8 and ctype in (2, 6), f'unsupported PNG type {ctype}/{depth}'
bpp = 3 if ctype == 2 else 4
raw = zlib.decompress(idat)
stride = w * bpp
rows, prev, i = [], bytearray(stride), 0
for y in range(h):
    f = raw[i]; line = bytearray(raw[i + 1:i + 1 + stride]); i += 1 + stride
    for x in range(stride):
        a = line[x - bpp] if x >= bpp else 0
        b = prev[x]
        c = prev[x - bpp] if x >= bpp else 0
        if f == 1: line[x] = (line[x] + a) & 255
        elif f == 2: line[x] = (line[x] + b) & 255
        elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    rows.append(line); prev = line
coloured, colors, nonwhite, top, bottom = 0, set(), 0, h, 0
for y, line in enumerate(rows):
    for x in range(0, stride, bpp):
        r, g, b = line[x], line[x + 1], line[x + 2]
        if r < 245 or g < 245 or b < 245: nonwhite += 1
        for c, (wr, wg, wb) in want.items():
            if abs(r - wr) <= 12 and abs(g - wg) <= 12 and abs(b - wb) <= 12: required[c] += 1
        if max(r, g, b) - min(r, g, b) > 60:   # plot colour, not text or grid grey
            coloured += 1; colors.add((r >> 3, g >> 3, b >> 3))
            top, bottom = min(top, y), max(bottom, y)
share = coloured / (w * h)
print(f'{path}: {w}x{h}, non-white {nonwhite / (w * h):.1%}, coloured {share:.1%}, '
      f'{len(colors)} distinct colours, coloured rows {top}..{bottom}')
for c, n in required.items():
    print(f'  #{c}: {n / (w * h):.2%} of the page')
    if n / (w * h) < req_share:
        sys.exit(f'error: {path}: too little #{c}: a plot is missing')
if share < min_share or len(colors) < min_colors:
    sys.exit(f'error: {path}: the plots did not render (need >= {min_share:.0%} coloured pixels '
             f'in >= {min_colors} colours)')
PY
}
# Routing report: the heatmap's gradient gives many colours; its bars are #d95f02 and #7570b3.
check routing.png 0.03 12 d95f02 7570b3
# Compare: the key-measure bars of both models (#2c7fb8, #f28e2b), then the MoE model's heatmap.
check compare.png 0.01 12 2c7fb8 f28e2b d95f02
# Sweep: the prompt and decode tok/s lines (#1b9e77, #d95f02) and the perplexity line (#7570b3).
REQUIRED_SHARE=0.0008 check sweep.png 0.004 3 1b9e77 d95f02 7570b3
# Domains: the JS bars of the first two pairs (#1b9e77, #d95f02) and the load grids' gradient.
check domains.png 0.03 12 1b9e77 d95f02
# Serving: both models' measured lines (#2c7fb8, #f28e2b) and the MoE's predictions, uniform
# (#1b9e77) and from its routing (#e7298a): thin lines, so a smaller share each (a legend swatch
# alone is under 0.01%).
REQUIRED_SHARE=0.0002 check serving.png 0.005 6 2c7fb8 f28e2b 1b9e77 e7298a
echo "rendered reports: $WORK/routing.png $WORK/compare.png $WORK/sweep.png $WORK/domains.png $WORK/serving.png"
