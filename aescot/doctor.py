"""``aescot doctor`` and ``aescot repair``: find damaged table files and missing images, take damage out.

:func:`check_store` checks every data file of every table: (``deep``) every page read and validated,
or (quick) each file present, of the size its table's manifest recorded, with a readable footer;
and (``deep``) that every image a row refers to exists. Each problem names the table and the file,
with the command that deals with it. The quick check is what the flow and ``aescot export`` run
before they start. A table still in the first-release layout (part files) is reported with
``aescot migrate``.

:func:`repair_store` commits, for each damaged table, a new version without its unreadable
fragments (so every read works again; the other rows stay), keeps a copy of each damaged file under
``<root>/quarantine/<table>/``, and says how many rows were lost, their keys when they could still be
read, and which command rebuilds them. It never restores an older version: that would also undo
every later write to the table, and clean-ups drop versions older than 15 minutes anyway.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aescot.errors import DamagedStore, StoreError
from aescot.store import TABLES, TMP_PREFIX, DatasetStore, register_all_tables

if TYPE_CHECKING:
    import pyarrow as pa

    from aescot.tables import LanceTables

QUARANTINE = "quarantine"

# which command rebuilds a table's rows, for the problems table and the repair report
REBUILD = {
    "sources": "aescot ingest <the same inputs> --root {root}",
    "rejects": "re-run the stage that rejected them (ingest, generate, push, collect, rationales)",
    "candidates": "aescot generate --root {root}",
    "generation_groups": "aescot generate --root {root}",
    "items": "aescot generate --root {root}",
    "near_duplicates": "aescot dedupe --root {root}",
    "dedupe_hashes": "aescot dedupe --root {root}",
    "labelstudio_tasks": "aescot push --root {root} (tasks already in Label Studio are recovered, not re-sent)",
    "labelstudio_task_state": "aescot collect --root {root}",
    "labelstudio_cursor": "aescot collect --root {root} (the next collect reads every task once)",
    "labelstudio_projects": "aescot push --root {root} (the project is found again by its title)",
    "source_outlines": "aescot push --root {root} (outlines are drawn again for the items pushed next)",
    "annotations": "aescot collect --root {root}",
    "invalid_annotations": "aescot collect --root {root}",
    "labels": "aescot collect --root {root}",
    "rationales": "aescot rationales --root {root}",
    "selections": "aescot filter --root {root}",
    "export_splits": "aescot export <out> --root {root}",
    "exports": "nothing to rebuild: it lists past exports (their tags are kept; a new export adds a row)",
}


@dataclass
class Problem:
    """One thing wrong with the store, and the command that deals with it."""

    kind: str  # damaged_file | first_release_layout | missing_image | stale_temp
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


def _tables(store: DatasetStore) -> LanceTables:
    """The table format, without the first-release refusal (doctor reports that layout itself)."""
    return store._open_tables(check=False)


def table_names(store: DatasetStore) -> list[str]:
    """The tables of this store (any ``<name>.lance`` locally; registered ones on object stores)."""
    register_all_tables()
    _tables(store)
    return store.table_names()


def _fix(table: str, root: str) -> str:
    return f"aescot repair --root {root}; then {REBUILD.get(table, 'the stage that writes it').format(root=root)}"


def _key_leaves(array: pa.Array | pa.ChunkedArray, name: str) -> Iterator[pa.Array]:
    """Every string leaf of a (nested) column whose field name ends in ``_key``."""
    import pyarrow as pa

    chunks = array.chunks if isinstance(array, pa.ChunkedArray) else [array]
    for chunk in chunks:
        t = chunk.type
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            if name.endswith("_key"):
                yield chunk
        elif pa.types.is_list(t) or pa.types.is_large_list(t):
            yield from _key_leaves(chunk.flatten(), name)
        elif pa.types.is_struct(t):
            for f, child in zip(t, chunk.flatten()):
                yield from _key_leaves(child, f.name)


def _has_key_leaf(t: pa.DataType, name: str) -> bool:
    import pyarrow as pa

    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return name.endswith("_key")
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _has_key_leaf(t.value_type, name)
    if pa.types.is_struct(t):
        return any(_has_key_leaf(f.type, f.name) for f in t)
    return False


def image_refs(store: DatasetStore, table: str) -> set[str]:
    """The image keys rows of ``table`` refer to: only the columns that can hold one are read."""
    import pyarrow.compute as pc

    spec = TABLES.get(table)
    if spec is None:
        return set()
    columns = [f.name for f in spec.arrow_schema() if _has_key_leaf(f.type, f.name)]
    if not columns:
        return set()
    data = store.read_arrow(table, columns)
    out: set[str] = set()
    for name in columns:
        for leaf in _key_leaves(data.column(name), name):
            leaf = leaf.filter(pc.fill_null(pc.starts_with(leaf, "images/"), False))
            out.update(pc.unique(leaf).to_pylist())
    return out


def check_store(store: DatasetStore, deep: bool = True) -> DoctorReport:
    """Check every table's data files (with ``deep`` every page) and every referenced image."""
    from aescot.legacy import legacy_tables

    report = DoctorReport(store.root, deep)
    tables = _tables(store)
    for name in legacy_tables(store):
        report.tables += 1
        report.problems.append(
            Problem(
                "first_release_layout",
                name,
                store.uri(f"tables/{name}"),
                "first-release layout (part files): no command reads it until it is converted",
                f"run aescot migrate {store.root}",
            )
        )
    refs: dict[str, str] = {}  # image key -> a table referring to it
    for name in table_names(store):
        state = tables.state(name)
        if state is None:
            continue
        report.tables += 1
        report.files += state.files
        report.rows += state.rows
        damaged = list(tables.verify(name, quick=not deep))
        for path, detail in damaged:
            report.problems.append(Problem("damaged_file", name, path, detail, _fix(name, store.root)))
        if deep and not damaged:
            for ref in image_refs(store, name):
                refs.setdefault(ref, name)
    if deep:
        present = set(store.list_keys("images"))
        report.images = len(refs)
        for ref in sorted(set(refs) - present):
            report.problems.append(
                Problem(
                    "missing_image",
                    refs[ref],
                    store.uri(ref),
                    "referenced by a row but not in the store",
                    _missing_image_fix(refs[ref], store.root),
                )
            )
    report.problems.extend(_stale_temps(store))
    return report


