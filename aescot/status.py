"""Counts per stage, for ``aescot status`` and the flow's summary artifact.

Each table's part of the report is its **summary** at one version: the counts from its manifest and
the few details (kept / dropped, requeued, rejects by reason), aggregates over one or two projected
columns, never rows turned into Python. The process that commits a version records its summary
(:func:`aescot.status_record.record_commit`), so ``aescot status`` can print the report from :mod:`aescot.status_cache`
without Lance; :func:`status_report` is the full path, which counts everything and checks the files.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from aescot import status_cache
from aescot.errors import DamagedStore
from aescot.status_record import table_summary
from aescot.store import DatasetStore

_ORDER = status_cache.ORDER
_INTERNAL = status_cache.INTERNAL


def missing_images(store: DatasetStore) -> list[str]:
    """The images sources and candidates reference but the store lacks (one listing, compared in
    Arrow), sorted."""
    wanted = []
    for table, columns in status_cache.IMAGE_REFS.items():
        got = store.read_arrow(table, list(columns))
        wanted += [got.column(c) for c in columns]
    keys = pa.chunked_array([c for w in wanted for c in w.chunks], pa.string()).drop_null()
    keys = pc.unique(keys.combine_chunks()) if len(keys) else keys.combine_chunks()
    if not len(keys):
        return []
    present = pa.array(store.list_keys("images"), pa.string())
    return sorted(keys.filter(pc.invert(pc.is_in(keys, value_set=present))).to_pylist())


def status_report(store: DatasetStore) -> dict:
    """What ``aescot status`` prints, as plain data, counted in full: the quick check of every data
    file (a damaged one raises :class:`~aescot.errors.DamagedStore` naming the table and the file,
    before any count is shown), each table's summary and the missing images. For a local store it
    also writes the cache :func:`aescot.status_cache.fresh_status` serves."""
    before = status_cache.fingerprint(store.root) if store.is_local else None
    summaries = {}
    for table in store.table_names():
        for path, detail in store.tables.verify(table, quick=True):
            raise DamagedStore(table, path, detail, store.root)
        summary = table_summary(store.tables, table)
        if summary is not None:
            summaries[table] = summary
    missing = missing_images(store)
    if store.is_local:
        for summary in summaries.values():
            status_cache.record_table(store.root, summary)
        status_cache.save_images(store.root, before, missing)
        with contextlib.suppress(OSError):
            os.remove(os.path.join(store.root, ".status.json"))  # the cache of releases before
    return status_cache.assemble(store.root, summaries, missing)


@dataclass
class StageCount:
    stage: str
    count: int
    detail: str = ""


def stage_counts(store: DatasetStore) -> list[StageCount]:
    """One row per stage table with its row count, plus rejects by stage and reason."""
    summaries = {}
    for table in store.table_names():
        summary = table_summary(store.tables, table)
        if summary is not None:
            summaries[table] = summary
    report = status_cache.assemble(store.root, summaries, [])
    return [StageCount(stage, count, detail) for stage, count, detail in report["stages"]]
