"""One store operation in a child process, for the kill tests (``tests/test_store_faults.py``).

``python -m tests.faults.store_driver OP ROOT [ARGS...]`` builds its inputs, prints ``ready``, runs
the operation, prints ``done`` and the seconds it took. The parent SIGKILLs it between the two.
Nothing here hooks into the store: the kill lands wherever the operation happens to be.

OP is one of:

* ``upsert ROOT LO HI TAG``: one upsert of rows ``LO..HI`` of ``rejects`` (detail = TAG).
* ``upserts ROOT LO HI TAG BATCH``: the same rows in upserts of BATCH rows (a stage's batches).
* ``compact ROOT``: compact every table.
* ``migrate ROOT``: convert a first-release store (``aescot.legacy.migrate``).

With ``START_AT=<epoch seconds>`` in the environment it waits for that moment after ``ready``.
"""

from __future__ import annotations

import os
import sys
import time

import pyarrow as pa

TABLE = "rejects"


def key(i: int) -> str:
    return f"k{i:08d}"


def rows(lo: int, hi: int, tag: str) -> pa.Table:
    """Rows ``lo..hi`` of the rejects table, their detail ``tag`` (so a test can tell writes apart)."""
    from aescot.store import TABLES

    n = hi - lo
    return pa.table(
        {
            "reject_id": [key(i) for i in range(lo, hi)],
            "stage": ["ingest"] * n,
            "subject": [f"file-{i}.png" for i in range(lo, hi)],
            "reason": ["not_an_image"] * n,
            "detail": [tag] * n,
            "related_id": pa.nulls(n, pa.string()),
            "at": ["2026-01-01T00:00:00+00:00"] * n,
        }
    ).cast(TABLES[TABLE].arrow_schema())


def table_rows(schema: pa.Schema, key_column: str, prefix: str, lo: int, hi: int, tag: str) -> pa.Table:
    """Rows for any table: the key ``prefix-i``, every other string ``tag``, numbers ``i``."""
    n = hi - lo
    cols = {}
    for f in schema:
        t = f.type
        if f.name == key_column:
            cols[f.name] = pa.array([f"{prefix}-{i:07d}" for i in range(lo, hi)], t)
        elif pa.types.is_string(t):
            cols[f.name] = pa.array([tag] * n, t)
        elif pa.types.is_integer(t):
            cols[f.name] = pa.array(range(lo, hi), t)
        elif pa.types.is_floating(t):
            cols[f.name] = pa.array([0.5] * n, t)
        elif pa.types.is_boolean(t):
            cols[f.name] = pa.array([i % 2 == 0 for i in range(lo, hi)], t)
        else:
            cols[f.name] = pa.nulls(n, t)
    return pa.table(cols, schema=schema)


def main(argv: list[str]) -> None:
    op, root = argv[0], argv[1]
    from aescot.store import DatasetStore

    store = DatasetStore(root)
    if op == "upsert":
        lo, hi, tag = int(argv[2]), int(argv[3]), argv[4]
        data = rows(lo, hi, tag)
        run = lambda: store.upsert(TABLE, data)
    elif op == "upserts":
        lo, hi, tag, batch = int(argv[2]), int(argv[3]), argv[4], int(argv[5])
        data = rows(lo, hi, tag)

        def run() -> None:
            for start in range(0, data.num_rows, batch):
                store.upsert(TABLE, data.slice(start, batch))

    elif op == "compact":
        store.tables  # noqa: B018 - open the tables before the clock starts
        run = store.compact
    elif op == "migrate":
        from aescot.legacy import migrate
        from aescot.store import register_all_tables

        register_all_tables()
        run = lambda: migrate(store)
    else:
        raise SystemExit(f"unknown op {op!r}")
    print("ready", flush=True)
    if os.environ.get("START_AT"):  # a start line shared with another process (the concurrency tests)
        time.sleep(max(0.0, float(os.environ["START_AT"]) - time.time()))
    started = time.perf_counter()
    run()
    print(f"done {time.perf_counter() - started:.3f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
