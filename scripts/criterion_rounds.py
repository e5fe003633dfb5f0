"""Shared by the scripts that repeat a criterion benchmark and report the median of same-run
ratios (`bench-alloctrack.py`, `bench-connpool-postgres.py`): on a shared machine one run's
figures carry the noise of the moment, and the median over rounds is steadier."""
import json
import os
import pathlib
import statistics
import subprocess

CRITERION = pathlib.Path("target/criterion")


def estimate(*parts):
    """The time criterion measured for a benchmark (its slope when there is one), in ns; `parts`
    is the path under target/criterion: group, function and parameter."""
    path = CRITERION.joinpath(*parts, "new", "estimates.json")
    data = json.loads(path.read_text())
    return data["slope" if data.get("slope") else "mean"]["point_estimate"]


def run(args, env=None):
    """Runs a benchmark command quietly, with `env` added to the environment; stops the script if
    it fails."""
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, **(env or {})})


def summary(values):
    """`median (min-max)` of a list of ratios."""
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"
