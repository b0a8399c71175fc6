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
    ("invalid_annotations", "invalid annotations"),
    ("labels", "labelled items"),
    ("rationales", "rationales"),
    ("selections", "filter decisions"),
]
_REGISTERING_MODULES = ("aescot.labelstudio.push", "aescot.labelstudio.invalid", "aescot.dedupe.report")
# bookkeeping tables (ledgers, cursors) that say nothing a user counts
_INTERNAL = {"rejects", "generation_groups", "labelstudio_task_state", "export_splits"}


def _register_tables() -> None:
    for module in _REGISTERING_MODULES:  # their tables exist only once imported
        import_module(module)


@dataclass
class CountCheck:
    """What ``status`` verified besides counting: every part's footer, and images that are missing."""

    files: int
    missing_images: int
    missing_example: str = ""


def verify_counts(store: DatasetStore) -> CountCheck:
    """Read every part's footer (a damaged file raises :class:`~aescot.errors.DamagedStore` naming it)
    and look for images that sources and candidates reference but the store lacks (one listing)."""
    _register_tables()
    files = 0
    for table in sorted(TABLES):
        for key in store.part_keys(table):
            store.part_metadata(table, key)
            files += 1
    wanted = {r["image_key"] for r in store.read("candidates", columns=["image_key"])}
    for r in store.read("sources", columns=["image_key", "mask_key"]):
        wanted.update(v for v in (r["image_key"], r["mask_key"]) if v)
    missing = sorted(wanted - set(store.list_keys("images"))) if wanted else []
    return CountCheck(files, len(missing), missing[0] if missing else "")


@dataclass
class StageCount:
    stage: str
    count: int
    detail: str = ""


def stage_counts(store: DatasetStore) -> list[StageCount]:
    """One row per stage table with its row count, plus rejects by stage and reason."""
    _register_tables()
    ordered = {t for t, _ in _ORDER}
    extra = [(t, t.replace("_", " ")) for t in TABLES if t not in ordered | _INTERNAL]
    rows = [StageCount(label, store.count(table)) for table, label in _ORDER + extra]
    invalid = store.read("invalid_annotations", columns=["requeued"])
    if invalid:
        back = sum(r["requeued"] for r in invalid)
        rows[[t for t, _ in _ORDER].index("invalid_annotations")].detail = (
            f"{back} sent back to the annotators' queue"
            + (f", {len(invalid) - back} pending" if back < len(invalid) else "")
        )
    kept = [s["kept"] for s in store.read("selections", columns=["kept"])]
    if kept:
        rows[len(_ORDER) - 1].detail = f"{sum(kept)} kept, {len(kept) - sum(kept)} dropped"
    rejects = store.read("rejects", columns=["stage", "reason"])
    by = Counter((r["stage"], r["reason"]) for r in rejects)
    for (stage, reason), n in sorted(by.items()):
        rows.append(StageCount(f"rejected at {stage}", n, reason))
    return rows
