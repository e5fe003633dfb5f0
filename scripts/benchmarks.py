#!/usr/bin/env python3
"""Runs the benchmarks and writes BENCHMARKS.md from benches/BENCHMARKS.template.md, with SVG
plots in docs/plots/. Nothing in BENCHMARKS.md's tables or plots is typed by hand.

Usage: scripts/benchmarks.py [--no-run]
  --no-run   regenerate from an earlier run's results (criterion's target/criterion, and the
             outputs captured in target/bench-doc/) instead of running everything again

A full run takes about an hour on 2 cores (56 minutes on 2026-12-06). Directives in the template, each alone on a line:
  {{machine}}                    the machine, toolchain and date
  {{bench [servers] ARGS}}       runs `cargo bench -p benches ARGS` (through scripts/servers.sh
                                 with `servers`) and shows the command
  {{table PREFIX}}               criterion tables of the groups starting with PREFIX
  {{output NAME: CMD}}           runs CMD and inserts its standard output
  {{hitratio NAME FILE CAPS}}    three runs of the hitratio tool; the range of each figure, and
                                 each of ours against the best peer (mean of the runs)
  {{hitratio-summary}}           per policy of ours, the rows of every table above where it is
                                 behind the best peer, by how much in all, and the worst
  {{plot-hitratio NAME}}         hit ratio against capacity, per implementation
  {{plot-pool GROUP SIZE}}       time against tasks for pools of SIZE connections
  {{plot-cache GROUP}}           cache operations per second against threads
"""
import collections
import json
import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
CACHE = ROOT / "target" / "bench-doc"
PLOTS = ROOT / "docs" / "plots"
RUN = "--no-run" not in sys.argv
plots = []
hitratio_data = {}


def sh(cmd, capture=True):
    print(f"+ {cmd}", file=sys.stderr, flush=True)
    result = subprocess.run(cmd, shell=True, cwd=ROOT, text=True,
                            stdout=subprocess.PIPE if capture else None)
    if result.returncode != 0:
        sys.exit(f"failed ({result.returncode}): {cmd}")
    return result.stdout if capture else ""


def cached(name, cmd):
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{name}.out"
    if RUN or not path.exists():
        path.write_text(sh(cmd))
    return path.read_text()


def machine():
    cpu = re.search(r"Model name:\s*(.+)", sh("lscpu"))
    mem = re.search(r"MemTotal:\s*(\d+)", pathlib.Path("/proc/meminfo").read_text())
    return (f"Machine: {os.cpu_count()} CPUs ({cpu.group(1).strip() if cpu else 'unknown'}), "
            f"{int(mem.group(1)) // (1 << 20) if mem else '?'} GiB; {sh('rustc --version').strip()}; "
            f"generated {sh('date -u +%F').strip()} by `scripts/benchmarks.py`.")


def bench(args):
    servers = args.startswith("servers ")
    args = args.removeprefix("servers ")
    cmd = ("scripts/servers.sh " if servers else "") + f"cargo bench -p benches {args}"
    if RUN:
        sh(cmd + " > /dev/null", capture=False)
    return f"```sh\n{cmd}\n```"


def criterion(prefix):
    points = collections.defaultdict(dict)
    for path in sorted((ROOT / "target/criterion").glob("*/*/*/new/estimates.json")):
        group, impl, param = path.parts[-5:-2]
        if group.startswith(prefix):
            data = json.loads(path.read_text())
            key = "slope" if data.get("slope") else "mean"
            points[(group, param)][impl] = data[key]["point_estimate"]
    return points


# A row of `hitratio`'s tables: implementation, capacity, hit ratio.
HITRATIO_ROW = re.compile(r"^\| (.+?) \| (.+?) \| ([\d.]+)% \|$", re.M)


def hitratio_rows():
    """(name, trace, capacities) of each `{{hitratio ...}}` directive of the template."""
    template = (ROOT / "benches/BENCHMARKS.template.md").read_text()
    return re.findall(r"^\{\{hitratio (\S+) (\S+) (.+?)\}\}$", template, re.M)


