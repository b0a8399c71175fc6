"""Sustained keyed upserts with the store's own automatic maintenance, as a table grows.

    nice -n 10 .venv/bin/python bench/table_maintenance.py [--sizes 16000 400000] [--upserts 528]

Through ``aescot.tables.LanceTables`` on a candidates-like table (random sha256-hex key, as in
``bench/lance_session.py``): each size's table is bulk-loaded and compacted, then ``--upserts``
upserts of 128 rows follow, as a flow's batches write them (each 96 new keys and 32 existing
ones rewritten), in one process (one lance Session, as a flow run's tasks share). Every upsert
includes the compaction it triggers when due, so the figure is what the flow pays over many
batches, not one lucky batch. Prints CPU seconds (all threads) per upsert (mean: with the
compactions; median: an upsert alone), the worst single upsert, compactions seen, and the
fragments, index segments and files left, per size, and the ratio of the larger size to the
smaller (goal of "cost follows the work": within 1.2x).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import lance
import pyarrow as pa

from aescot import tables

KEY = ("candidate_id",)
BATCH, REWRITTEN = 128, 32


def rows(ids: list[int]) -> pa.Table:
    keys = [hashlib.sha256(f"c{i}".encode()).hexdigest() for i in ids]
    return pa.table(
        {
            "candidate_id": keys,
            "source_id": [hashlib.sha256(f"s{i // 4}".encode()).hexdigest() for i in ids],
            "image_key": [f"images/{c[:2]}/{c}.png" for c in keys],
            "seed": pa.array(ids, pa.int64()),
            "known_dimensions": pa.array([["lighting"]] * len(ids), pa.list_(pa.string())),
        }
    )


def run(base: Path, size: int, upserts: int) -> dict:
    lt = tables.LanceTables(str(base / f"tables-{size}"), None, True)
    for start in range(0, size, 50_000):
        lt.upsert("candidates", rows(list(range(start, min(start + 50_000, size)))), KEY)
    lt.compact("candidates", KEY)
    each, compactions, nxt = [], 0, size
    for u in range(upserts):
        old = [(u * 7919 + j * 104_729) % size for j in range(REWRITTEN)]
        batch = rows(list(range(nxt, nxt + BATCH - REWRITTEN)) + old)
        nxt += BATCH - REWRITTEN
        before = lt.state("candidates").fragments
        t = time.process_time()
        lt.upsert("candidates", batch, KEY)
        each.append(time.process_time() - t)
        compactions += lt.state("candidates").fragments < before
    ds = lance.dataset(lt.uri("candidates"))  # the table as committed, for its index segments
    st = lt.state("candidates")
    assert st.rows == nxt, (st.rows, nxt)  # no key lost or doubled
    return {
        "cpu": sum(each) / len(each),
        "median": sorted(each)[len(each) // 2],
        "worst": max(each),
        "compactions": compactions,
        "fragments": st.fragments,
        "segments": tables.LanceTables._segments(ds, KEY),
        "files": st.files,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs=2, default=[16_000, 400_000])
    ap.add_argument("--upserts", type=int, default=528)
    args = ap.parse_args()
    out = {}
    with tempfile.TemporaryDirectory(prefix="aescot-maint-") as tmp:
        for size in args.sizes:
            out[size] = r = run(Path(tmp), size, args.upserts)
            print(
                f"{size:>8,} rows: {r['cpu'] * 1000:6.1f} ms CPU per upsert (median {r['median'] * 1000:.1f}, "
                f"worst {r['worst']:.2f} s), "
                f"{r['compactions']} compactions; left {r['fragments']} fragments, {r['segments']} index "
                f"segments, {r['files']} files",
                flush=True,
            )
    small, large = args.sizes
    print(
        f"ratio {large:,} / {small:,}: {out[large]['cpu'] / out[small]['cpu']:.2f}x CPU per upsert, "
        f"{out[large]['median'] / out[small]['median']:.2f}x the median (goal 1.2x)"
    )


if __name__ == "__main__":
    main()
