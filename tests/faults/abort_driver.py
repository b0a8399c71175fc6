"""Run ``aescot status`` plus Lance table reads in N forked processes; print how each ended.

Usage: python -m tests.faults.abort_driver ROOT N PARALLEL [store|fsspec-handle]

Everything is imported once, then each child runs the work and exits through normal interpreter
finalisation, where pyarrow 26 aborted (``terminate called without an active exception``, exit 134)
when Parquet was read through an fsspec file handle with a column list. ``store`` runs ``aescot
status`` and reads through :class:`DatasetStore`: the Lance path (a projected scan, a key lookup
through the B-tree index, a backlog anti-join) with pyarrow and fsspec loaded beside it.
``fsspec-handle`` reads a Parquet file that old way instead, to show the driver sees the abort.
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
from aescot.store import DatasetStore, register_all_tables

register_all_tables()  # import what status imports, once, in the parent (lance is not: it is not
# fork-safe, so each child imports it and starts its runtime after the fork, as a fresh process would)

root, n, parallel = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
mode = sys.argv[4] if len(sys.argv) > 4 else "store"
control = f"{root}-control.parquet"  # the sources as one Parquet file, for the fsspec-handle mode
if mode == "fsspec-handle" and not os.path.exists(control):
    pid = os.fork()  # read the table in a child: the parent must not start lance's runtime before forking
    if pid == 0:
        pq.write_table(DatasetStore(root, create=False).read_arrow("sources"), control)
        os._exit(0)
    os.waitpid(pid, 0)


def work() -> int:
    store = DatasetStore(root, create=False)
    with redirect_stdout(io.StringIO()):
        try:
            app(["status", "--root", root], prog_name="aescot", standalone_mode=False)
        except SystemExit as exc:
            return int(exc.code or 0)
    if mode == "fsspec-handle":
        with store.fs.open(control, "rb") as fh:
            pq.read_table(fh, columns=["source_id", "phash"])
        return 0
    ids = store.column("sources")
    store.read_arrow("sources", columns=["phash"])
    store.read_arrow("sources", columns=["source_id", "image_key"], keys=ids.slice(0, 2))
    store.backlog("sources", "candidates", on="source_id")
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
