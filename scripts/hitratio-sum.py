#!/usr/bin/env python3
"""Sums one of our policies' shortfall from the best peer over every hit-ratio row of
BENCHMARKS.md: the quick check of a policy change, a few seconds a run instead of the full
table's minutes.

Takes the rows from the `{{hitratio ...}}` directives of benches/BENCHMARKS.template.md, runs
`hitratio --only ID` on each RUNS times (its hash seeds differ per run), and compares the mean of
those runs with the best peer's mean from the outputs the last `scripts/benchmarks.py` left in
target/bench-doc (run it once first; the peers do not change with our code), as BENCHMARKS.md's
"All rows" does (the parsing and the margin are `benchmarks.py`'s own). Prints each row's margin,
the rows behind and the points behind summed.

Usage: scripts/hitratio-sum.py [--runs N] [ID]   (ID: ours by default, or ours-s3fifo, ours-lru)
"""
import collections
import subprocess
import sys

import benchmarks


def main():
    args = sys.argv[1:]
    runs = 3
    if "--runs" in args:
        i = args.index("--runs")
        runs = int(args[i + 1])
        del args[i:i + 2]
    ours = args[0] if args else "ours"
    root = benchmarks.ROOT
    subprocess.run(["cargo", "build", "-q", "--release", "-p", "benches", "--bin", "hitratio"],
                   cwd=root, check=True)
    behind, points = 0, 0.0
    for name, trace, caps in benchmarks.hitratio_rows():
        outputs = sorted(benchmarks.CACHE.glob(f"hitratio-{name}-*.out"))
        if not outputs:
            sys.exit(f"no peer results for {name} in {benchmarks.CACHE}: run scripts/benchmarks.py")
        values, impls = collections.defaultdict(list), {ours: None}
        for path in outputs:
            for impl, cap, ratio in benchmarks.HITRATIO_ROW.findall(path.read_text()):
                if not impl.startswith("ours"):
                    values[(cap, impl)].append(float(ratio))
                    impls[impl] = None
        caps_seen = []
        for _ in range(runs):
            done = subprocess.run([str(root / "target/release/hitratio"), trace, *caps.split(), "--only", ours],
                                  cwd=root, check=True, capture_output=True, text=True)
            for impl, cap, ratio in benchmarks.HITRATIO_ROW.findall(done.stdout):
                values[(cap, impl)].append(float(ratio))
                caps_seen += [cap] if cap not in caps_seen else []
        for cap in caps_seen:
            margin = benchmarks.against_best_peer(values, list(impls), cap, ours)
            behind += margin < -0.005
            points += min(margin, 0.0)
            print(f"{name} {cap}: {ours} {benchmarks.mean(values[(cap, ours)]):.2f}%, {margin:+.2f} on the best peer")
    print(f"{ours}: behind the best peer on {behind} rows, by {-points:.2f} points summed")


if __name__ == "__main__":
    main()
