"""The table format under the store: one Lance dataset per stage table. Only this module imports
``lance``; stages use :class:`aescot.store.DatasetStore` and never list files.

Why Lance (``bench/table_formats.py`` measures it beside Delta Lake at 16k and 128k keys): our
writes are keyed upserts of one batch (tens of rows with random content-hash keys) and our reads
are "these keys" or "the key column". Lance's ``merge_insert`` and filtered scans use a B-tree
index on the key, so both follow the batch, not the table; Delta's ``merge`` and min/max pruning
cannot skip files for random hash keys and cost grows with the file count.

Each table is ``<root>/tables/<name>.lance``:

* **upsert**: ``merge_insert(key)`` (update matched, insert the rest) after de-duplicating the
  batch on its key, so a retried or concurrent batch can never leave two rows for one key. Lance
  commits by an atomic manifest swap (put-if-absent on object stores): a writer killed mid-way
  leaves only unreferenced data files, which the next clean-up removes.
* **maintenance**: once a table holds more than :data:`MAX_FRAGMENTS` fragments (one per upsert),
  the next upsert compacts it, brings the key index up to date and drops versions older than
  :data:`KEEP_VERSIONS_FOR` that no tag protects. File counts stay bounded as the store grows.
* **versions**: every commit is a version; an export tags the versions it read, so
  ``aescot export --as-of TAG`` reads exactly those rows again even after clean-ups.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from aescot.errors import DamagedStore, StoreError

if TYPE_CHECKING:  # lance is imported only when a table is touched (CLI start stays fast)
    import lance

__all__ = ["KEEP_VERSIONS_FOR", "MAX_FRAGMENTS", "LanceTables", "TableState", "keep_last"]

MAX_FRAGMENTS = 32
KEEP_VERSIONS_FOR = timedelta(minutes=15)
SUFFIX = ".lance"
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@dataclass(frozen=True)
class TableState:
    """What ``aescot status`` / ``doctor`` show of one table."""

    name: str
    version: int
    rows: int
    fragments: int
    files: int


def keep_last(table: pa.Table, key: Sequence[str]) -> pa.Table:
    """Keep the last row for each key value (rows in write order); order of first keeps."""
    if table.num_rows <= 1:
        return table
    idx = pa.array(range(table.num_rows), pa.int64())
    with_idx = table.select(list(key)).append_column("__i", idx)
    last = with_idx.group_by(list(key), use_threads=False).aggregate([("__i", "max")])
    if last.num_rows == table.num_rows:
        return table
    idxs = last.column("__i_max").combine_chunks()
    return table.take(pc.take(idxs, pc.sort_indices(idxs)))


def _lance():
    import lance

    return lance


class LanceTables:
    """The stage tables of one dataset root. ``pinned`` maps table -> version (or tag) to read."""

    def __init__(self, tables_uri: str, storage_options: dict[str, str] | None, is_local: bool):
        self.base = tables_uri.rstrip("/")
        self.storage_options = storage_options or None
        self.is_local = is_local
        self.pinned: dict[str, int | str] | None = None
        self._session = None

    # --- locating ----------------------------------------------------------------------------------

    def uri(self, table: str) -> str:
        return f"{self.base}/{table}{SUFFIX}"

    def _exists(self, table: str) -> bool:
        if self.is_local:
            return os.path.isdir(os.path.join(self.uri(table), "_versions"))
        return self._open(table) is not None

    def _open(self, table: str, version: int | str | None = None) -> lance.LanceDataset | None:
        """The dataset at its latest (or given) version; None if the table was never written."""
        lance = _lance()
        if self.is_local and not os.path.isdir(os.path.join(self.uri(table), "_versions")):
            return None
        if version is None and self.pinned is not None:
            version = self.pinned.get(table)
            if version is None:
                return None  # the table did not exist at the pinned point
        try:
            return lance.dataset(self.uri(table), version=version, storage_options=self.storage_options)
        except ValueError as exc:  # lance raises ValueError for "not found" and for bad versions
            text = str(exc)
            if "not found" in text.lower() or "does not exist" in text.lower():
                if version is not None:
                    raise StoreError(f"table {table}: version {version!r} does not exist ({_short(exc)})")
                return None
            raise DamagedStore(table, self.uri(table), _short(exc), self.base) from None
        except OSError as exc:
            raise DamagedStore(table, self.uri(table), _short(exc), self.base) from None

    # --- writing -----------------------------------------------------------------------------------

    def upsert(self, table: str, data: pa.Table, key: Sequence[str]) -> int:
        """Insert or replace ``data``'s rows by ``key``; returns the rows written."""
        if self.pinned is not None:
            raise StoreError("this store is opened at a fixed version (as of an export); it is read-only")
        if not data.num_rows:
            return 0
        data = keep_last(data, key)
        ds = self._open(table)
        if ds is None:
            ds = self._create(table, data, key)
            if ds is not None:
                return data.num_rows
            ds = self._open(table)  # another writer created it first: merge into theirs
        ds = self._evolve(table, ds, data.schema)
        try:
            (
                ds.merge_insert(list(key))
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .conflict_retries(20)
                .execute(data)
            )
        except (OSError, ValueError) as exc:
            raise StoreError(f"table {table}: upsert failed: {_short(exc)}") from None
        self._maintain_if_due(table)
        return data.num_rows

    def _evolve(self, table: str, ds: lance.LanceDataset, schema: pa.Schema) -> lance.LanceDataset:
        """Add the columns a contract gained since the table was created (as nulls for old rows)."""
        have = set(ds.schema.names)
        new = [f for f in schema if f.name not in have]
        if not new:
            return ds
        if any(not f.nullable for f in new):
            names = ", ".join(f.name for f in new if not f.nullable)
            raise StoreError(f"table {table}: new required columns ({names}) need a migration, not an upsert")
        with contextlib.suppress(OSError, ValueError, RuntimeError):  # a concurrent writer added them
            ds.add_columns(new)
        return self._open(table)

    def _create(self, table: str, data: pa.Table, key: Sequence[str]) -> lance.LanceDataset | None:
        lance = _lance()
        try:
            ds = lance.write_dataset(
                data, self.uri(table), mode="create", storage_options=self.storage_options
            )
        except (OSError, ValueError) as exc:
            if "exist" in str(exc).lower():
                return None
            raise StoreError(f"table {table}: create failed: {_short(exc)}") from None
        self._index(ds, key)
        return ds

    @staticmethod
    def _index(ds: lance.LanceDataset, key: Sequence[str]) -> None:
        if len(key) != 1:
            return
        try:
            names = {ix["name"] for ix in ds.list_indices()}
        except Exception:  # noqa: BLE001 - an index is an optimisation, never a failure
            names = set()
        if f"{key[0]}_idx" not in names:
            with contextlib.suppress(OSError, ValueError, RuntimeError):  # a concurrent writer won
                ds.create_scalar_index(key[0], index_type="BTREE")

    def _maintain_if_due(self, table: str) -> None:
        ds = self._open(table)
        if ds is not None and len(ds.get_fragments()) > MAX_FRAGMENTS:
            self.compact(table)

    def compact(self, table: str, keep_for: timedelta = KEEP_VERSIONS_FOR) -> TableState | None:
        """Merge small fragments, update the key index, drop old untagged versions."""
        ds = self._open(table)
        if ds is None:
            return None
        with contextlib.suppress(OSError, ValueError, RuntimeError):  # a concurrent compaction won
            ds.optimize.compact_files()
        ds = self._open(table)
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            ds.optimize.optimize_indices()
        ds = self._open(table)
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            ds.cleanup_old_versions(older_than=keep_for, error_if_tagged_old_versions=False)
        return self.state(table)

    # --- reading -----------------------------------------------------------------------------------

    def read(
        self,
        table: str,
        schema: pa.Schema,
        columns: Sequence[str] | None = None,
        where: pc.Expression | None = None,
    ) -> pa.Table:
        """Rows (all, or those matching ``where``) with only ``columns``; empty if never written."""
        ds = self._open(table)
        cols = list(columns) if columns is not None else None
        if ds is None:
            empty = schema.empty_table()
            return empty.select(cols) if cols is not None else empty
        missing = [f for f in schema if f.name not in set(ds.schema.names)]
        if missing:  # columns added to the contract after this version was written read as nulls
            present = [c for c in (cols or schema.names) if c in set(ds.schema.names)]
            out = self._scan(table, ds, present, where)
            for f in missing:
                if cols is None or f.name in cols:
                    out = out.append_column(f, pa.nulls(out.num_rows, f.type))
            return out.select(cols or schema.names)
        return self._scan(table, ds, cols, where)

    def _scan(self, table: str, ds: lance.LanceDataset, cols: list[str] | None, where) -> pa.Table:
        try:
            return ds.to_table(columns=cols, filter=where)
        except (OSError, ValueError, RuntimeError) as exc:
            raise DamagedStore(table, _damaged_file(exc) or self.uri(table), _short(exc), self.base) from None

    def count(self, table: str) -> int:
        ds = self._open(table)
        return 0 if ds is None else ds.count_rows()

    def version(self, table: str) -> int | None:
        ds = self._open(table)
        return None if ds is None else ds.version

    def state(self, table: str) -> TableState | None:
        ds = self._open(table)
        if ds is None:
            return None
        frags = ds.get_fragments()
        files = sum(len(f.data_files()) for f in frags)
        return TableState(table, ds.version, ds.count_rows(), len(frags), files)

    def names(self) -> list[str]:
        """The tables written so far (local roots: by folder; object stores: the registry passes them)."""
        if not self.is_local:
            raise NotImplementedError
        if not os.path.isdir(self.base):
            return []
        return sorted(n[: -len(SUFFIX)] for n in os.listdir(self.base) if n.endswith(SUFFIX))

    def verify(self, table: str) -> Iterator[tuple[str, str]]:
        """Read every data file of a table fully; yields ``(file, problem)`` for each that fails."""
        ds = self._open(table)
        if ds is None:
            return
        for frag in ds.get_fragments():
            try:
                for batch in frag.to_batches():
                    batch.validate(full=True)
            except (OSError, ValueError, RuntimeError, pa.ArrowException) as exc:
                files = [f.path for f in frag.data_files()]
                yield (", ".join(f"{self.uri(table)}/data/{p}" for p in files), _short(exc))

    # --- versions ----------------------------------------------------------------------------------

    def tag(self, table: str, tag: str, version: int) -> None:
        """Protect ``version`` of ``table`` from clean-up under ``tag`` (idempotent)."""
        if not _TAG.match(tag):
            raise StoreError(f"bad tag {tag!r}: letters, digits, '.', '_' and '-' only")
        ds = self._open(table)
        if ds is None:
            return
        existing = ds.tags.list()
        if tag in existing:
            if existing[tag]["version"] != version:
                raise StoreError(
                    f"table {table}: tag {tag!r} already names version {existing[tag]['version']}"
                )
            return
        ds.tags.create(tag, version)

    def tagged_versions(self, tag: str, tables: Sequence[str]) -> dict[str, int]:
        """The version each table has under ``tag`` (tables without it did not exist then)."""
        out: dict[str, int] = {}
        for table in tables:
            ds = self._open(table)
            if ds is None:
                continue
            tags = ds.tags.list()
            if tag in tags:
                out[table] = int(tags[tag]["version"])
        return out

    def versions_at(self, when: datetime, tables: Sequence[str]) -> dict[str, int]:
        """The version each table had at ``when`` (the last commit at or before it)."""
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        out: dict[str, int] = {}
        for table in tables:
            ds = self._open(table)
            if ds is None:
                continue
            best = None
            for v in ds.versions():
                ts = v["timestamp"]
                ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts
                if ts <= when:
                    best = int(v["version"])
            if best is not None:
                out[table] = best
        return out


def _damaged_file(exc: BaseException) -> str | None:
    m = re.search(r"([^\s'\"]+\.lance)\b", str(exc))
    return m.group(1) if m else None


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def lance_storage_options(fs: Any, storage_options: dict[str, Any] | None) -> dict[str, str] | None:
    """Translate fsspec/s3fs options (and the AWS_* environment) into Lance's object-store options."""
    opts: dict[str, str] = {}
    so = storage_options or {}
    endpoint = (so.get("client_kwargs") or {}).get("endpoint_url") or so.get("endpoint_url")
    endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        opts["aws_endpoint"] = endpoint
        if endpoint.startswith("http://"):
            opts["allow_http"] = "true"
    for ours, theirs in (
        ("key", "aws_access_key_id"),
        ("secret", "aws_secret_access_key"),
        ("token", "aws_session_token"),
    ):
        if so.get(ours):
            opts[theirs] = str(so[ours])
    region = (so.get("client_kwargs") or {}).get("region_name") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        opts["aws_region"] = region
    return opts or None
