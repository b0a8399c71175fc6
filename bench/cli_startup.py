"""How long the ``aescot`` command takes to start, against a bare interpreter and typer alone (same run).

    .venv/bin/python bench/cli_startup.py [--runs 15] [--sources 64]

Cases run interleaved (one round of every case, ``--runs`` rounds), so a noisy neighbour slows all of
them alike. ``aescot status`` runs on a missing root, and on a small store (``--sources`` ingested
sample shots with candidates and items) three ways: "no cache", with ``<root>/.status/`` removed before
each run (it counts with Lance: a store whose last writer died before recording its commit), "after a
batch", with one more source ingested, generated and made into items (by this process, untimed)
before each run (the writers recorded what status shows), and "unchanged". Prints the median of each
and its ratio to a bare ``python -c pass``; the goal is 15x for ``--help`` and ``status``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
AESCOT = str(Path(sys.executable).with_name("aescot"))
GOAL = 15.0


def add_batch(root: Path, manifest: Path) -> None:
    """Ingest ``manifest``'s sources, generate their candidates and build their items (one flow batch)."""
    from aescot.generate import GenerateConfig, generate_candidates
    from aescot.ingest import ingest
    from aescot.items import build_items
    from aescot.store import DatasetStore

    store = DatasetStore(root)
    added = ingest(store, [str(manifest)])
    gen = generate_candidates(store, GenerateConfig(), added.added_ids)
    build_items(store, gold_share=0.1, group_ids=gen.finished_group_ids)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--sources", type=int, default=64)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="aescot-bench-cli-") as tmp:
        from aescot.samples import write_sample_sources

        root = Path(tmp) / "ds"
        add_batch(root, write_sample_sources(Path(tmp) / "src", n=args.sources, size=64))
        more = iter(
            write_sample_sources(Path(tmp) / f"more-{i}", n=1, size=64, seed=1000 + i)
            for i in range(args.runs)
        )
        cache = root / ".status"
        cases = {
            "python -c pass": ([sys.executable, "-c", "pass"], None),
            "python -c 'import typer'": ([sys.executable, "-c", "import typer"], None),
            "aescot --help": ([AESCOT, "--help"], None),
            "aescot status --help": ([AESCOT, "status", "--help"], None),
            "aescot status (missing root)": ([AESCOT, "status", "--root", str(Path(tmp) / "nope")], None),
            "aescot status (store, no cache)": ([AESCOT, "status", "--root", str(root)], "remove cache"),
            "aescot status (after a batch)": ([AESCOT, "status", "--root", str(root)], "add a batch"),
            "aescot status (store, unchanged)": ([AESCOT, "status", "--root", str(root)], None),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.runs):
            for name, (cmd, before) in cases.items():
                if before == "remove cache":
                    shutil.rmtree(cache, ignore_errors=True)
                elif before == "add a batch":
                    add_batch(root, next(more))
                t = time.perf_counter()
                subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
                times[name].append(time.perf_counter() - t)
    results = {name: statistics.median(ts) for name, ts in times.items()}
    bare, typer = results["python -c pass"], results["python -c 'import typer'"]
    print(f"{args.runs} interleaved rounds, store of {args.sources} sources; goal {GOAL:.0f}x bare")
    print(f"{'command':34s} {'median s':>9s} {'x bare':>8s} {'x typer':>8s}")
    for name, s in results.items():
        mark = "  over goal" if name.startswith("aescot") and s / bare > GOAL else ""
        print(f"{name:34s} {s:9.3f} {s / bare:8.1f} {s / typer:8.2f}{mark}")


if __name__ == "__main__":
    main()
