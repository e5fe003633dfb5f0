#!/usr/bin/env python3
"""Counts the instructions a get costs in each cache of the throughput benchmarks, with
valgrind's callgrind: one thread, one pass of 1,048,576 Zipf(1.0) draws after a pass that warms
the cache, at the capacities of `cache-zipf-read` (100,000 entries) and `cache-zipf-read-90`
(250,000). A figure the machine's noise does not move, beside the timed ratios of
`cargo bench -p benches --bench cache`. Instructions are not time (a load that misses costs far
more than an add); with `--cache-sim` callgrind also simulates the caches and the script prints
data misses per get at the first level (32 KiB) and past a 1 MiB second level (the size of this
machine's per-core L2; valgrind would otherwise model the host's whole shared L3, which holds
these tables entirely). Valgrind's model of the caches, not this machine's. With `--inserts` it
counts the inserts of `cache-zipf-mixed` instead (every tenth draw, after the same warming pass of
gets), per insert.

Usage: scripts/bench-cache-instructions.py [--cache-sim] [--inserts] [IMPLEMENTATION...]
(needs valgrind: apt-get install valgrind)
"""
import json
import subprocess
import sys
import tempfile

CAPACITIES = [100_000, 250_000]
DEFAULT = ["ours", "ours-s3fifo", "ours-lru", "quick_cache", "tinyufo", "lru"]
GETS = 1 << 20
# The last level callgrind simulates with --cache-sim: a per-core L2's size (see above).
SECOND_LEVEL = 1 << 20


def executable():
    args = ["cargo", "build", "-q", "--release", "-p", "benches", "--bin", "cache-instructions",
            "--message-format=json"]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        message = json.loads(line)
        if message.get("reason") == "compiler-artifact" and message.get("executable"):
            return message["executable"]
    sys.exit("cargo built no cache-instructions executable")


def totals(path):
    """The events callgrind collected (inside the measured pass only), by name."""
    events, values = [], []
    for line in open(path):
        if line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith("totals:") or line.startswith("summary:"):
            values = [int(v) for v in line.split()[1:]]
    return dict(zip(events, values + [0] * (len(events) - len(values))))


def main():
    args = sys.argv[1:]
    cache_sim = "--cache-sim" in args
    inserts = "--inserts" in args
    names = [a for a in args if not a.startswith("--")] or DEFAULT
    exe = executable()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for capacity in CAPACITIES:
            for name in names:
                out = f"{tmp}/{name}-{capacity}.out"
                valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                            "--toggle-collect=cache_instructions::measured"]
                if cache_sim:
                    valgrind += ["--cache-sim=yes", f"--LL={SECOND_LEVEL},16,64"]
                command = valgrind + [exe, name, str(capacity)] + (["--inserts"] if inserts else [])
                done = subprocess.run(command, check=True, capture_output=True, text=True)
                # "<name> <capacity>: <hits> hits in <gets> gets", or ": <inserts> inserts".
                count = int(done.stdout.split(": ")[1].split()[0])
                rows[(capacity, name)] = (totals(out), count)
    for capacity in CAPACITIES:
        if inserts:
            print(f"\ncapacity {capacity:,} entries, the inserts of {GETS:,} draws on one thread, per insert:\n")
            header = "| implementation | instructions | instructions vs quick_cache |"
        else:
            print(f"\ncapacity {capacity:,} entries, {GETS:,} gets on one thread, per get:\n")
            header = "| implementation | hits | instructions | instructions vs quick_cache |"
        if cache_sim:
            header += " first-level data misses | data misses past 1 MiB |"
        print(header)
        print("|---" * (header.count("|") - 1) + "|")
        base = rows.get((capacity, "quick_cache"))
        for name in names:
            events, count = rows[(capacity, name)]
            # Per get, or per insert.
            ops = count if inserts else GETS
            ir = events["Ir"] / ops
            ratio = f"{ir / (base[0]['Ir'] / (base[1] if inserts else GETS)):.2f}x" if base else "-"
            line = f"| {name} | {ir:,.0f} | {ratio} |" if inserts else f"| {name} | {count / GETS:.1%} | {ir:,.0f} | {ratio} |"
            if cache_sim:
                d1 = (events.get("D1mr", 0) + events.get("D1mw", 0)) / ops
                ll = (events.get("DLmr", 0) + events.get("DLmw", 0)) / ops
                line += f" {d1:.2f} | {ll:.2f} |"
            print(line)

if __name__ == "__main__":
    main()
