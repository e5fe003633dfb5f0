#!/usr/bin/env python3
"""Runs the alloctrack-overhead benchmarks ROUNDS times (default 5) and prints the median of
each ratio. One bench binary per global allocator runs after another, so on a shared machine a
single round's ratios carry the noise of the moment; the median over rounds is steadier. Noise
on a shared machine only ever adds time, so the script also prints each binary's fastest round
and the ratios of those minimums, the least disturbed figure the runs give.

Usage: scripts/bench-alloctrack.py [ROUNDS]
"""
import statistics
import sys

from alloctrack_benches import BINARIES, RATIOS, criterion_id
from criterion_rounds import estimate, run


def time(impl):
    return estimate("alloctrack-overhead", criterion_id(impl), "mixed")


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    samples = {pair: [] for pair in RATIOS}
    times = {}
    for round_ in range(rounds):
        args = ["cargo", "bench", "-q", "-p", "benches"]
        for binary in BINARIES:
            args += ["--bench", f"alloc-{binary}"]
        args += ["--", "--warm-up-time", "1", "--measurement-time", "3", "--noplot"]
        run(args)
        for a, b in RATIOS:
            samples[(a, b)].append(time(a) / time(b))
        for impl in {i for pair in RATIOS for i in pair}:
            times.setdefault(impl, []).append(time(impl))
        print(f"round {round_ + 1}: " + ", ".join(f"{a}/{b} {samples[(a, b)][-1]:.3f}" for a, b in RATIOS), flush=True)
    print(f"\nmedian of {rounds} rounds\n")
    print("| implementation | median time per round of the workload | fastest round |")
    print("|---|---|---|")
    for impl, values in sorted(times.items()):
        print(f"| {impl} | {statistics.median(values) / 1000:.1f} µs | {min(values) / 1000:.1f} µs |")
    print("\n| ratio | median | min | max | fastest over fastest |")
    print("|---|---|---|---|---|")
    for (a, b), values in samples.items():
        fastest = min(times[a]) / min(times[b])
        print(f"| {a} / {b} | {statistics.median(values):.3f} | {min(values):.3f} | {max(values):.3f} "
              f"| {fastest:.3f} |")


if __name__ == "__main__":
    main()
