"""``aescot doctor`` and ``aescot repair``: find damaged table files and missing images, move damage aside.

:func:`check_store` reads every part of every table — its footer, and (``deep``) every column, fully
validated — and checks that every image a row refers to exists. Each problem comes with the command
that fixes it. The cheap check (``deep=False``: the file list and the footers) is what the flow runs
before it starts. :func:`repair_store` moves damaged parts to ``<root>/quarantine/<table>/`` (so every
read works again) and says which rows were lost and which command rebuilds them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

from aescot.errors import DamagedStore
from aescot.store import TABLES, TMP_PREFIX, DatasetStore

# modules whose import registers the tables they own (so doctor knows their keys)
_REGISTERING_MODULES = (
    "aescot.labelstudio.push",
    "aescot.labelstudio.collect",
    "aescot.dedupe.report",
    "aescot.generate.groups",
    "aescot.export.splits",
)
QUARANTINE = "quarantine"

# which command rebuilds a table's rows, for the problems table and the repair report
REBUILD = {
    "sources": "aescot ingest <the same inputs> --root {root}",
    "rejects": "re-run the stage that rejected them (ingest, generate, push, collect, rationales)",
    "candidates": "aescot generate --root {root}",
    "generation_groups": "aescot generate --root {root}",
    "items": "aescot generate --root {root}",
    "near_duplicates": "aescot dedupe --root {root}",
    "labelstudio_tasks": "aescot push --root {root} (tasks already in Label Studio are recovered, not re-sent)",
    "labelstudio_task_state": "aescot collect --root {root}",
    "annotations": "aescot collect --root {root}",
    "labels": "aescot collect --root {root}",
    "rationales": "aescot rationales --root {root}",
    "selections": "aescot filter --root {root}",
    "export_splits": "aescot export <out> --root {root}",
}


@dataclass
class Problem:
    """One thing wrong with the store, and the command that deals with it."""

    kind: str  # damaged_file | missing_image | stale_temp
    table: str
    path: str
    detail: str
    fix: str


@dataclass
class DoctorReport:
    root: str
    deep: bool
    tables: int = 0
    files: int = 0
    rows: int = 0
    images: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def damaged(self) -> list[Problem]:
        return [p for p in self.problems if p.kind == "damaged_file"]


def _register_tables() -> None:
    for module in _REGISTERING_MODULES:
        try:
            import_module(module)
        except ImportError:  # an optional extra not installed: its table is checked by name only
            pass


def table_names(store: DatasetStore) -> list[str]:
    """Tables registered in this process plus any folder under ``tables/`` (unknown ones too)."""
    _register_tables()
    on_disk = set()
    if store.exists("tables"):
        on_disk = {k.split("/")[1] for k in store.list_keys("tables") if k.count("/") >= 2}
    return sorted(set(TABLES) & on_disk | on_disk)


def _image_refs(value: Any, out: set[str]) -> None:
    """Every string in a row (nested lists and structs too) that names an image key."""
    if isinstance(value, str):
        if value.startswith("images/"):
            out.add(value)
    elif isinstance(value, dict):
        for v in value.values():
            _image_refs(v, out)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _image_refs(v, out)


def _fix(table: str, root: str) -> str:
    return f"aescot repair --root {root}; then {REBUILD.get(table, 'the stage that writes it').format(root=root)}"


def check_store(store: DatasetStore, deep: bool = True) -> DoctorReport:
    """Check every table file (footer; with ``deep`` every column) and every referenced image."""
    import pyarrow as pa

    report = DoctorReport(store.root, deep)
    refs: dict[str, tuple[str, str]] = {}  # image key -> (table, a row's file) for the report
    for table in table_names(store):
        report.tables += 1
        for key in store.part_keys(table):
            report.files += 1
            try:
                if deep:
                    data = store.verify_part(table, key)
                    report.rows += data.num_rows
                    found: set[str] = set()
                    for column in data.column_names:
                        if pa.types.is_string(data.schema.field(column).type) and not column.endswith("_key"):
                            continue  # plain text columns hold no image keys; skip the walk
                        _image_refs(data.column(column).to_pylist(), found)
                    for ref in found:
                        refs.setdefault(ref, (table, key))
                else:
                    report.rows += store.part_metadata(table, key).num_rows
            except DamagedStore as exc:
                report.problems.append(
                    Problem("damaged_file", table, store.uri(key), exc.detail, _fix(table, store.root))
                )
    if deep:
        present = set(store.list_keys("images"))
        report.images = len(refs)
        for ref in sorted(set(refs) - present):
            table, _ = refs[ref]
            report.problems.append(
                Problem(
                    "missing_image",
                    table,
                    store.uri(ref),
                    "referenced by a row but not in the store",
                    _missing_image_fix(table, store.root),
                )
            )
    report.problems.extend(_stale_temps(store))
    return report


def require_healthy(store: DatasetStore) -> DoctorReport:
    """The cheap check (file list and every footer); raise :class:`DamagedStore` for a damaged file.

    What the flow runs before it starts and ``aescot export`` before it reads.
    """
    report = check_store(store, deep=False)
    damaged = report.damaged()
    if damaged:
        more = f" (and {len(damaged) - 1} more damaged files)" if len(damaged) > 1 else ""
        raise DamagedStore(damaged[0].table, damaged[0].path + more, damaged[0].detail, store.root)
    return report


def _missing_image_fix(table: str, root: str) -> str:
    if table == "sources":
        return f"aescot ingest <the same inputs> --root {root} (restores the image from its file)"
    return f"restore the file from a backup; export rejects its items as image_missing ({root})"


def _stale_temps(store: DatasetStore) -> list[Problem]:
    """Temp files older than the stale age (a dead writer's; removed by the next write there)."""
    if not store.is_local:
        return []
    import time

    from aescot.store import STALE_TMP_S

    out = []
    for folder, _, names in os.walk(store.root):
        for name in names:
            if name.startswith(TMP_PREFIX):
                path = os.path.join(folder, name)
                try:
                    age = time.time() - os.path.getmtime(path)
                except OSError:
                    continue
                if age > STALE_TMP_S:
                    out.append(
                        Problem(
                            "stale_temp",
                            "",
                            path,
                            f"temp file of a writer that died {age / 3600:.1f} h ago",
                            f"aescot repair --root {store.root} (or any write there removes it)",
                        )
                    )
    return out


@dataclass
class Moved:
    table: str
    path: str
    to: str
    rows: int | None  # rows the file held (from its footer), None when the footer is unreadable
    keys: list[Any]  # keys of the lost rows, when the key column could still be read
    rebuild: str


@dataclass
class RepairReport:
    moved: list[Moved] = field(default_factory=list)
    temps_removed: int = 0
    remaining: list[Problem] = field(default_factory=list)


def repair_store(store: DatasetStore) -> RepairReport:
    """Move damaged table files aside (to ``quarantine/``), remove dead temp files, say what to rebuild.

    Nothing is deleted: a quarantined file can be inspected or restored by hand. Rows other parts
    also hold (the key is kept by a later part) are not lost; the report lists every key it could read.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    report = RepairReport()
    before = check_store(store, deep=True)
    for p in before.problems:
        if p.kind == "stale_temp":
            try:
                os.remove(p.path)
                report.temps_removed += 1
            except OSError:
                pass
            continue
        if p.kind != "damaged_file":
            report.remaining.append(p)
            continue
        key = _key_of(store, p.path)
        rows: int | None = None
        keys: list[Any] = []
        try:
            rows = store.part_metadata(p.table, key).num_rows
            spec = TABLES.get(p.table)
            if spec is not None:
                t = pq.read_table(store._full(key), columns=list(spec.key), filesystem=store._arrow_fs())
                cols = [t.column(k).to_pylist() for k in spec.key]
                keys = cols[0] if len(cols) == 1 else [list(x) for x in zip(*cols)]
        except (DamagedStore, pa.ArrowException, OSError, ValueError):
            pass  # the footer or the key pages are gone: the lost rows cannot be named
        dest = f"{QUARANTINE}/{p.table}/{os.path.basename(key)}"
        store.fs.makedirs(store._full(f"{QUARANTINE}/{p.table}"), exist_ok=True)
        store.fs.mv(store._full(key), store._full(dest))
        report.moved.append(
            Moved(
                p.table, p.path, store.uri(dest), rows, keys, REBUILD.get(p.table, "").format(root=store.root)
            )
        )
    return report


def _key_of(store: DatasetStore, uri: str) -> str:
    prefix = store.uri("")
    return uri[len(prefix) :].lstrip("/") if uri.startswith(prefix) else uri
