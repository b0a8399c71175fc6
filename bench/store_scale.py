"""Per-batch cost as the store grows (issue 13, "cost follows the work").

    .venv/bin/python bench/store_scale.py [--full] [--repeats 16] [--size 64]

Grows one store the way the flow does (ingest, synthetic generation, items) to 1k and 16k
sources (and 128k with ``--full``). The base store is built with the same library calls in
larger batches (1,024 sources per call, 256 per commit) to save time, then compacted as the
flow's own upserts keep it; then, at each size, one
more normal batch of 32 new sources goes through ingest + generate + items exactly as the flow's
``generate`` task runs it, in a fresh child process (as a Prefect worker would), ``--repeats``
times, each with a fresh batch. The child reports its seconds per stage and its peak RSS
(``VmHWM``), plus how much the batch added to its RSS over the imported, idle interpreter.

Prints one row per size: median wall seconds and CPU seconds per batch (CPU of every thread:
steadier than wall time on a shared machine, where other writers' fsyncs swing wall time 2x), the
mean CPU over all batches (it includes the batches whose upsert compacted a table: compaction
rewrites the table, so its share grows with the store), CPU per stage, peak RSS and the RSS the
batch added, files under ``<root>/tables/``; then the once-per-run backlog queries, and the ratio
of each larger size to 1k, measured in the same run. Goal: <= 1.2x for time and RSS.
Images are 64x64 by default: pixels cost the same at every size and are not what is measured.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BATCH = 32
BUILD_CHUNK = 1024  # sources per bulk-build call (ingest, generate, items)
BUILD_FLUSH = 256  # sources per generation commit while bulk-building
PROBE_SEED = 50_000  # probe batches render from seeds far from the build's
GOAL = 1.2


def _status_mb(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process. Not ``ru_maxrss``: after fork + exec it
    still holds the parent's RSS at the fork, so a child of a big parent reports the parent's."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def probe(root: str, manifest: str) -> dict:
    """One flow batch (the ``generate`` task's work after ingesting its 32 sources), in this process."""
    import lance  # noqa: F401 - imported before the clock starts, as a warm worker has it

    from aescot.generate import GenerateConfig, generate_candidates
    from aescot.ingest import ingest
    from aescot.items import build_items
    from aescot.store import DatasetStore

    idle = _status_mb("VmRSS")
    c0 = time.process_time()  # CPU of every thread: steadier than wall time on a shared machine
    t0 = time.perf_counter()
    store = DatasetStore(root)
    added = ingest(store, [manifest])
    t1, c1 = time.perf_counter(), time.process_time()
    gen = generate_candidates(store, GenerateConfig(), added.added_ids)
    t2, c2 = time.perf_counter(), time.process_time()
    items = build_items(store, gold_share=0.1, group_ids=gen.finished_group_ids)
    t3 = time.perf_counter()
    cpu = time.process_time() - c0
    peak = _status_mb("VmHWM")
    return {
        "added": added.added,
        "items": items.built,
        "ingest_s": t1 - t0,
        "generate_s": t2 - t1,
        "items_s": t3 - t2,
        "batch_s": t3 - t0,
        "cpu_s": cpu,
        "ingest_cpu_s": c1 - c0,
        "generate_cpu_s": c2 - c1,
        "items_cpu_s": c0 + cpu - c2,
        "peak_rss_mb": peak,
        "idle_rss_mb": idle,
    }


def build_to(root: Path, work: Path, target: int, size: int, seed: int) -> int:
    """Grow the store to ``target`` sources with the flow's library calls in larger batches."""
    from aescot.generate import GenerateConfig, generate_candidates
    from aescot.ingest import ingest
    from aescot.items import build_items
    from aescot.store import DatasetStore

    store = DatasetStore(root)
    while (have := store.count("sources")) < target:
        n = min(BUILD_CHUNK, target - have)
        folder = work / f"build-{seed}"
        manifest = write_sources(folder, n, size, seed)
        seed += 1
        added = ingest(store, [str(manifest)])
        gen = generate_candidates(store, GenerateConfig(flush_every=BUILD_FLUSH), added.added_ids)
        build_items(store, gold_share=0.1, group_ids=gen.finished_group_ids)
        shutil.rmtree(folder)  # the store holds its own copies now
    # A flow's store is compacted by its own upserts every 32 small fragments, so at any time it is
    # an indexed base plus at most 32 small fragments. The bulk build's fragments are 1,024 rows and
    # would stay unindexed until then; compact once (``aescot compact``) so the probes see the
    # flow's state, not the bulk build's.
    store.compact()
    return seed


def write_sources(folder: Path, n: int, size: int, seed: int) -> Path:
    """``n`` sample product shots (:mod:`aescot.samples`) on distinct backdrops, with masks and a
    manifest. The plain sample backdrops make a fifth of a 16k store's new shots near-duplicates
    (ingest rejects them, so batches shrink as the store grows); a seeded low-frequency shade over
    the backdrop keeps every shot distinct, as real photos are."""
    from PIL import Image

    from aescot.samples import product_name, render_product_shot

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        s = seed * 100_003 + i
        img, mask = render_product_shot(s, size)
        rng = random.Random(s)
        shade = Image.new("RGB", (4, 4))
        shade.putdata([tuple(rng.randrange(256) for _ in range(3)) for _ in range(16)])
        shade = shade.resize(img.size, Image.Resampling.BICUBIC)
        img = Image.composite(img, Image.blend(img, shade, 0.5), mask)
        name = f"shot-{i:04d}"
        img.save(folder / f"{name}.png")
        mask.save(folder / f"{name}.mask.png")
        rows.append({"path": f"{name}.png", "mask": f"{name}.mask.png", "product": product_name(s)})
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "mask", "product"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def run_probe(root: Path, manifest: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--probe", str(root), str(manifest)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    if out.returncode != 0:
        raise SystemExit(f"probe batch failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_backlogs(root: Path) -> dict:
    """The once-per-run queries (a flow's backlog, the CLI's item backlog), timed in this process."""
    from aescot.generate import GenerateConfig, pending_source_ids
    from aescot.items import groups_without_items
    from aescot.store import DatasetStore

    store = DatasetStore(root)
    out = {}
    for name, fn in (
        ("sources_without_items", lambda: store.backlog("sources", "items", on="source_id")),
        ("pending_source_ids", lambda: pending_source_ids(store, GenerateConfig())),
        ("groups_without_items", lambda: groups_without_items(store)),
    ):
        t = time.perf_counter()
        fn()
        out[name] = time.perf_counter() - t
    return out


def fragments(store) -> dict[str, int]:
    """Fragments per stage table: a drop across a probe batch means its upsert compacted the table."""
    out = {}
    for name in ("sources", "rejects", "candidates", "generation_groups", "items"):
        state = store.table_state(name)
        if state is not None:
            out[name] = state.fragments
    return out


def table_files(root: Path) -> int:
    return sum(len(names) for _, _, names in os.walk(root / "tables"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true", help="also 128k sources (hours on 2 cores)")
    ap.add_argument(
        "--repeats",
        type=int,
        default=16,
        help="probe batches per size (each a fresh batch; 16 span a compaction)",
    )
    ap.add_argument("--size", type=int, default=64, help="image side in pixels")
    ap.add_argument("--sizes", type=str, default=None, help="comma-separated sizes (default 1000,16000)")
    ap.add_argument("--keep", action="store_true", help="keep the store (its path is printed)")
    ap.add_argument("--probe", nargs=2, metavar=("ROOT", "MANIFEST"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe:
        print(json.dumps(probe(*args.probe)))
        return

    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else [1_000, 16_000]
    if args.full:
        sizes.append(128_000)
    work = Path(tempfile.mkdtemp(prefix="aescot-bench-scale-"))
    root = work / "ds"
    from aescot.store import DatasetStore

    store = DatasetStore(root)
    rows, seed, probe_seed = [], 1, PROBE_SEED
    for target in sizes:
        t = time.perf_counter()
        seed = build_to(root, work, target, args.size, seed)
        built_s = time.perf_counter() - t
        have = store.count("sources")
        print(f"built to {have} sources in {built_s:.0f} s", file=sys.stderr, flush=True)
        files = table_files(root)
        backlogs = run_backlogs(root)
        probes = []
        for _ in range(args.repeats):
            folder = work / f"probe-{probe_seed}"
            manifest = write_sources(folder, BATCH, args.size, probe_seed)
            probe_seed += 1
            before = fragments(store)
            got = run_probe(root, manifest)
            after = fragments(store)
            got["compacted"] = sorted(n for n in after if after[n] < before.get(n, 0))
            probes.append(got)
            shutil.rmtree(folder)
        rows.append(
            {
                "sources": have,
                "built_s": built_s,
                "files": files,
                "backlogs": backlogs,
                "probes": probes,
                **{
                    k: statistics.median(p[k] for p in probes) for k in probes[0] if k.endswith(("_s", "_mb"))
                },
                "mean_cpu_s": statistics.fmean(p["cpu_s"] for p in probes),
                "max_batch_s": max(p["batch_s"] for p in probes),
                "compactions": sum(bool(p["compacted"]) for p in probes),
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)

    print(
        f"\nOne flow batch ({BATCH} new {args.size}x{args.size} sources: ingest + generate + items) in a "
        f"fresh process, {args.repeats} batches per size: medians, and the mean CPU (every batch, including "
        "those whose upsert compacted a table):\n"
    )
    print(
        "| sources | s/batch | CPU s | mean CPU s | batches compacting | ingest CPU s | generate CPU s "
        "| items CPU s | peak RSS MB | RSS added MB | files in tables/ | build s |"
    )
    print("|---:|" + "---:|" * 11)
    for r in rows:
        print(
            f"| {r['sources']:,} | {r['batch_s']:.2f} | {r['cpu_s']:.2f} | {r['mean_cpu_s']:.2f} "
            f"| {r['compactions']} | {r['ingest_cpu_s']:.3f} | {r['generate_cpu_s']:.3f} "
            f"| {r['items_cpu_s']:.3f} | {r['peak_rss_mb']:.0f} | {r['peak_rss_mb'] - r['idle_rss_mb']:.0f} "
            f"| {r['files']:,} | {r['built_s']:.0f} |"
        )
    print("\nOnce per run (not per batch), seconds:\n")
    names = list(rows[0]["backlogs"])
    print("| sources | " + " | ".join(names) + " |")
    print("|---:|" + "---:|" * len(names))
    for r in rows:
        print(f"| {r['sources']:,} | " + " | ".join(f"{r['backlogs'][n]:.3f}" for n in names) + " |")
    base = rows[0]
    print()
    for r in rows[1:]:
        ratios = {
            "wall": r["batch_s"] / base["batch_s"],
            "CPU": r["cpu_s"] / base["cpu_s"],
            "mean CPU": r["mean_cpu_s"] / base["mean_cpu_s"],
            "peak RSS": r["peak_rss_mb"] / base["peak_rss_mb"],
            "RSS added": (r["peak_rss_mb"] - r["idle_rss_mb"]) / (base["peak_rss_mb"] - base["idle_rss_mb"]),
            "files": r["files"] / base["files"],
        }
        print(
            f"ratio {r['sources']:,} / {base['sources']:,} sources: "
            + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items())
            + f"; goal {GOAL}x: "
            + ", ".join(
                f"{k} {'meets' if ratios[k] <= GOAL else 'misses'}" for k in ("CPU", "mean CPU", "peak RSS")
            )
        )
    if args.keep:
        print(f"\nstore kept at {root}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
