"""Run ``aescot status`` plus a column-list store read in N forked processes; print how each ended.

Usage: python -m tests.faults.abort_driver ROOT N PARALLEL [store|fsspec-handle]

Everything is imported once, then each child runs the work and exits through normal interpreter
finalisation (where pyarrow 26 aborted with ``terminate called without an active exception`` when
Parquet was read through an fsspec file handle with a column list). ``fsspec-handle`` reads that old
way, to show the driver sees the abort; ``store`` reads through :class:`DatasetStore`.
Prints one JSON line: {"runs": N, "exit_codes": {...}, "aborts": K}.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections import Counter
from contextlib import redirect_stdout

import pyarrow.parquet as pq

from aescot.cli.main import app
from aescot.status import _register_tables
from aescot.store import DatasetStore

_register_tables()  # import what status imports, once, in the parent

root, n, parallel = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
mode = sys.argv[4] if len(sys.argv) > 4 else "store"


def work() -> int:
    store = DatasetStore(root, create=False)
    with redirect_stdout(io.StringIO()):
        try:
            app(["status", "--root", root], prog_name="aescot", standalone_mode=False)
        except SystemExit as exc:
            return int(exc.code or 0)
    if mode == "fsspec-handle":
        for key in store.part_keys("sources"):
            with store.fs.open(store._full(key), "rb") as fh:
                pq.read_table(fh, columns=["source_id", "phash"])
    else:
        store.read_arrow("sources", columns=["phash"])
    return 0


codes: Counter[int] = Counter()
running: set[int] = set()
started = 0


def reap() -> None:
    pid, status = os.wait()
    running.discard(pid)
    codes[128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)] += 1


while started < n or running:
    if started < n and len(running) < parallel:
        pid = os.fork()
        if pid == 0:
            rc = work()
            sys.exit(rc)  # normal finalisation: this is where the abort happened
        running.add(pid)
        started += 1
    else:
        reap()
print(json.dumps({"runs": n, "mode": mode, "exit_codes": dict(codes), "aborts": codes.get(134, 0)}))
