"""What ``aescot status`` shows, recorded by the writers as they commit: one table's summary at a
version and the commit hook that records it (:func:`record_commit`). It knows the table format, not
the store (the store calls it), so the store's writes never import the status command."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from aescot import status_cache
from aescot.errors import StoreError

if TYPE_CHECKING:
    from aescot.tables import LanceTables

# the columns a table's stage detail aggregates (the tables are other modules'; status never imports
# them: Label Studio's SDK, datasets: seconds of start-up)
_DETAIL_COLUMNS = {
    "invalid_annotations": ("requeued",),
    "selections": ("kept",),
    "rejects": ("stage", "reason"),
}


def table_summary(tables: LanceTables, table: str) -> dict[str, Any] | None:
    """One table's part of the status at its newest version (None if it was never written)."""
    snap = tables.snapshot(table, _DETAIL_COLUMNS.get(table, ()))
    if snap is None:
        return None
    state, cols = snap
    summary: dict[str, Any] = {
        "name": table,
        "version": state.version,
        "rows": state.rows,
        "fragments": state.fragments,
        "files": state.files,
        "data_files": [list(f) for f in state.data_files],
        "detail": "",
    }
    if cols is not None and cols.num_rows:
        _add_detail(table, cols, summary)
    return summary


def _add_detail(table: str, cols: pa.Table, summary: dict[str, Any]) -> None:
    if table == "invalid_annotations":
        requeued = cols.column("requeued")
        back = int(pc.sum(requeued).as_py() or 0)
        summary["detail"] = f"{back} sent back to the annotators' queue" + (
            f", {len(requeued) - back} pending" if back < len(requeued) else ""
        )
    elif table == "selections":
        kept = cols.column("kept")
        n = int(pc.sum(kept).as_py() or 0)
        summary["detail"] = f"{n} kept, {len(kept) - n} dropped"
    elif table == "rejects":
        by = cols.group_by(["stage", "reason"], use_threads=False).aggregate([([], "count_all")])
        summary["stage_rows"] = [
            [f"rejected at {r['stage']}", r["count_all"], r["reason"]]
            for r in sorted(by.to_pylist(), key=lambda r: (r["stage"], r["reason"]))
        ]


# what recording a commit can fail with (a full disk, a file damaged since): the write stands regardless
_RECORD_FAILURES = (OSError, ValueError, RuntimeError, StoreError, pa.ArrowException)


def record_commit(root: str, tables: LanceTables, table: str, kind: str, batch: pa.Table | None) -> None:
    """After a commit to ``table`` (``kind``: "upsert" of ``batch``, "compact" or "repair"): record its
    summary at the new version and account for the images (:func:`aescot.status_cache.account_commit`).
    Never fails the write that committed: a summary that cannot be recorded is removed, and status
    then counts that table in full."""
    try:
        summary = table_summary(tables, table)
        if summary is not None:
            status_cache.record_table(root, summary)
        refs = status_cache.IMAGE_REFS.get(table, ())
        absent: list[str] = []
        if refs and batch is not None and status_cache.images_accounted(root):
            for name in refs:
                if name in batch.column_names:
                    for key in pc.unique(batch.column(name).drop_null()).to_pylist():
                        if not os.path.exists(os.path.join(root, key)):
                            absent.append(key)
        status_cache.account_commit(root, absent, changes_refs=bool(refs) and kind != "compact")
    except BaseException as exc:  # lance's Rust panics are BaseExceptions
        if not isinstance(exc, _RECORD_FAILURES) and type(exc).__name__ != "PanicException":
            raise
        status_cache.forget_table(root, table)
        status_cache.forget_images(root)
