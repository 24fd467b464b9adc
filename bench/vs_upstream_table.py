#!/usr/bin/env python3
"""The Markdown table of bench/vs_upstream.sh from its raw runs.

Input: a file of lines "NAME OURS.jsonl UPSTREAM.jsonl"; each .jsonl line is one repetition
(`moeinfer bench --json` / `llama-bench -o json`, both JSON arrays with one object per test).
Cells are medians over the repetitions. The bandwidth bound of a repetition is the one
`moeinfer bench` measured in that run; upstream's share divides its decode speed in the same
repetition by that bound.
"""
import json
import statistics
import sys


def load(path):
    reps = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            reps.append(json.loads(line) if line else [])
    return reps


def ours_by_test(rep):
    return {o["test"]: o for o in rep}


def upstream_by_test(rep):
    out = {}
    for o in rep:
        test = f"pp{o['n_prompt']}" if o.get("n_gen", 0) == 0 else f"tg{o['n_gen']}"
        out[test] = o
    return out


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, spec="{:.1f}"):
    return "-" if x is None else spec.format(x)


def main():
    models, prompts, gen = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
    tests = [f"pp{p}" for p in prompts] + [f"tg{gen}"]
    head = ["file"]
    for t in tests:
        head += [f"upstream {t}", f"moeinfer {t}", "ratio"]
    head += [f"moeinfer tg{gen} % of bound", f"upstream tg{gen} % of bound", "bw GB/s", "reps"]
    print("| " + " | ".join(head) + " |")
    print("|---|" + "---:|" * (len(head) - 1))
    with open(models) as f:
        for line in f:
            name, ours_path, up_path = line.split()
            ours = [ours_by_test(r) for r in load(ours_path)]
            up = [upstream_by_test(r) for r in load(up_path)]
            row = [name]
            for t in tests:
                u = med([r[t]["avg_ts"] for r in up if t in r])
                m = med([r[t]["tokens_per_second"] for r in ours if t in r])
                ratio = m / u if u and m else None
                row += [fmt(u), fmt(m), fmt(ratio, "{:.2f}x")]
            tg = f"tg{gen}"
            ours_share, up_share, bws = [], [], []
            for o, u in zip(ours, up):
                if tg not in o or not o[tg].get("bound_tokens_per_second"):
                    continue
                bound = o[tg]["bound_tokens_per_second"]
                ours_share.append(100.0 * o[tg]["tokens_per_second"] / bound)
                bws.append(o[tg]["read_bandwidth_gbs"])
                if tg in u:
                    up_share.append(100.0 * u[tg]["avg_ts"] / bound)
            row += [fmt(med(ours_share), "{:.0f}%"), fmt(med(up_share), "{:.0f}%"),
                    fmt(med(bws)), str(min(len(ours), len(up)))]
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