def require_healthy(store: DatasetStore) -> DoctorReport:
    """The quick check; raise :class:`DamagedStore` for a damaged file (or :class:`StoreError` for a
    first-release store). What the flow runs before it starts and ``aescot export`` before it reads."""
    report = check_store(store, deep=False)
    old = [p.table for p in report.problems if p.kind == "first_release_layout"]
    if old:
        raise StoreError(
            f"{store.root} holds first-release tables ({', '.join(old)}) in the old part-file layout; "
            f"convert them once with: aescot migrate {store.root}"
        )
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
    """One damaged fragment taken out of its table."""

    table: str
    path: str  # the damaged file(s)
    to: str | None  # where a copy was kept; None when the file was gone
    rows: int  # rows the fragment held (from the table's manifest)
    keys: list[Any]  # keys of the lost rows, when the key columns could still be read
    rebuild: str


@dataclass
class RepairReport:
    moved: list[Moved] = field(default_factory=list)
    versions: dict[str, tuple[int, int]] = field(default_factory=dict)  # table -> (before, after)
    temps_removed: int = 0
    remaining: list[Problem] = field(default_factory=list)


def repair_store(store: DatasetStore) -> RepairReport:
    """Take each damaged table's unreadable fragments out of it (one new version per table), keep a
    copy of the files under ``quarantine/``, remove dead temp files, and say what to rebuild.

    Nothing is deleted by hand: the damaged files stay where they were until the table's clean-up
    (or a tag of an export) lets them go, and a copy stays in ``quarantine/``.
    """
    report = RepairReport()
    before = check_store(store, deep=True)
    tables = _tables(store)
    damaged_tables = sorted({p.table for p in before.damaged()})
    for p in before.problems:
        if p.kind == "stale_temp":
            try:
                os.remove(p.path)
                report.temps_removed += 1
            except OSError:
                pass
        elif p.kind != "damaged_file":
            report.remaining.append(p)
    for name in damaged_tables:
        spec = TABLES.get(name)
        old = tables.version(name)
        dropped = tables.drop_damaged(name, spec.key if spec else ())
        report.versions[name] = (old or 0, tables.version(name) or 0)
        rebuild = REBUILD.get(name, "the stage that writes it").format(root=store.root)
        for d in dropped:
            kept = [q for q in (_quarantine(store, name, f) for f in d.files) if q]
            report.moved.append(
                Moved(name, ", ".join(d.files), ", ".join(kept) or None, d.rows, d.keys, rebuild)
            )
    return report


def _quarantine(store: DatasetStore, table: str, uri: str) -> str | None:
    """Copy a damaged file to ``quarantine/<table>/``; None if there is nothing left to copy."""
    src = _key_of(store, uri)
    dest = f"{QUARANTINE}/{table}/{posixpath.basename(src)}"
    if not store.exists(src):
        return None
    store.fs.makedirs(store._full(f"{QUARANTINE}/{table}"), exist_ok=True)
    store.fs.copy(store._full(src), store._full(dest))
    return store.uri(dest)


def _key_of(store: DatasetStore, uri: str) -> str:
    prefix = store.uri("")
    return uri[len(prefix) :].lstrip("/") if uri.startswith(prefix) else uri
