#!/usr/bin/env python3
"""Sums one of our policies' shortfall from the best peer over every hit-ratio row of
BENCHMARKS.md: the quick check of a policy change, a few seconds a run instead of the full
table's minutes.

Reads the rows from the `{{hitratio ...}}` directives of benches/BENCHMARKS.template.md, runs
`hitratio --only ID` on each RUNS times (its hash seeds differ per run), and compares the mean of
those runs with the best peer's mean from the outputs the last `scripts/benchmarks.py` left in
target/bench-doc (run it once first; the peers do not change with our code). Prints each row's
margin and, like BENCHMARKS.md's "All rows", the rows behind and the points behind summed.

Usage: scripts/hitratio-sum.py [--runs N] [ID]   (ID: ours by default, or ours-s3fifo, ours-lru)
"""
import collections
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
ROW = re.compile(r"^\| (.+?) \| (.+?) \| ([\d.]+)% \|$", re.M)


def rows():
    template = (ROOT / "benches" / "BENCHMARKS.template.md").read_text()
    return re.findall(r"^\{\{hitratio (\S+) (\S+) (.+?)\}\}$", template, re.M)


def results(text):
    """(implementation, capacity) -> hit ratios, from hitratio's tables."""
    out = collections.defaultdict(list)
    for impl, cap, ratio in ROW.findall(text):
        out[(impl, cap.split(" ")[0])].append(float(ratio))
    return out


def main():
    args = sys.argv[1:]
    runs = 3
    if "--runs" in args:
        i = args.index("--runs")
        runs = int(args[i + 1])
        del args[i:i + 2]
    ours = args[0] if args else "ours"
    subprocess.run(["cargo", "build", "-q", "--release", "-p", "benches", "--bin", "hitratio"],
                   cwd=ROOT, check=True)
    exe = ROOT / "target" / "release" / "hitratio"
    behind, points = 0, 0.0
    for name, trace, caps in rows():
        peers = collections.defaultdict(list)
        outputs = sorted((ROOT / "target" / "bench-doc").glob(f"hitratio-{name}-*.out"))
        if not outputs:
            sys.exit(f"no peer results for {name} in target/bench-doc: run scripts/benchmarks.py")
        for path in outputs:
            for key, values in results(path.read_text()).items():
                peers[key] += values
        mine = collections.defaultdict(list)
        for _ in range(runs):
            done = subprocess.run([str(exe), trace, *caps.split(), "--only", ours], cwd=ROOT,
                                  check=True, capture_output=True, text=True)
            for key, values in results(done.stdout).items():
                mine[key] += values
        for (impl, cap), values in mine.items():
            best = max(sum(v) / len(v) for (i, c), v in peers.items() if c == cap and not i.startswith("ours"))
            margin = sum(values) / len(values) - best
            behind += margin < -0.005
            points += min(margin, 0.0)
            print(f"{name} {cap}: {ours} {sum(values) / len(values):.2f}%, best peer {best:.2f}%, {margin:+.2f}")
    print(f"{ours}: behind the best peer on {behind} rows, by {-points:.2f} points summed")


if __name__ == "__main__":
    main()
