"""First-release stores: tables as folders of ``part-*.parquet`` files, de-duplicated on read.

:func:`migrate` converts them once into the table format of :mod:`aescot.tables`, verifying each
table by row count and keys before moving its part files aside to ``tables/.first-release/``.
It is safe to kill and re-run (the upsert is keyed; a table is moved aside only once verified),
and it refuses to run on a store that has nothing left to convert.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from aescot.errors import DamagedStore, StoreError
from aescot.store import TABLES, DatasetStore

__all__ = ["MigrationReport", "legacy_tables", "migrate", "read_legacy"]

BACKUP = "tables/.first-release"
MARKER = f"{BACKUP}/MIGRATED.json"


def legacy_tables(store: DatasetStore) -> list[str]:
    """Names of the tables of ``store`` still in the first-release layout."""
    return store.legacy_tables()


def read_legacy(store: DatasetStore, table: str, schema: pa.Schema, key: tuple[str, ...]) -> pa.Table:
    """A first-release table, latest row per key (as the first release read it)."""
    from aescot.tables import keep_last

    parts = []
    for k in store.legacy_parts(table):
        try:
            t = pq.read_table(store._full(k), filesystem=_arrow_fs(store))
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise DamagedStore(table, store.uri(k), str(exc)[:160], store.root) from None
        parts.append(t)
    if not parts:
        return schema.empty_table()
    merged = pa.concat_tables(parts, promote_options="default")
    merged = keep_last(merged, key)
    for f in schema:  # columns added to a contract since the first release arrive as nulls
        if f.name not in merged.column_names:
            merged = merged.append_column(f.name, pa.nulls(merged.num_rows, f.type))
    return merged.select(schema.names).cast(schema)


def _arrow_fs(store: DatasetStore):
    """pyarrow's filesystem for the root (None locally). Never an fsspec *file handle*: pyarrow 26
    then aborts the process at exit now and then (exit 134, ENVIRONMENT.md)."""
    if store.is_local:
        return None
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    return PyFileSystem(FSSpecHandler(store.fs))


@dataclass
class MigrationReport:
    tables: dict[str, int] = field(default_factory=dict)  # table -> rows converted and verified
    unknown: list[str] = field(default_factory=list)  # folders with part files but no table spec


def migrate(store: DatasetStore) -> MigrationReport:
    """Convert every first-release table; raises :class:`StoreError` if there is nothing to do."""
    old = store.legacy_tables()
    if not old:
        if store.exists(MARKER):
            when = store.read_json(MARKER).get("finished_at", "earlier")
            raise StoreError(f"{store.root} was already migrated ({when}); nothing left to convert")
        raise StoreError(f"{store.root} has no first-release tables; nothing to migrate")
    tables = store._open_tables(check=False)
    report = MigrationReport()
    for name in old:
        spec = TABLES.get(name)
        if spec is None:
            report.unknown.append(name)
            continue
        data = read_legacy(store, name, spec.arrow_schema(), spec.key)
        tables.upsert(name, data, spec.key)
        _verify(store, tables, name, data, spec.key)
        store.fs.mv(store._full(f"tables/{name}"), store._full(f"{BACKUP}/{name}"), recursive=True)
        report.tables[name] = data.num_rows
    if report.unknown:
        raise StoreError(
            f"tables {', '.join(report.unknown)} have part files but no table definition here; "
            "the others were converted, re-run after upgrading aescot"
        )
    previous = store.read_json(MARKER) if store.exists(MARKER) else {"tables": {}}
    store.write_json(
        MARKER,
        {
            "tables": {**previous.get("tables", {}), **report.tables},
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    return report


def _verify(store: DatasetStore, tables, name: str, data: pa.Table, key: tuple[str, ...]) -> None:
    got = tables.read(name, TABLES[name].arrow_schema(), list(key))
    want = data.select(list(key))
    missing = want.join(got, keys=list(key), join_type="left anti").num_rows
    extra = got.join(want, keys=list(key), join_type="left anti").num_rows
    if got.num_rows != want.num_rows or missing or extra:
        raise StoreError(
            f"migration of {name} did not verify: {want.num_rows} rows in the part files, "
            f"{got.num_rows} in the new table ({missing} keys missing, {extra} extra); part files left in place"
        )
