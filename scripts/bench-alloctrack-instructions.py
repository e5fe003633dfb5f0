#!/usr/bin/env python3
"""Counts the instructions one round of the alloctrack-overhead workload executes under each
global allocator, with valgrind's callgrind: a figure the machine's noise does not move, beside
the timed medians of `bench-alloctrack.py` (which a shared 2-core machine can swing by tens of
percent). Instructions are not time (a load that misses costs more than an add), but a change
to the allocation path shows in them exactly.

Each bench binary runs briefly under callgrind; the script divides the workload function's
inclusive instruction count by its number of calls. With `--cache-sim`, callgrind also simulates
the caches and the script prints first-level and last-level misses per round: the costs that
instructions do not show (the simulated caches are valgrind's model, not this machine's).

Usage: scripts/bench-alloctrack-instructions.py [--cache-sim]   (needs valgrind: apt-get install valgrind)
"""
import json
import re
import subprocess
import sys
import tempfile

from alloctrack_benches import BINARIES, RATIOS

# dhat is left out: its deep profile makes a valgrind run very long.
MEASURED = [binary for binary in BINARIES if binary != "dhat"]
WORKLOAD = "benches::alloc_workload::workload"


def executables():
    args = ["cargo", "bench", "-q", "-p", "benches", "--no-run", "--message-format=json"]
    for binary in MEASURED:
        args += ["--bench", f"alloc-{binary}"]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    found = {}
    for line in out.splitlines():
        message = json.loads(line)
        name = message.get("target", {}).get("name", "").removeprefix("alloc-")
        if message.get("reason") == "compiler-artifact" and message.get("executable") and name in MEASURED:
            found[name] = message["executable"]
    return found


def per_round(path):
    """Inclusive events per call of the workload function in a callgrind output file, by event
    name (`Ir`: instructions; with the cache simulation also `D1mr`, `DLmw`...)."""
    names, calls, events, totals = {}, 0, [], None
    lines = open(path).read().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("events:"):
            events = line.split()[1:]
            totals = [0] * len(events)
        m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line)
        if not m:
            continue
        if m.group(2):
            names[m.group(1)] = m.group(2)
        if line.startswith("cfn=") and names.get(m.group(1)) == WORKLOAD:
            c = re.match(r"calls=(\d+)", lines[i + 1])
            calls += int(c.group(1))
            # A cost line: a position, then one count per event (trailing zeros left out).
            for k, count in enumerate(lines[i + 2].split()[1:]):
                totals[k] += int(count)
    if not calls:
        sys.exit(f"no call of {WORKLOAD} recorded in {path}")
    return {event: total / calls for event, total in zip(events, totals)}


def main():
    cache_sim = "--cache-sim" in sys.argv[1:]
    counts = {}
    with tempfile.TemporaryDirectory() as tmp:
        for binary, exe in sorted(executables().items()):
            out = f"{tmp}/{binary}.out"
            valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
            if cache_sim:
                valgrind.append("--cache-sim=yes")
            subprocess.run(valgrind + [exe, "--bench", "--warm-up-time", "0.05", "--measurement-time", "0.3",
                                       "--noplot"],
                           check=True, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            counts[binary] = per_round(out)
    if cache_sim:
        print("| implementation | instructions | first-level misses (D1mr + D1mw) "
              "| last-level misses (ILmr + DLmr + DLmw) |")
        print("|---|---|---|---|")
        for binary in MEASURED:
            c = counts[binary]
            print(f"| {binary} | {c['Ir']:,.0f} | {c['D1mr'] + c['D1mw']:,.1f} "
                  f"| {c['ILmr'] + c['DLmr'] + c['DLmw']:,.1f} |")
        print("\n(per round of the workload)")
    else:
        print("| implementation | instructions per round of the workload |")
        print("|---|---|")
        for binary in MEASURED:
            print(f"| {binary} | {counts[binary]['Ir']:,.0f} |")
    print("\n| ratio | instructions |")
    print("|---|---|")
    for a, b in RATIOS:
        if a in counts and b in counts:
            print(f"| {a} / {b} | {counts[a]['Ir'] / counts[b]['Ir']:.3f} |")


if __name__ == "__main__":
    main()
