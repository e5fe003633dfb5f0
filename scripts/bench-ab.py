#!/usr/bin/env python3
"""Compares two builds of a criterion bench by alternating runs: each round runs both bench
binaries (the order alternating, so that neither side always runs on a warmer or quieter
machine) and, for every id, the time over the reference id's time in the same run. Prints, per
id, the median of those ratios over the rounds for each build, and the median time after over
before. Same-run ratios are what this shared, noisy machine can compare.

Usage: scripts/bench-ab.py BEFORE AFTER FILTER [ROUNDS] [REFERENCE]
  BEFORE, AFTER  bench executables (absolute paths), e.g. copies of target/release/deps/cache-*
                 built from each revision (`cargo bench -p benches --bench cache --no-run`
                 prints the path)
  FILTER         criterion's id filter, e.g. "cache-zipf-read/(ours|quick_cache)/"
  ROUNDS         rounds (default 3); REFERENCE: the implementation to divide by (quick_cache)
"""
import collections
import re
import statistics
import subprocess
import sys
import tempfile

UNITS = {"ps": 1e-3, "ns": 1.0, "µs": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9}


def run(binary, filt, scratch):
    # Run in a scratch directory: criterion writes its results under ./target/criterion, where
    # `scripts/benchmarks.py --no-run` would otherwise take them for the full run's.
    out = subprocess.run([binary, "--bench", "--warm-up-time", "1", "--measurement-time", "2", filt],
                         capture_output=True, text=True, check=True, cwd=scratch).stdout
    times, name = {}, None
    for line in out.splitlines():
        line = line.strip()
        head = re.match(r"^(\S+/\S+/\S+)", line)
        if head and not line.startswith("time"):
            name = head.group(1)
        t = re.search(r"time:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", line)
        if t and name:
            times[name] = float(t.group(1)) * UNITS[t.group(2)]
    return times


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    before, after, filt = sys.argv[1:4]
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    reference = sys.argv[5] if len(sys.argv) > 5 else "quick_cache"
    results = {"before": collections.defaultdict(list), "after": collections.defaultdict(list)}
    scratch = tempfile.mkdtemp(prefix="bench-ab-")
    for r in range(rounds):
        order = [("before", before), ("after", after)]
        for side, binary in order if r % 2 == 0 else order[::-1]:
            for id_, t in run(binary, filt, scratch).items():
                results[side][id_].append(t)
            print(f"round {r + 1}: {side} done", file=sys.stderr, flush=True)
    print(f"| id | before (time / {reference}'s) | after | time after / before |")
    print("|---|---|---|---|")
    for id_ in sorted(results["after"]):
        group, impl, param = id_.split("/")
        ref = f"{group}/{reference}/{param}"
        if impl == reference or ref not in results["before"] or id_ not in results["before"]:
            continue
        ratio = {s: statistics.median(t / q for t, q in zip(results[s][id_], results[s][ref])) for s in results}
        change = statistics.median(results["after"][id_]) / statistics.median(results["before"][id_])
        print(f"| {id_} | {ratio['before']:.2f} | {ratio['after']:.2f} | {change:.3f} |")


if __name__ == "__main__":
    main()
