"""The dataset store: content-addressed images and keyed stage tables under one root, which is a
local path by default or any fsspec URI (``s3://bucket/ds``).

Layout::

    <root>/images/<id[:2]>/<id>.<ext>    content-addressed blobs (id = SHA-256 of bytes)
    <root>/tables/<table>.lance/          one Lance dataset per stage table (aescot.tables)
    <root>/snapshots/...                  raw pulls (e.g. Label Studio exports), JSON

Blob writes are atomic (temp file + rename locally, one PUT on object stores). Table writes are
keyed upserts committed atomically by :mod:`aescot.tables`: a retried batch leaves one row per
key, a killed writer leaves nothing a reader sees. Reads push filters and column projections into
the scan (``read_arrow(table, columns, keys=...)``); backlogs are key anti-joins
(:meth:`DatasetStore.backlog`) on projected key columns.

A data file that cannot be read raises :class:`DamagedStore`, one line naming the table and the
file; :mod:`aescot.doctor` lists them. A first-release store (part files) is refused with the
command that converts it (``aescot migrate``, :mod:`aescot.legacy`). Opening a store never
creates its root unless ``create=True`` (read commands pass ``False``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import posixpath
import socket
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
from fsspec.implementations.local import LocalFileSystem

from aescot import status_cache
from aescot.contracts import arrow_schema, validate_many
from aescot.errors import DamagedStore, NoDataset, StoreError
from aescot.ids import sha256_bytes
from aescot.tables import LanceTables, TableState, lance_storage_options

__all__ = ["TABLES", "DamagedStore", "DatasetStore", "NoDataset", "StoreError", "TableSpec", "open_store"]

TMP_PREFIX = ".tmp-"
TMP_DIR = ".tmp"  # under the root: every local write's temp file, renamed into place when complete
_HOST = socket.gethostname().replace("-", "_")[:32]
STALE_TMP_S = 3600.0  # a temp file of another host (or an old-style name) is a dead writer's after this
# Markers of a dataset root: a read-only open requires one of them.
_DATASET_MARKERS = ("tables", "images", ".labelstudio")


@dataclass(frozen=True)
class TableSpec:
    """A stage table: its key (for de-duplication on read) and its contract / Arrow schema."""

    name: str
    key: tuple[str, ...]
    contract: str | None = None
    schema: pa.Schema | None = None

    def arrow_schema(self) -> pa.Schema:
        if self.schema is not None:
            return self.schema
        assert self.contract is not None
        return arrow_schema(self.contract)


TABLES: dict[str, TableSpec] = {}


def register_table(spec: TableSpec) -> TableSpec:
    """Declare a table (idempotent). Modules register their own internal tables at import."""
    TABLES[spec.name] = spec
    return spec


# modules whose import registers the tables they own: the one list doctor, status, compact and
# migrate import so that every table's key and schema are known (tests/test_store.py checks it
# against the tables a full run writes)
TABLE_MODULES = (
    "aescot.labelstudio.push",
    "aescot.labelstudio.collect",
    "aescot.labelstudio.invalid",
    "aescot.labelstudio.project",
    "aescot.labelstudio.outlines",
    "aescot.dedupe.report",
    "aescot.generate.groups",
    "aescot.export.splits",
    "aescot.export.history",
)


def register_all_tables() -> dict[str, TableSpec]:
    """Import every module in :data:`TABLE_MODULES` (one missing, e.g. an optional extra not
    installed, leaves its tables known by name only) and return :data:`TABLES`."""
    from importlib import import_module

    for module in TABLE_MODULES:
        try:
            import_module(module)
        except ImportError:
            pass
    return TABLES


for _spec in (
    TableSpec("sources", ("source_id",), "source"),
    TableSpec("rejects", ("reject_id",), "reject"),
    TableSpec("candidates", ("candidate_id",), "candidate"),
    TableSpec("items", ("item_id",), "screening_item"),
    TableSpec("annotations", ("annotation_id",), "annotation"),
    TableSpec("labels", ("item_id",), "label"),
    TableSpec("rationales", ("rationale_id",), "rationale"),
    TableSpec("selections", ("item_id",), "selection"),
):
    register_table(_spec)


# botocore (under s3fs, which writes the images) gives up after 5 attempts in ~10 s by default ("legacy"
# mode): an S3 server down for 30 s turned sources into generation_failed rejects. Standard mode with
# 20 attempts backs off exponentially (up to 20 s a wait), ~2.5 minutes in all. Given options win.
S3_RETRIES = {"mode": "standard", "max_attempts": 20}


def _with_retries(root: str, options: dict[str, Any]) -> dict[str, Any]:
    if not root.startswith(("s3://", "s3a://")):
        return options
    config = dict(options.get("config_kwargs") or {})
    config.setdefault("retries", dict(S3_RETRIES))
    return {**options, "config_kwargs": config}


class DatasetStore:
    """One dataset root: images plus stage tables. Cheap to create; pass the root URI around."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        storage_options: dict[str, Any] | None = None,
        create: bool = True,
    ):
        root = os.fspath(root)
        self.fs, path = fsspec.core.url_to_fs(root, **_with_retries(root, storage_options or {}))
        self.is_local = isinstance(self.fs, LocalFileSystem)
        if self.is_local:
            path = str(Path(path).resolve())
        self.path = path.rstrip("/")
        self.root = self.path if self.is_local else root.rstrip("/")
        self.storage_options = storage_options or {}
        self._cleaned: set[str] = set()
        self._tables: LanceTables | None = None
        self.as_of: str | None = None
        if not create:
            if not self.is_dataset():
                raise NoDataset(self.root)
            return
        try:
            self.fs.makedirs(self.path, exist_ok=True)
        except Exception as exc:
            raise StoreError(f"cannot create dataset root {root!r}: {exc}") from exc
        if self.is_local:
            status_cache.account_new_store(self.path)  # a store begun here: status is known from the start

    def is_dataset(self) -> bool:
        """Whether the root holds a dataset (its tables, images or embedded Label Studio folder)."""
        try:
            return any(self.fs.isdir(self._full(m)) for m in _DATASET_MARKERS)
        except OSError:
            return False

    def __repr__(self) -> str:
        return f"DatasetStore({self.root!r})"

    # --- paths -------------------------------------------------------------------------------------

    def _full(self, key: str) -> str:
        return posixpath.join(self.path, key) if not self.is_local else os.path.join(self.path, key)

    def uri(self, key: str) -> str:
        """A URI another process can open: an absolute path locally, ``s3://...`` remotely."""
        if self.is_local:
            return self._full(key)
        return f"{self.root}/{key}"

    def local_path(self, key: str) -> Path | None:
        """The local filesystem path of ``key``, or None on an object store."""
        return Path(self._full(key)) if self.is_local else None

    def exists(self, key: str) -> bool:
        return self.fs.exists(self._full(key))

    # --- blobs -------------------------------------------------------------------------------------

    @staticmethod
    def image_key(image_id: str, ext: str = "png") -> str:
        return f"images/{image_id[:2]}/{image_id}.{ext}"

    def put_image(self, data: bytes, ext: str = "png") -> tuple[str, str]:
        """Store image bytes content-addressed; returns ``(image_id, key)``. Idempotent."""
        image_id = sha256_bytes(data)
        key = self.image_key(image_id, ext)
        # On an object store one PUT of the same bytes is cheaper than the check: s3fs's exists() of a
        # missing key is a HEAD plus a LIST (is it a "directory"?), and a LIST costs with the bucket's size.
        if not self.is_local or not self.exists(key):
            self.write_bytes(key, data)
        return image_id, key

    def read_bytes(self, key: str) -> bytes:
        return self.fs.cat_file(self._full(key))

    def write_bytes(self, key: str, data: bytes) -> None:
        """Write a whole object atomically (temp file + rename locally, one PUT remotely)."""
        full = self._full(key)
        if not self.is_local:
            self.fs.pipe_file(full, data)
            return
        if not status_cache.is_image_key(key):
            self._write_local(full, data)
            return
        # an image: its folder's times around the write let status know the change was this addition
        before = status_cache.before_image_write(self.path, key)
        ok = False
        try:
            self._write_local(full, data)
            ok = True
        finally:
            status_cache.image_written(self.path, key, before, ok)

    def _write_local(self, full: str, data: bytes) -> None:
        parent = os.path.dirname(full)
        self.fs.makedirs(parent, exist_ok=True)  # object stores have no folders (s3fs: a HEAD bucket)
        # Temps live in the root's own temp folder, not beside their target: finding a dead writer's
        # temps then lists that small folder, not an image folder that grows with the store.
        temps = os.path.join(self.path, TMP_DIR)
        try:
            self._write_via(temps, full, data)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            self._write_via(parent, full, data)  # the target is on another filesystem under the root

    def _write_via(self, folder: str, full: str, data: bytes) -> None:
        os.makedirs(folder, exist_ok=True)
        self._clean_dead_temps(folder)
        tmp = os.path.join(folder, f"{TMP_PREFIX}{_HOST}-{os.getpid()}-{uuid.uuid4().hex}")
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, full)
        except OSError:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise

    def _clean_dead_temps(self, folder: str) -> int:
        """Remove temp files left in ``folder`` by writers that died (once per folder and process).

        A temp name carries its writer's host and pid: one of this host whose process is gone is
        removed at once; others (another host, old-style names) once older than an hour.
        """
        if folder in self._cleaned:
            return 0
        self._cleaned.add(folder)
        removed = 0
        try:
            names = [n for n in os.listdir(folder) if n.startswith(TMP_PREFIX)]
        except OSError:
            return 0
        now = time.time()
        for name in names:
            path = os.path.join(folder, name)
            parts = name[len(TMP_PREFIX) :].split("-")
            dead = False
            if len(parts) == 3 and parts[0] == _HOST and parts[1].isdigit():
                dead = not _pid_alive(int(parts[1]))
            if not dead:
                try:
                    dead = now - os.path.getmtime(path) > STALE_TMP_S
                except OSError:
                    continue
            if dead:
                try:
                    os.remove(path)
                    removed += 1
                except OSError:
                    pass
        return removed

    def delete(self, key: str) -> None:
        """Remove one object; a missing one is not an error."""
        try:
            self.fs.rm_file(self._full(key))
        except FileNotFoundError:
            pass

    def write_json(self, key: str, obj: Any) -> None:
        self.write_bytes(key, json.dumps(obj, ensure_ascii=False, indent=1, default=str).encode("utf-8"))

    def read_json(self, key: str) -> Any:
        return json.loads(self.read_bytes(key))

    def list_keys(self, prefix: str) -> list[str]:
        """Keys under ``prefix`` (relative to the root), sorted; hidden temp files excluded."""
        base = self._full(prefix)
        if not self.fs.exists(base):
            return []
        out = []
        for p in self.fs.find(base):
            rel = os.path.relpath(p, self.path) if self.is_local else p[len(self.path) + 1 :]
            if not posixpath.basename(rel).startswith((".", "_")):
                out.append(rel.replace(os.sep, "/"))
        return sorted(out)

    # --- tables ------------------------------------------------------------------------------------

    @property
    def tables(self) -> LanceTables:
        """The table format (one Lance dataset per table under ``<root>/tables/``)."""
        return self._tables if self._tables is not None else self._open_tables()

    def _open_tables(self, check: bool = True) -> LanceTables:
        if check:
            self._check_layout()
        opts = lance_storage_options(self.storage_options) if not self.is_local else None
        self._tables = LanceTables(self.uri("tables"), opts, self.is_local)
        if self.is_local:
            self._tables.on_commit = self._committed
        return self._tables

    def _committed(self, table: str, kind: str, batch: pa.Table | None) -> None:
        from aescot.status_record import record_commit  # what ``aescot status`` shows, as it changes

        record_commit(self.root, self.tables, table, kind, batch)

    def _check_layout(self) -> None:
        """Refuse a first-release store (part files) until ``aescot migrate`` has converted it."""
        old = self.legacy_tables()
        if old:
            raise StoreError(
                f"{self.root} holds first-release tables ({', '.join(old)}) in the old part-file layout; "
                f"convert them once with: aescot migrate {self.root}"
            )

    def _entries(self, prefix: str) -> list[str]:
        full = self._full(prefix)
        try:
            if not self.fs.isdir(full):
                return []
            return sorted(posixpath.basename(p.rstrip("/")) for p in self.fs.ls(full, detail=False))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def legacy_parts(self, table: str) -> list[str]:
        """The part files of a first-release table (keys relative to the root), in write order."""
        names = self._entries(f"tables/{table}")
        return [f"tables/{table}/{n}" for n in names if n.startswith("part-") and n.endswith(".parquet")]

    def legacy_tables(self) -> list[str]:
        """Tables still in the first-release layout (folders of part files; :mod:`aescot.legacy`)."""
        names = [
            n for n in self._entries("tables") if not n.startswith((".", "_")) and not n.endswith(".lance")
        ]
        return [n for n in names if self.legacy_parts(n)]

    def upsert(self, table: str, records: Iterable[dict[str, Any]] | pa.Table, validate: bool = True) -> int:
        """Insert or replace rows by the table's key, atomically (one commit).

        Dict records are validated against the table's contract; an Arrow table is cast to the
        table's schema. A batch written twice (a retry) leaves one row per key.
        """
        spec = TABLES[table]
        schema = spec.arrow_schema()
        if isinstance(records, pa.Table):
            data = records
            if not data.num_rows:
                return 0
            data = data.select(schema.names).cast(schema)
        else:
            rows = list(records)
            if not rows:
                return 0
            if validate and spec.contract:
                validate_many(spec.contract, rows)
            data = pa.Table.from_pylist(rows, schema=schema)
        return self.tables.upsert(table, data, spec.key)

    def read_arrow(
        self,
        table: str,
        columns: list[str] | None = None,
        where: pc.Expression | None = None,
        keys: Iterable[Any] | pa.Array | None = None,
    ) -> pa.Table:
        """The table's rows as Arrow: only ``columns``, only rows matching ``where`` and/or whose
        key is in ``keys`` (the filter is pushed into the scan and uses the key index)."""
        spec = TABLES[table]
        if keys is not None:
            values = (
                keys if isinstance(keys, (pa.Array, pa.ChunkedArray)) else pa.array(list(keys), pa.string())
            )
            if len(values) == 0:
                empty = spec.arrow_schema().empty_table()
                return empty.select(columns) if columns is not None else empty
            expr = pc.field(spec.key[0]).isin(values)
            where = expr if where is None else (where & expr)
        return self.tables.read(table, spec.arrow_schema(), columns, where)

    def read(
        self,
        table: str,
        columns: list[str] | None = None,
        where: pc.Expression | None = None,
        keys: Iterable[Any] | pa.Array | None = None,
    ) -> list[dict[str, Any]]:
        """:meth:`read_arrow` as a list of dicts: for a batch's rows, never a whole large table."""
        return self.read_arrow(table, columns, where, keys).to_pylist()

    def column(
        self, table: str, column: str | None = None, where: pc.Expression | None = None
    ) -> pa.ChunkedArray:
        """One column (the key by default) of all (or matching) rows: a projection, never whole rows."""
        name = column or TABLES[table].key[0]
        return self.read_arrow(table, [name], where).column(name)

    def backlog(
        self,
        table: str,
        done: str,
        on: str | None = None,
        done_on: str | None = None,
        where: pc.Expression | None = None,
    ) -> pa.Array:
        """Keys of ``table`` (column ``on``, its key by default) with no row in ``done`` (matched on
        ``done_on``, default the same name): a key anti-join on two projected columns, sorted."""
        on = on or TABLES[table].key[0]
        done_on = done_on or on
        left = self.read_arrow(table, [on], where)
        right = self.read_arrow(done, [done_on]).rename_columns([on])
        todo = left.join(right, keys=on, join_type="left anti", use_threads=False).column(on)
        todo = pc.unique(todo.combine_chunks()) if len(todo) else todo.combine_chunks()
        return pc.take(todo, pc.sort_indices(todo))

    def count(self, table: str) -> int:
        return self.tables.count(table)

    def compact(self, table: str | None = None) -> list[TableState]:
        """Compact one table (or every table): merge fragments, update indexes, drop old versions."""
        names = [table] if table else self.table_names()
        keys = {name: TABLES[name].key if name in TABLES else () for name in names}
        return [st for name in names if (st := self.tables.compact(name, keys[name])) is not None]

    def table_names(self) -> list[str]:
        """The tables that exist in this store (registered ones plus any written by other modules)."""
        if self.is_local:
            return self.tables.names()
        return [name for name in TABLES if self.tables.version(name) is not None]

    def table_state(self, table: str) -> TableState | None:
        return self.tables.state(table)

    def verify_table(self, table: str) -> list[tuple[str, str]]:
        """Every data file of ``table`` read fully: ``(file, problem)`` for each that fails."""
        return list(self.tables.verify(table))

    def table_versions(self) -> dict[str, int]:
        """The current (or pinned) version of every table: what an export cites."""
        out = {}
        for name in self.table_names():
            v = self.tables.version(name)
            if v is not None:
                out[name] = v
        return out

    def tag_versions(self, tag: str, versions: dict[str, int]) -> None:
        """Protect these table versions from clean-up under ``tag`` (an export's id)."""
        for name, version in versions.items():
            self.tables.tag(name, tag, version)

    def at(self, ref: str) -> DatasetStore:
        """A read-only view of this store as it was: ``ref`` is a tag an export wrote, or an ISO time."""
        names = self.table_names()
        versions = self.tables.tagged_versions(ref, names)
        if not versions:
            try:
                when = datetime.fromisoformat(ref)
            except ValueError:
                raise StoreError(f"no table of {self.root} has a version tagged {ref!r}") from None
            versions = self.tables.versions_at(when, names)
        view = DatasetStore.__new__(DatasetStore)
        view.__dict__.update(self.__dict__)
        view._tables = LanceTables(self.tables.base, self.tables.storage_options, self.is_local)
        view._tables.pinned = dict(versions)
        view.as_of = ref
        return view


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def open_store(root: str | os.PathLike[str] | DatasetStore, create: bool = True) -> DatasetStore:
    """Accept a store or its root URI (``create=False``: raise :class:`NoDataset` if there is none)."""
    return root if isinstance(root, DatasetStore) else DatasetStore(root, create=create)
