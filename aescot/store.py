"""The dataset store: content-addressed images and append-only, per-stage Parquet tables
under one root, which is a local path by default or any fsspec URI (``s3://bucket/ds``).

Layout::

    <root>/images/<id[:2]>/<id>.<ext>        content-addressed blobs (id = SHA-256 of bytes)
    <root>/tables/<table>/part-<ns>-<rand>.parquet   one part per append, never rewritten
    <root>/snapshots/...                     raw pulls (e.g. Label Studio exports), JSON

Appends are atomic: a part is written under a hidden temporary name and renamed into
place (local), or written with one PUT (object stores, where an object appears whole or
not at all). Readers only see ``part-*.parquet`` files, so a crash mid-write leaves
nothing a later read trips over; the temporary files of writers that died are removed by the
next write into the same folder. Reading de-duplicates on the table's key, latest part wins,
so a retried append can never produce two rows for one id.

A part that cannot be read (truncated, zero bytes, garbled) raises :class:`DamagedStore`, one
line naming the table and the file; :mod:`aescot.doctor` lists and moves such files aside.
Opening a store never creates its root unless ``create=True`` (read commands pass ``False``).
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import socket
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from aescot.contracts import arrow_schema, validate_many
from aescot.errors import DamagedStore, NoDataset, StoreError
from aescot.ids import sha256_bytes

__all__ = ["TABLES", "DamagedStore", "DatasetStore", "NoDataset", "StoreError", "TableSpec", "open_store"]

TMP_PREFIX = ".tmp-"
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


class DatasetStore:
    """One dataset root: images plus stage tables. Cheap to create; pass the root URI around."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        storage_options: dict[str, Any] | None = None,
        create: bool = True,
    ):
        root = os.fspath(root)
        self.fs, path = fsspec.core.url_to_fs(root, **(storage_options or {}))
        self.is_local = isinstance(self.fs, LocalFileSystem)
        if self.is_local:
            path = str(Path(path).resolve())
        self.path = path.rstrip("/")
        self.root = self.path if self.is_local else root.rstrip("/")
        self.storage_options = storage_options or {}
        self._cleaned: set[str] = set()
        if not create:
            if not self.is_dataset():
                raise NoDataset(self.root)
            return
        try:
            self.fs.makedirs(self.path, exist_ok=True)
        except Exception as exc:
            raise StoreError(f"cannot create dataset root {root!r}: {exc}") from exc

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
        if not self.exists(key):
            self.write_bytes(key, data)
        return image_id, key

    def read_bytes(self, key: str) -> bytes:
        return self.fs.cat_file(self._full(key))

    def write_bytes(self, key: str, data: bytes) -> None:
        """Write a whole object atomically (temp file + rename locally, one PUT remotely)."""
        full = self._full(key)
        parent = posixpath.dirname(full) if not self.is_local else os.path.dirname(full)
        self.fs.makedirs(parent, exist_ok=True)
        if self.is_local:
            self._clean_dead_temps(parent)
            tmp = os.path.join(parent, f"{TMP_PREFIX}{_HOST}-{os.getpid()}-{uuid.uuid4().hex}")
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, full)
        else:
            self.fs.pipe_file(full, data)

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

    def _table_dir(self, table: str) -> str:
        return f"tables/{table}"

    def _parts(self, table: str) -> list[str]:
        return [
            k
            for k in self.list_keys(self._table_dir(table))
            if posixpath.basename(k).startswith("part-") and k.endswith(".parquet")
        ]

    def append(self, table: str, records: Iterable[dict[str, Any]], validate: bool = True) -> int:
        """Append records as one new part, atomically. Validates against the table's contract."""
        spec = TABLES[table]
        rows = list(records)
        if not rows:
            return 0
        if validate and spec.contract:
            validate_many(spec.contract, rows)
        arrow = pa.Table.from_pylist(rows, schema=spec.arrow_schema())
        buf = io.BytesIO()
        pq.write_table(arrow, buf, compression="zstd")
        name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        self.write_bytes(f"{self._table_dir(table)}/{name}", buf.getvalue())
        return len(rows)

    def read_arrow(self, table: str, columns: list[str] | None = None, latest: bool = True) -> pa.Table:
        """The table as Arrow; with ``latest`` only the last-written row per key is kept."""
        spec = TABLES[table]
        schema = spec.arrow_schema()
        parts = self._parts(table)
        want = None if columns is None else list(dict.fromkeys([*spec.key, *columns]) if latest else columns)
        if not parts:
            empty = pa.Table.from_pylist([], schema=schema)
            return empty.select(want) if want else empty
        tables = [self._read_part(table, key, want) for key in parts]
        merged = pa.concat_tables(tables, promote_options="default")
        if latest and merged.num_rows:
            merged = _keep_last(merged, spec.key)
        if columns is not None:
            merged = merged.select(columns)
        return merged

    def _arrow_fs(self):
        """The filesystem for pyarrow's own readers (None locally: plain paths are read directly).

        Never hand pyarrow an fsspec *file handle* with a column list: pyarrow 26 then aborts the
        process at exit now and then (``terminate called without an active exception``, exit 134).
        """
        if self.is_local:
            return None
        from pyarrow.fs import FSSpecHandler, PyFileSystem

        if not hasattr(self, "_pa_fs"):
            self._pa_fs = PyFileSystem(FSSpecHandler(self.fs))
        return self._pa_fs

    def _read_part(self, table: str, key: str, columns: list[str] | None) -> pa.Table:
        """One part file as Arrow; a damaged file raises :class:`DamagedStore` naming it."""
        full = self._full(key)
        try:
            return pq.read_table(full, columns=columns, filesystem=self._arrow_fs())
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise DamagedStore(table, self.uri(key), _short(exc), self.root) from None

    def part_keys(self, table: str) -> list[str]:
        """The part files of a table (keys relative to the root), in write order."""
        return self._parts(table)

    def part_metadata(self, table: str, key: str) -> pq.FileMetaData:
        """A part's Parquet footer (cheap: the data pages are not read)."""
        try:
            return pq.read_metadata(self._full(key), filesystem=self._arrow_fs())
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise DamagedStore(table, self.uri(key), _short(exc), self.root) from None

    def verify_part(self, table: str, key: str) -> pa.Table:
        """Read every column of a part and validate it fully (raises :class:`DamagedStore`)."""
        data = self._read_part(table, key, None)
        try:
            data.validate(full=True)
        except (pa.ArrowException, ValueError) as exc:
            raise DamagedStore(table, self.uri(key), _short(exc), self.root) from None
        return data

    def read(self, table: str, columns: list[str] | None = None, latest: bool = True) -> list[dict[str, Any]]:
        """The table as a list of dicts (latest row per key unless ``latest=False``)."""
        return self.read_arrow(table, columns, latest).to_pylist()

    def iter_rows(self, table: str, batch_size: int = 1024) -> Iterator[dict[str, Any]]:
        """Stream the latest rows without materialising Python objects for all of them at once."""
        for batch in self.read_arrow(table).to_batches(max_chunksize=batch_size):
            yield from batch.to_pylist()

    def keys(self, table: str) -> set[Any]:
        """The set of keys present (a single value for one-column keys, else tuples)."""
        spec = TABLES[table]
        t = self.read_arrow(table, columns=list(spec.key), latest=False)
        cols = [t.column(k).to_pylist() for k in spec.key]
        return set(cols[0]) if len(cols) == 1 else set(zip(*cols))

    def count(self, table: str) -> int:
        return len(self.keys(table))

    def compact(self, table: str) -> int:
        """Rewrite a table as one part holding only the latest rows; returns the row count.

        Safe against crashes: the new part lands before old parts are removed, and readers
        de-duplicate on the key in between.
        """
        old = self._parts(table)
        if len(old) <= 1:
            return self.read_arrow(table).num_rows
        data = self.read_arrow(table)
        self.append(table, data.to_pylist(), validate=False)
        for key in old:
            self.fs.rm(self._full(key))
        return data.num_rows


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _keep_last(table: pa.Table, key: tuple[str, ...]) -> pa.Table:
    """Keep the last row for each key value (rows are in write order)."""
    idx = pa.array(range(table.num_rows), pa.int64())
    with_idx = table.select(list(key)).append_column("__i", idx)
    last = with_idx.group_by(list(key), use_threads=False).aggregate([("__i", "max")])
    keep = pc.sort_indices(last.column("__i_max"))
    return table.take(pc.take(last.column("__i_max"), keep))


def open_store(root: str | os.PathLike[str] | DatasetStore, create: bool = True) -> DatasetStore:
    """Accept a store or its root URI (``create=False``: raise :class:`NoDataset` if there is none)."""
    return root if isinstance(root, DatasetStore) else DatasetStore(root, create=create)
