"""Keyed reads and upserts as a table grows, with and without one lance Session per process.

    nice -n 10 .venv/bin/python bench/lance_session.py [--sizes 16000 256000] [--repeats 21]

Through ``aescot.tables.LanceTables`` (the module that owns Lance), on a candidates-like table with
a random sha256-hex key: each size's table is written in 4k-row upserts, then compacted and indexed
as the flow keeps it. Then, ``--repeats`` times, what a generate batch does: open the table and read
256 existing keys (two columns), and open it and upsert 64 new rows; fresh keys every time. Each
figure is the median wall time, in the same run with the session (``aescot.tables._lance_session``)
and without it (every open loads the key's B-tree index and file metadata again), and the ratio of
the larger size to the smaller (goal of "cost follows the work": within 1.2x-1.3x).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pyarrow as pa
import pyarrow.compute as pc

from aescot import tables

KEY = ("candidate_id",)


def rows(start: int, n: int) -> pa.Table:
    ids = [hashlib.sha256(f"c{i}".encode()).hexdigest() for i in range(start, start + n)]
    return pa.table(
        {
            "candidate_id": ids,
            "source_id": [hashlib.sha256(f"s{i // 4}".encode()).hexdigest() for i in range(start, start + n)],
            "image_key": [f"images/{c[:2]}/{c}.png" for c in ids],
            "seed": pa.array(range(start, start + n), pa.int64()),
            "known_dimensions": pa.array([["lighting"]] * n, pa.list_(pa.string())),
        }
    )


def build(base: Path, size: int) -> tables.LanceTables:
    lt = tables.LanceTables(str(base / f"tables-{size}"), None, True)
    for start in range(0, size, 4096):
        lt.upsert("candidates", rows(start, min(4096, size - start)), KEY)
    lt.compact("candidates", KEY)
    return lt


def probe(
    lt: tables.LanceTables, size: int, repeats: int, schema: pa.Schema, offset: int
) -> tuple[float, float]:
    reads, upserts = [], []
    for r in range(repeats):
        wanted = [
            hashlib.sha256(f"c{(r * 7919 + j * 104729) % size}".encode()).hexdigest() for j in range(256)
        ]
        t = time.perf_counter()
        got = lt.read(
            "candidates", schema, ["candidate_id", "image_key"], pc.field("candidate_id").isin(wanted)
        )
        reads.append(time.perf_counter() - t)
        assert got.num_rows == 256, got.num_rows
        t = time.perf_counter()
        lt.upsert("candidates", rows(size + offset + r * 64, 64), KEY)
        upserts.append(time.perf_counter() - t)
    return statistics.median(reads) * 1000, statistics.median(upserts) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs=2, default=[16_000, 256_000])
    ap.add_argument("--repeats", type=int, default=21)
    args = ap.parse_args()
    schema = rows(0, 1).schema
    with tempfile.TemporaryDirectory(prefix="lance-session-") as tmp:
        built = {size: build(Path(tmp), size) for size in args.sizes}
        results: dict[tuple[str, int], tuple[float, float]] = {}
        with_session = tables._lance_session
        for mode, offset in (("without session", 10_000_000), ("with session", 20_000_000)):
            tables._lance_session = with_session if mode == "with session" else (lambda: None)
            for size in args.sizes:
                built[size].compact("candidates", KEY)  # each probe starts from one compacted table
                results[(mode, size)] = probe(built[size], size, args.repeats, schema, offset)
        tables._lance_session = with_session
    small, large = args.sizes
    print(f"median ms per call, {args.repeats} calls each (256 keys read, 64 rows upserted)")
    print(f"{'':16} {'read ' + str(small):>12} {'read ' + str(large):>12} {'ratio':>6} "
          f"{'upsert ' + str(small):>14} {'upsert ' + str(large):>14} {'ratio':>6}")  # fmt: skip
    for mode in ("without session", "with session"):
        (r1, u1), (r2, u2) = results[(mode, small)], results[(mode, large)]
        print(f"{mode:16} {r1:12.1f} {r2:12.1f} {r2 / r1:5.2f}x {u1:14.1f} {u2:14.1f} {u2 / u1:5.2f}x")
    for size in args.sizes:
        (r0, u0), (r1, u1) = results[("without session", size)], results[("with session", size)]
        print(f"at {size}: the session makes reads {r0 / r1:.2f}x and upserts {u0 / u1:.2f}x faster")


if __name__ == "__main__":
    main()
