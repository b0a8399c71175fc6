"""Counts per stage, for ``aescot status`` and the flow's summary artifact.

Counts come from each table's manifest (``store.count``); the few details (kept / dropped, requeued,
rejects by reason) are aggregates over one or two projected columns, never rows turned into Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from aescot.store import DatasetStore
from aescot.tables import TableState

# (table, stage label) in pipeline order; tables registered later by other modules are added at the end.
_ORDER = [
    ("sources", "sources"),
    ("candidates", "candidates"),
    ("items", "screening items"),
    ("labelstudio_tasks", "tasks in Label Studio"),
    ("annotations", "annotations"),
    ("invalid_annotations", "invalid annotations"),
    ("labels", "labelled items"),
    ("rationales", "rationales"),
    ("selections", "filter decisions"),
]
# bookkeeping tables (ledgers, cursors, indexes) that say nothing a user counts
_INTERNAL = {
    "rejects",
    "generation_groups",
    "labelstudio_task_state",
    "labelstudio_cursor",
    "labelstudio_projects",
    "source_outlines",
    "dedupe_hashes",
    "export_splits",
}

# the one column status reads from a table another module owns: its own projection schema, so
# status never imports that module (Label Studio's SDK, datasets: seconds of start-up)
_REQUEUED = pa.schema([pa.field("requeued", pa.bool_())])


@dataclass
class CountCheck:
    """What ``status`` verified besides counting: every data file (the quick check), missing images,
    and each table's version, fragments and files."""

    files: int
    missing_images: int
    missing_example: str = ""
    tables: list[TableState] | None = None


def verify_counts(store: DatasetStore) -> CountCheck:
    """The quick check of every table's data files (a damaged one raises
    :class:`~aescot.errors.DamagedStore` naming the table and the file), each table's state, and the
    images sources and candidates reference but the store lacks (one listing, compared in Arrow)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from aescot.errors import DamagedStore

    files = 0
    states = []
    for table in store.table_names():
        for path, detail in store.tables.verify(table, quick=True):
            raise DamagedStore(table, path, detail, store.root)
        state = store.table_state(table)
        if state is not None:
            states.append(state)
            files += state.files
    wanted = [store.column("candidates", "image_key")]
    sources = store.read_arrow("sources", ["image_key", "mask_key"])
    wanted += [sources.column("image_key"), sources.column("mask_key")]
    keys = pa.chunked_array([c for w in wanted for c in w.chunks], pa.string()).drop_null()
    keys = pc.unique(keys.combine_chunks()) if len(keys) else keys.combine_chunks()
    missing: list[str] = []
    if len(keys):
        present = pa.array(store.list_keys("images"), pa.string())
        absent = keys.filter(pc.invert(pc.is_in(keys, value_set=present)))
        missing = sorted(absent.to_pylist())
    return CountCheck(files, len(missing), missing[0] if missing else "", states)


def status_report(store: DatasetStore) -> dict:
    """What ``aescot status`` prints, as plain data: the quick check (:func:`verify_counts`), the
    counts per stage and each table's state. For a local store it is also saved as the cache
    :mod:`aescot.status_cache` reuses while the store does not change."""
    from aescot import status_cache

    before = status_cache.fingerprint(store.root) if store.is_local else None
    check = verify_counts(store)  # raises DamagedStore before any count is shown
    report = {
        "root": store.root,
        "stages": [[r.stage, r.count, r.detail] for r in stage_counts(store)],
        "tables": [
            {"name": t.name, "rows": t.rows, "version": t.version, "fragments": t.fragments, "files": t.files}
            for t in check.tables or []
        ],
        "verified_files": check.files,
        "missing_images": check.missing_images,
        "missing_example": check.missing_example,
    }
    if store.is_local:
        files = {t.name: [list(f) for f in t.data_files] for t in check.tables or []}
        status_cache.save_status(store.root, before, {**report, "files": files})
    return report


@dataclass
class StageCount:
    stage: str
    count: int
    detail: str = ""


def stage_counts(store: DatasetStore) -> list[StageCount]:
    """One row per stage table with its row count, plus rejects by stage and reason."""
    import pyarrow.compute as pc

    ordered = {t for t, _ in _ORDER}
    extra = [(t, t.replace("_", " ")) for t in store.table_names() if t not in ordered | _INTERNAL]
    rows = [StageCount(label, store.count(table)) for table, label in _ORDER + extra]
    requeued = store.tables.read("invalid_annotations", _REQUEUED, ["requeued"]).column("requeued")
    if len(requeued):
        back = int(pc.sum(requeued).as_py() or 0)
        rows[[t for t, _ in _ORDER].index("invalid_annotations")].detail = (
            f"{back} sent back to the annotators' queue"
            + (f", {len(requeued) - back} pending" if back < len(requeued) else "")
        )
    kept = store.column("selections", "kept")
    if len(kept):
        n = int(pc.sum(kept).as_py() or 0)
        rows[len(_ORDER) - 1].detail = f"{n} kept, {len(kept) - n} dropped"
    rejects = store.read_arrow("rejects", ["stage", "reason"])
    if rejects.num_rows:
        by = rejects.group_by(["stage", "reason"], use_threads=False).aggregate([([], "count_all")])
        for r in sorted(by.to_pylist(), key=lambda r: (r["stage"], r["reason"])):
            rows.append(StageCount(f"rejected at {r['stage']}", r["count_all"], r["reason"]))
    return rows
