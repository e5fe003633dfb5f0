#!/usr/bin/env python3
"""Prints markdown tables of criterion results: one row per benchmark point, each
implementation's time, and ours against the fastest peer measured in the same run.

Usage: scripts/bench-report.py GROUP_PREFIX [CRITERION_DIR]
  e.g. cargo bench -p benches --bench objpool && scripts/bench-report.py objpool-
"""
import json
import pathlib
import sys


def estimate(path):
    data = json.loads(path.read_text())
    # Criterion's headline figure: the regression slope where it has one, else the mean.
    key = "slope" if data.get("slope") else "mean"
    return data[key]["point_estimate"]


def fmt(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


# Groups whose rows compare named pairs rather than ours against the fastest peer.
PAIRS = {
    "alloctrack-overhead": [
        ("ours-over-system", "system", "overhead of ours over its inner allocator"),
        ("ours-over-mimalloc", "mimalloc", "overhead of ours over its inner allocator"),
        ("dhat", "ours-over-system", "dhat's cost against ours"),
        ("stats_alloc", "system", "overhead of stats_alloc over its inner allocator"),
    ],
}


def pairs_table(group, points):
    print("\n| parameter | " + " | ".join(f"{a} / {b}" for a, b, _ in PAIRS[group]) + " |")
    print("|---" * (len(PAIRS[group]) + 1) + "|")
    for param, times in sorted(points.items()):
        cells = []
        for a, b, _ in PAIRS[group]:
            cells.append(f"{times[a] / times[b]:.3f}" if a in times and b in times else "")
        print(f"| {param} | " + " | ".join(cells) + " |")


def main():
    prefix = sys.argv[1] if len(sys.argv) > 1 else ""
    root = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else "target/criterion")
    groups = {}
    for path in sorted(root.glob("*/*/*/new/estimates.json")):
        group, impl, param = path.parts[-5:-2]
        if group.startswith(prefix):
            groups.setdefault(group, {}).setdefault(param, {})[impl] = estimate(path)
    for group, points in groups.items():
        impls = sorted({i for p in points.values() for i in p}, key=lambda i: (not i.startswith("ours"), i))
        ours_variants = [i for i in impls if i.startswith("ours")]
        print(f"\n### {group}\n")
        print("| parameter | " + " | ".join(impls) + " | " + " | ".join(f"{o} vs fastest peer" for o in ours_variants) + " |")
        print("|---" * (len(impls) + len(ours_variants) + 1) + "|")
        for param, times in sorted(points.items(), key=lambda kv: (len(kv[0]), kv[0])):
            # Variants of ours (named "ours-...") are not peers of each other.
            peers = {i: t for i, t in times.items() if not i.startswith("ours")}
            cells = [fmt(times[i]) if i in times else "" for i in impls]
            verdicts = []
            for o in ours_variants:
                if o in times and peers:
                    best = min(peers, key=peers.get)
                    verdicts.append(f"{peers[best] / times[o]:.2f}x the speed of {best}")
                else:
                    verdicts.append("")
            print(f"| {param} | " + " | ".join(cells + verdicts) + " |")
        if group in PAIRS:
            pairs_table(group, points)


if __name__ == "__main__":
    main()
