"""Ingest's near-duplicate index: its share of an ingest call, and whether a big store slows new work.

    nice -n 10 python bench/ingest_index.py [--sizes 1000 16000] [--store 100000] [--new 1000] [--reps 3]

Three measurements, every baseline in the same run:

1. One ingest call of N real images (64x64 PNGs rendered by aescot.samples) into an empty store,
   for each N in ``--sizes``: wall time, and the seconds the index took (``IngestReport.seconds``:
   reading the persisted source index (rebuilt from the table when stale), searching each window, extending it after each
   commit) as a share of the call. Goal: < 5% at 16k. Both wall time (which includes the index
   code waiting for the GIL the decoding threads hold) and CPU time (the index code's thread CPU
   against the process's CPU for the call) are shown.
2. The same index work done the first release's way on the same hashes (every file compared by
   brute force with every source before it: quadratic), up to ``--first-release-max`` files.
3. ``--new`` real images ingested into a store that already holds ``--store`` sources vs the same
   images into an empty store (median of ``--reps`` alternating runs). The big store's rows are
   synthesised (valid source records with random 256-bit pHashes, written with store.upsert in big
   batches) instead of decoding 100k images; the measured ingest is the real one. Goal: <= 1.2x.
4. The dedupe pass (aescot.dedupe.report) over ``--new`` new candidates in a store whose
   ``--store`` candidates were already checked vs in a store with only the new ones (synthetic
   candidate rows with stored 64-bit pHashes: the pass reads hashes, never images).

The first table access of a process imports Lance (~0.5 s); a warm-up call pays it before timing.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from aescot.contracts import validate
from aescot.dedupe.hashing import DedupeConfig
from aescot.dedupe.report import near_duplicate_report
from aescot.ingest import IngestConfig, _store_columns, ingest
from aescot.neardup import HammingIndex
from aescot.neardup.search import hashes_to_words, radius_search
from aescot.samples import render_product_shot
from aescot.store import TABLES, DatasetStore
from aescot.timeutil import now_iso


def write_images(folder: Path, seeds: range, size: int) -> Path:
    folder.mkdir(parents=True)
    for seed in seeds:
        render_product_shot(seed, size)[0].save(folder / f"p{seed:07d}.png")
    return folder


def _random_hex(rng: np.random.Generator, n: int, words: int) -> list[str]:
    raw = rng.integers(0, 2**64 - 1, size=(n, words), dtype=np.uint64, endpoint=True)
    return [bytes(row.astype(">u8").tobytes()).hex() for row in raw]


def synthetic_sources(start: int, n: int, rng: np.random.Generator) -> pa.Table:
    """``n`` valid source rows (no image files: ingest never reads an existing source's image), with
    every hash column ingest indexes (random 256-bit pHash and object hash, random colour
    signatures), so the big store's indexes cost what a real one's do."""
    ids = [hashlib.sha256(f"synthetic-{i}".encode()).hexdigest() for i in range(start, start + n)]
    phash = _random_hex(rng, n, 4)
    colours = [bytes(rng.integers(0, 22, size=12, dtype=np.uint8).tobytes()).hex() for _ in range(n)]
    at = now_iso()
    cols = {
        "source_id": ids,
        "image_id": ids,
        "image_key": [f"images/{i[:2]}/{i}.png" for i in ids],
        "mask_key": [f"images/{i[:2]}/{i}.png" for i in ids],
        "mask_method": ["segmented"] * n,
        "mask_coverage": [0.4] * n,
        "width": [64] * n,
        "height": [64] * n,
        "mode": ["RGB"] * n,
        "original_name": [f"synthetic-{i}.png" for i in range(start, start + n)],
        "original_format": ["PNG"] * n,
        "original_mode": ["RGB"] * n,
        "notes": [[] for _ in range(n)],
        "phash": phash,
        "colour_hash": colours,
        "object_phash": _random_hex(rng, n, 4),
        **dict.fromkeys(("crop_phash", "coarse_phash", "coarse_crop_phash"), [None] * n),  # no longer written
        "product": [None] * n,
        "ingested_at": [at] * n,
    }
    table = pa.Table.from_pydict(cols, schema=TABLES["sources"].arrow_schema())
    validate("source", table.slice(0, 1).to_pylist()[0])  # the rows are what the contract says
    return table


def first_release_index_seconds(hashes: list[str], radius: int) -> float:
    """The first release's index work on the same hashes, as it did it: per file, parse its hex, run
    radius_search of that one hash against every source accepted before it (a growing matrix,
    doubled when full), then add it."""
    t0 = time.perf_counter()
    words = np.zeros((16, len(hashes[0]) // 16), dtype=np.uint64)
    n = 0
    for h in hashes:
        if n and radius_search(hashes_to_words([h]), words[:n], radius).as_tuples():
            continue
        if n == words.shape[0]:
            grown = np.zeros((2 * n, words.shape[1]), dtype=np.uint64)
            grown[:n] = words[:n]
            words = grown
        words[n] = hashes_to_words([h])[0]
        n += 1
    return time.perf_counter() - t0


def synthetic_candidates(start: int, n: int, rng: np.random.Generator) -> pa.Table:
    """``n`` valid candidate rows, 4 per source, with random 64-bit pHashes (the dedupe default
    size, so the pass uses them as stored and never opens an image)."""
    ids = [hashlib.sha256(f"candidate-{i}".encode()).hexdigest() for i in range(start, start + n)]
    owners = [hashlib.sha256(f"source-{i // 4}".encode()).hexdigest() for i in range(start, start + n)]
    words = rng.integers(0, 2**64 - 1, size=n, dtype=np.uint64, endpoint=True)
    at = now_iso()
    cols = {
        "candidate_id": ids,
        "source_id": owners,
        "generator": ["synthetic"] * n,
        "model": [None] * n,
        "params": ["{}"] * n,
        "seed": list(range(start, start + n)),
        "attempt": [0] * n,
        "image_id": ids,
        "image_key": [f"images/{i[:2]}/{i}.png" for i in ids],
        "width": [64] * n,
        "height": [64] * n,
        "phash": [f"{int(w):016x}" for w in words],
        "known_acceptable": [None] * n,
        "known_dimensions": [[] for _ in range(n)],
        "created_at": [at] * n,
    }
    table = pa.Table.from_pydict(cols, schema=TABLES["candidates"].arrow_schema())
    validate("candidate", table.slice(0, 1).to_pylist()[0])
    return table


def dedupe_section(tmp: Path, n_store: int, n_new: int, reps: int) -> None:
    cfg = DedupeConfig()
    print(
        f"\n4. dedupe pass over {n_new} new candidates: {n_store} already checked vs none "
        f"({cfg.hash_size**2}-bit pHash, threshold {cfg.threshold})"
    )
    rng = np.random.default_rng(1)
    big = DatasetStore(tmp / "dedupe-big")
    for start in range(0, n_store, 25_000):
        big.upsert("candidates", synthetic_candidates(start, min(25_000, n_store - start), rng))
    t0 = time.perf_counter()
    first = near_duplicate_report(big, cfg)
    full = time.perf_counter() - t0
    print(
        f"   first pass over the {n_store} (each checked once, from then on persisted): {full:.1f} s, {first.checked} checked"
    )
    hashes = big.column("candidates", "phash")
    t0 = time.perf_counter()
    radius_search(hashes.to_pylist(), None, cfg.threshold)
    print(
        f"   first release's way, per pass: self-search of all {len(hashes)} hashes alone {time.perf_counter() - t0:.2f} s"
    )
    empty_s, big_s, empty_cpu, big_cpu = [], [], [], []
    start = n_store
    for rep in range(reps):
        new = synthetic_candidates(start, n_new, rng)
        start += n_new
        runs = [("empty", DatasetStore(tmp / f"dedupe-empty-{rep}")), ("big", big)]
        for name, store in runs if rep % 2 == 0 else runs[::-1]:
            store.upsert("candidates", new)
            t0, c0 = time.perf_counter(), time.process_time()
            report = near_duplicate_report(store, cfg)
            secs, cpu = time.perf_counter() - t0, time.process_time() - c0
            (empty_s if name == "empty" else big_s).append(secs)
            (empty_cpu if name == "empty" else big_cpu).append(cpu)
            print(
                f"   rep {rep} {name:>5}: {report.candidates:>7} candidates, {report.checked} checked in "
                f"{secs:.3f} s, {cpu:.3f} s CPU",
                flush=True,
            )
    e, b = statistics.median(empty_s), statistics.median(big_s)
    ec, bc = statistics.median(empty_cpu), statistics.median(big_cpu)
    print(
        f"   median wall: none checked {e:.3f} s, {n_store} checked {b:.3f} s -> {b / e:.2f}x; "
        f"CPU {ec:.3f} s vs {bc:.3f} s -> {bc / ec:.2f}x (the per-pass scans of the id and hash columns)"
    )


def _merged_by(report) -> str:
    """The near-duplicate rejects of an ingest call by the rule that found them (distinct renders: every
    one is a look-alike merged, not a copy)."""
    near = [r.detail for r in report.rejects if r.reason == "near_duplicate"]
    framed = sum(d.startswith("object hash") for d in near)
    return f"{len(near) - framed} / {framed}"


def timed_ingest(store: DatasetStore, folder: Path, cfg: IngestConfig):
    """Wall seconds, process CPU seconds (all threads) and the report of one ingest call."""
    t0, c0 = time.perf_counter(), time.process_time()
    report = ingest(store, [str(folder)], cfg)
    return time.perf_counter() - t0, time.process_time() - c0, report


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 16_000])
    ap.add_argument("--store", type=int, default=100_000, help="sources already in the big store")
    ap.add_argument("--new", type=int, default=1_000, help="new images ingested into it")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--first-release-max", type=int, default=16_000)
    ap.add_argument("--no-dedupe", dest="dedupe", action="store_false", help="skip part 4 (the dedupe pass)")
    ap.add_argument(
        "--object-distance",
        type=int,
        default=IngestConfig().object_distance,
        help="IngestConfig.object_distance (-1: no object index, the plain pHash only)",
    )
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="aescot-bench-ingest-index-"))
    cfg = IngestConfig(object_distance=args.object_distance)
    print(
        f"{args.image_size}x{args.image_size} PNGs, {cfg.hash_size**2}-bit pHash, radius "
        f"{cfg.near_duplicate_distance}, object distance {cfg.object_distance}, "
        f"batch {cfg.batch_size}, {cfg.workers} workers; scratch {tmp}"
    )
    warm = write_images(tmp / "warm", range(10_000_000, 10_000_004), args.image_size)
    ingest(DatasetStore(tmp / "warm-ds"), [str(warm)], cfg)  # imports Lance, numpy paths

    print("\n1+2. one ingest call into an empty store: index share; first-release index on the same hashes")
    print(
        f"{'files':>7} {'added':>7} {'wall s':>9} {'index s':>8} {'share':>7} {'cpu s':>7} {'index cpu':>9} "
        f"{'share':>7} {'lookup s':>9} {'first-release index s':>22} {'merged: plain / object hash':>28}"
    )
    seed = 0
    for n in args.sizes:
        folder = write_images(tmp / f"in-{n}", range(seed, seed + n), args.image_size)
        seed += n
        store = DatasetStore(tmp / f"ds-{n}")
        secs, cpu, report = timed_ingest(store, folder, cfg)
        idx, idx_cpu = report.seconds["index"], report.seconds["index_cpu"]
        old = "not run"
        if n <= args.first_release_max:
            hashes = store.column("sources", "phash").to_pylist()
            # the rejected near-duplicates' hashes are not stored; the accepted ones drive the cost
            old = f"{first_release_index_seconds(hashes, cfg.near_duplicate_distance):.2f}"
        print(
            f"{n:>7} {report.added:>7} {secs:>9.1f} {idx:>8.3f} {idx / secs:>7.2%} {cpu:>7.1f} {idx_cpu:>9.3f} "
            f"{idx_cpu / cpu:>7.2%} {report.seconds['key_lookup']:>9.3f} {old:>22} {_merged_by(report):>28}",
            flush=True,
        )

    print(f"\n3. {args.new} new images into a store of {args.store} sources vs into an empty store")
    big = DatasetStore(tmp / "big")
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    step = 25_000
    for start in range(0, args.store, step):
        big.upsert("sources", synthetic_sources(start, min(step, args.store - start), rng))
    # a store grown by ingest batches is compacted (and its key index brought up to date) every
    # 32 fragments; compact this one too, so that it is what such a store looks like
    big.compact("sources")
    print(
        f"   built the big store: {big.count('sources')} rows in {time.perf_counter() - t0:.1f} s, "
        f"compacted to {big.table_state('sources').fragments} fragment(s)"
    )
    # both indexes as ingest builds them: the first call after rows the source index did not see
    # (these were upserted directly) rebuilds it from one projected scan; later calls read it
    t0 = time.perf_counter()
    _store_columns(big, cfg)
    t1 = time.perf_counter()
    _, plain, object_index, _ = _store_columns(big, cfg)
    t2 = time.perf_counter()
    probe = big.column("sources", "phash").slice(0, cfg.batch_size).to_pylist()
    plain.search(probe, cfg.near_duplicate_distance)
    object_index.search(probe, max(cfg.object_distance, 0))
    print(
        f"   ingest's indexes of the big store ({len(plain)} plain rows, {len(object_index)} object rows): "
        f"source index rebuilt from the table {t1 - t0:.3f} s, read from its segments {t2 - t1:.3f} s, "
        f"first window's searches {time.perf_counter() - t2:.3f} s"
    )
    # Option A's cost, alone: the persisted form of the index is the phash column itself
    t0 = time.perf_counter()
    cols = big.read_arrow("sources", columns=["source_id", "phash"])
    t1 = time.perf_counter()
    index = HammingIndex.from_arrow(cols.column("phash"), cols.column("source_id"))
    t2 = time.perf_counter()
    index.nearest_many(cols.column("phash").slice(0, cfg.batch_size).to_pylist(), cfg.near_duplicate_distance)
    t3 = time.perf_counter()
    print(
        f"   index of {len(index)} hashes rebuilt per call: column read {t1 - t0:.3f} s, parse {t2 - t1:.3f} s, "
        f"first window's search (sorts the levels) {t3 - t2:.3f} s"
    )
    empty_s, big_s, empty_idx, big_idx, empty_cpu, big_cpu = [], [], [], [], [], []
    for rep in range(args.reps):
        folder = write_images(tmp / f"new-{rep}", range(seed, seed + args.new), args.image_size)
        seed += args.new
        runs = [("empty", DatasetStore(tmp / f"empty-{rep}")), ("big", big)]
        for name, store in runs if rep % 2 == 0 else runs[::-1]:
            before = store.count("sources")
            secs, cpu, report = timed_ingest(store, folder, cfg)
            (empty_s if name == "empty" else big_s).append(secs)
            (empty_cpu if name == "empty" else big_cpu).append(cpu)
            (empty_idx if name == "empty" else big_idx).append(report.seconds["index_cpu"])
            print(
                f"   rep {rep} {name:>5}: {before:>7} sources before, {report.added} added in {secs:.2f} s, "
                f"{cpu:.2f} s CPU (index {report.seconds['index']:.3f} s, {report.seconds['index_cpu']:.3f} s CPU; "
                f"key lookups {report.seconds['key_lookup']:.3f} s)",
                flush=True,
            )
    e, b = statistics.median(empty_s), statistics.median(big_s)
    ec, bc = statistics.median(empty_cpu), statistics.median(big_cpu)
    print(
        f"   median wall: empty {e:.2f} s, big {b:.2f} s -> {b / e:.2f}x; median CPU: {ec:.2f} s vs {bc:.2f} s "
        f"-> {bc / ec:.2f}x (goal <= 1.2x); index CPU median {statistics.median(empty_idx):.3f} s vs "
        f"{statistics.median(big_idx):.3f} s"
    )
    if args.dedupe:
        dedupe_section(tmp, args.store, args.new, args.reps)


if __name__ == "__main__":
    main()
