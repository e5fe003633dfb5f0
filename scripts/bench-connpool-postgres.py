#!/usr/bin/env python3
"""Runs the connpool-postgres benchmarks ROUNDS times (default 6) and prints, per point, the
median of ours' speed relative to deadpool-postgres's in the same round, without and with TLS.
Sixteen server processes on a shared 2-core machine make one run's figures swing by tens of
percent; the median over rounds is what the comparison rests on. Rounds alternate the order in
which each point's implementations run; use an even number of rounds.

Usage: scripts/servers.sh scripts/bench-connpool-postgres.py [ROUNDS]
"""
import os
import statistics
import sys

from criterion_rounds import estimate, run, summary

POINTS = ["4x16", "4x64", "16x16", "16x64"]
GROUPS = ["connpool-postgres", "connpool-postgres-tls"]


def main():
    if not (os.environ.get("DATABASE_URL") and os.environ.get("PG_TLS_URL")):
        sys.exit("run through scripts/servers.sh: DATABASE_URL and PG_TLS_URL are not set")
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    # ratios[group][point]: deadpool's time over ours, one per round (above 1: ours is faster).
    ratios = {group: {point: [] for point in POINTS} for group in GROUPS}
    for round_ in range(rounds):
        # Odd rounds run each point's implementations in reverse order (the bench reads
        # BENCH_REVERSE), so that the position within a point favours no side over the rounds.
        run(["cargo", "bench", "-q", "-p", "benches", "--bench", "connpool-postgres", "--",
             "--warm-up-time", "1", "--measurement-time", "3", "--noplot", "connpool-postgres"],
            env={"BENCH_REVERSE": "1"} if round_ % 2 else None)
        for group in GROUPS:
            for point in POINTS:
                ratio = estimate(group, "deadpool", point) / estimate(group, "ours", point)
                ratios[group][point].append(ratio)
        print(f"round {round_ + 1}: " + "; ".join(
            f"{group} " + ", ".join(f"{p} {ratios[group][p][-1]:.2f}" for p in POINTS) for group in GROUPS),
            flush=True)
    print(f"\nours' speed relative to deadpool-postgres, median (min-max) of {rounds} rounds\n")
    print("| pool size x tasks | without TLS | with TLS | TLS median / plain median |")
    print("|---|---|---|---|")
    for point in POINTS:
        plain, tls = ratios["connpool-postgres"][point], ratios["connpool-postgres-tls"][point]
        print(f"| {point} | {summary(plain)} | {summary(tls)} | "
              f"{statistics.median(tls) / statistics.median(plain):.3f} |")


if __name__ == "__main__":
    main()
