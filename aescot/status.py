"""Counts per stage, for ``aescot status`` and the flow's summary artifact."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from importlib import import_module

from aescot.store import TABLES, DatasetStore

# (table, stage label) in pipeline order; tables registered later by other modules are added at the end.
_ORDER = [
    ("sources", "sources"),
    ("candidates", "candidates"),
    ("items", "screening items"),
    ("labelstudio_tasks", "tasks in Label Studio"),
    ("annotations", "annotations"),
    ("labels", "labelled items"),
    ("rationales", "rationales"),
    ("selections", "filter decisions"),
]
_REGISTERING_MODULES = ("aescot.labelstudio.push", "aescot.dedupe.report")
# bookkeeping tables (ledgers, cursors) that say nothing a user counts
_INTERNAL = {"rejects", "generation_groups", "labelstudio_task_state", "export_splits"}


@dataclass
class StageCount:
    stage: str
    count: int
    detail: str = ""


def stage_counts(store: DatasetStore) -> list[StageCount]:
    """One row per stage table with its row count, plus rejects by stage and reason."""
    for module in _REGISTERING_MODULES:  # their tables exist only once imported
        import_module(module)
    ordered = {t for t, _ in _ORDER}
    extra = [(t, t.replace("_", " ")) for t in TABLES if t not in ordered | _INTERNAL]
    rows = [StageCount(label, store.count(table)) for table, label in _ORDER + extra]
    kept = [s["kept"] for s in store.read("selections", columns=["kept"])]
    if kept:
        rows[len(_ORDER) - 1].detail = f"{sum(kept)} kept, {len(kept) - sum(kept)} dropped"
    rejects = store.read("rejects", columns=["stage", "reason"])
    by = Counter((r["stage"], r["reason"]) for r in rejects)
    for (stage, reason), n in sorted(by.items()):
        rows.append(StageCount(f"rejected at {stage}", n, reason))
    return rows