def hitratio(name, file, caps):
    runs = []
    for i in range(3):
        out = cached(f"hitratio-{name}-{i}", f"target/release/hitratio {file} {caps}")
        runs.append(HITRATIO_ROW.findall(out))
    values, order = collections.defaultdict(list), []
    for run in runs:
        for impl, cap, ratio in run:
            if (cap, impl) not in order:
                order.append((cap, impl))
            values[(cap, impl)].append(float(ratio))
    caps_seen = list(dict.fromkeys(c for c, _ in order))
    impls = list(dict.fromkeys(i for _, i in order))
    hitratio_data[name] = (caps_seen, impls, values)
    ours = [i for i in impls if i.startswith("ours")]
    lines = ["| capacity | " + " | ".join(impls) + " | " + " | ".join(f"{o} less best peer" for o in ours) + " |",
             "|---" * (len(impls) + len(ours) + 1) + "|"]
    for cap in caps_seen:
        cells = []
        for impl in impls:
            v = values.get((cap, impl))
            if not v:
                cells.append("")
            elif max(v) - min(v) < 0.005:
                cells.append(f"{v[0]:.2f}%")
            else:
                cells.append(f"{min(v):.2f}-{max(v):.2f}%")
        for o in ours:
            margin = against_best_peer(values, impls, cap, o)
            cells.append("" if margin is None else f"{margin:+.2f}")
        lines.append(f"| {cap} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def mean(v):
    return sum(v) / len(v)


def against_best_peer(values, impls, cap, impl):
    """`impl`'s mean hit ratio at `cap` less the best peer's (every implementation not ours)."""
    peers = [mean(values[(cap, i)]) for i in impls if not i.startswith("ours") and values.get((cap, i))]
    if not peers or not values.get((cap, impl)):
        return None
    return mean(values[(cap, impl)]) - max(peers)


def hitratio_summary():
    rows = collections.defaultdict(list)
    for name, (caps, impls, values) in hitratio_data.items():
        for cap in caps:
            for impl in impls:
                if impl.startswith("ours"):
                    margin = against_best_peer(values, impls, cap, impl)
                    if margin is not None:
                        rows[impl].append((margin, f"{name} {cap}"))
    lines = ["| policy | rows | rows behind the best peer | points behind, summed | worst row |",
             "|---|---|---|---|---|"]
    for impl, margins in rows.items():
        behind = [(m, row) for m, row in margins if m < -0.005]
        worst = min(margins)
        lines.append(f"| {impl} | {len(margins)} | {len(behind)} | {-sum(m for m, _ in behind):.2f} | "
                     f"{worst[1]} ({worst[0]:+.2f}) |")
    return "\n".join(lines)


def capacity_x(label):
    m = re.match(r"([\d.]+)%", label)
    return float(m.group(1)) if m else float(label)


def plot_hitratio(name):
    caps, impls, values = hitratio_data[name]
    sized = any("%" in c for c in caps)
    series = [{"name": impl, "points": [[capacity_x(c), sum(values[(c, impl)]) / len(values[(c, impl)])]
                                        for c in caps if (c, impl) in values]} for impl in impls]
    return add_plot(f"hitratio-{name}", f"Hit ratio, {name} trace (mean of 3 runs)",
                    "budget, % of all distinct bytes" if sized else "capacity (entries)", "hit ratio (%)",
                    series, log_x=not sized)


def plot_pool(group, size):
    points = criterion(group)
    series = collections.defaultdict(list)
    for (g, param), times in points.items():
        s, _, tasks = param.partition("x")
        if g == group and s == size:
            for impl, ns in times.items():
                series[impl].append([int(tasks), ns / 1000])
    data = [{"name": impl, "points": sorted(p)} for impl, p in sorted(series.items())]
    return add_plot(f"{group}-{size}", f"{group}: pool of {size}, time for all tasks' checkouts",
                    "tasks", "time per iteration (µs)", data, log_x=True)


def plot_cache(group):
    points = criterion(group)
    series = collections.defaultdict(list)
    for (g, threads), times in points.items():
        if g == group:
            for impl, ns in times.items():
                series[impl].append([int(threads), int(threads) / ns * 1e3])
    data = [{"name": impl, "points": sorted(p)} for impl, p in sorted(series.items())]
    return add_plot(group, f"{group}: throughput against threads", "threads", "million operations per second",
                    data)


def add_plot(name, title, x_label, y_label, series, log_x=False):
    plots.append({"file": str(PLOTS / f"{name}.svg"), "title": title, "x_label": x_label,
                  "y_label": y_label, "log_x": log_x, "series": series})
    return f"![{title}](docs/plots/{name}.svg)"


def main():
    sh("cargo build --release -q -p benches --bin hitratio --bin bench-plots --bin cache-memory", capture=False)
    out = []
    for line in (ROOT / "benches/BENCHMARKS.template.md").read_text().splitlines():
        m = re.fullmatch(r"\{\{(\S+)\s*(.*)\}\}", line.strip())
        if not m:
            out.append(line)
            continue
        kind, arg = m.groups()
        if kind == "machine":
            out.append(machine())
        elif kind == "bench":
            out.append(bench(arg))
        elif kind == "table":
            out.append(sh(f"python3 scripts/bench-report.py {arg}").strip().replace("### ", "#### "))
        elif kind == "output":
            name, _, cmd = arg.partition(": ")
            out.append(cached(name, cmd).strip())
        elif kind == "hitratio":
            name, file, caps = arg.split(" ", 2)
            out.append(hitratio(name, file, caps))
        elif kind == "hitratio-summary":
            out.append(hitratio_summary())
        elif kind == "plot-hitratio":
            out.append(plot_hitratio(arg))
        elif kind == "plot-pool":
            out.append(plot_pool(*arg.split()))
        elif kind == "plot-cache":
            out.append(plot_cache(arg))
        else:
            sys.exit(f"unknown directive {line}")
    spec = CACHE / "plots.json"
    CACHE.mkdir(parents=True, exist_ok=True)
    spec.write_text(json.dumps(plots))
    sh(f"target/release/bench-plots {spec}", capture=False)
    (ROOT / "BENCHMARKS.md").write_text("\n".join(out) + "\n")
    print(f"wrote BENCHMARKS.md and {len(plots)} plots", file=sys.stderr)


if __name__ == "__main__":
    main()
