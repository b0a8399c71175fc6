"""How long the ``aescot`` command takes to start, against a bare interpreter and typer alone (same run).

    .venv/bin/python bench/cli_startup.py [--runs 15]

Prints the median of each and the ratios; the goal is "well under half a second", about typer's own cost.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

AESCOT = str(Path(sys.executable).with_name("aescot"))
CASES = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "python -c 'import typer'": [sys.executable, "-c", "import typer"],
    "aescot --help": [AESCOT, "--help"],
    "aescot status --help": [AESCOT, "status", "--help"],
}


def median_s(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    runs = ap.parse_args().runs
    results = {name: median_s(cmd, runs) for name, cmd in CASES.items()}
    bare, typer = results["python -c pass"], results["python -c 'import typer'"]
    print(f"{'command':28s} {'median s':>9s} {'x bare':>8s} {'x typer':>8s}")
    for name, s in results.items():
        print(f"{name:28s} {s:9.3f} {s / bare:8.1f} {s / typer:8.2f}")


if __name__ == "__main__":
    main()
