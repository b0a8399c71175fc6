"""The ingest's persisted source index: every source's id, colour signature and hashes as words, in
files that grow with each batch, so an ingest call reads them instead of scanning ``sources``.

Ingest compares each new file with every stored source. Building that index from the table means a
scan of four columns and parsing every hex hash, per call: at 100k sources a quarter of a 32-file
call's CPU, growing with the store. This index holds the same columns in their searched form
(native uint64 words, :func:`~aescot.neardup.search.pack_words`) as Arrow IPC **segments** under
``<root>/indexes/sources/``, listed by ``index.json`` with the row count they cover:

* ingest appends one segment per committed batch (after the rows commit, never before) and rewrites
  the small listing; segments merge like a binary counter (the newest into the one before once it
  is at least half its size), so each row is rewritten O(log n) times and a store holds O(log n)
  segments;
* it is used only when its row count equals the table's (a count from the table's manifest, not a
  scan). Sources are only ever added, by ingest, one row per key: a batch whose rows the index
  missed (a run killed between the commit and the index write, two runs at once, a migration) makes
  the counts differ and the next call rebuilds the index from the table in one scan. A segment that
  cannot be read is rebuilt the same way; the index is a cache, never the record.
"""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from aescot.neardup.search import arrow_hashes_to_words, pack_words, unpack_words
from aescot.store import DatasetStore

log = logging.getLogger(__name__)

FOLDER = "indexes/sources"
LISTING = f"{FOLDER}/index.json"
FORMAT = 1
HASHES = ("phash", "object_phash")  # hex columns of ``sources``, stored as words + hex width
_SCHEMA = pa.schema(
    [
        ("source_id", pa.string()),
        ("colour_hash", pa.string()),
        *[f for h in HASHES for f in ((f"{h}_words", pa.large_binary()), (f"{h}_width", pa.uint16()))],
    ]
)


def _packed(table: pa.Table) -> pa.Table:
    """Rows of ``sources`` (hex hashes) -> the index's columns, sorted by ``source_id``."""
    table = table.sort_by("source_id")
    n = table.num_rows
    columns = [table.column("source_id").cast(pa.string()), table.column("colour_hash").cast(pa.string())]
    for name in HASHES:
        words, widths = pack_words(arrow_hashes_to_words(table.column(name)), n)
        columns += [words, widths]
    return pa.Table.from_arrays(columns, schema=_SCHEMA).combine_chunks()


def _array(table: pa.Table, name: str) -> pa.Array:
    """One column as one array: a segment's columns are single chunks (no copy)."""
    column = table.column(name)
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _ipc(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_file(sink, _SCHEMA) as writer:
        writer.write_table(table)
    return sink.getvalue()


@dataclass
class SourceIndex:
    """The loaded index: one Arrow table per segment (oldest first), each sorted by ``source_id``."""

    store: DatasetStore
    tables: list[pa.Table] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # the segments' file names

    @property
    def rows(self) -> int:
        return sum(t.num_rows for t in self.tables)

    def sorted_ids(self) -> list[pa.Array]:
        """Each segment's ``source_id`` column, sorted."""
        return [_array(t, "source_id") for t in self.tables]

    def hashes(
        self, column: str
    ) -> Iterator[tuple[dict[int, tuple[np.ndarray, np.ndarray]], pa.Array, pa.Array]]:
        """Per segment: hash column ``column`` (phash, object_phash) as ``{hex width: (row positions,
        words)}`` (:func:`~aescot.neardup.search.unpack_words`), and its ids and colour signatures."""
        for t in self.tables:
            groups = unpack_words(_array(t, f"{column}_words"), _array(t, f"{column}_width"))
            yield groups, _array(t, "source_id"), _array(t, "colour_hash")

    def extend(self, records: list[dict]) -> None:
        """Add the rows of a batch that has just committed to ``sources`` (new keys only)."""
        if not records:
            return
        names = ("source_id", "colour_hash", *HASHES)
        rows = pa.Table.from_pylist(
            [{k: r.get(k) for k in names} for r in records],
            schema=pa.schema([(k, pa.string()) for k in names]),
        )
        segment = _packed(rows)
        # the newest segments that merge with it: each at most twice the rows merged so far
        merged, rows_so_far = 0, segment.num_rows
        while merged < len(self.tables) and self.tables[-1 - merged].num_rows <= 2 * rows_so_far:
            rows_so_far += self.tables[-1 - merged].num_rows
            merged += 1
        keep = len(self.tables) - merged
        gone = self.names[keep:]
        if merged:
            segment = pa.concat_tables([*self.tables[keep:], segment]).sort_by("source_id")
        self.tables = [*self.tables[:keep], segment]
        self.names = [*self.names[:keep], self._write(segment)]
        self._list()
        for name in gone:  # after the listing no longer names them
            self.store.delete(f"{FOLDER}/{name}")

    def _write(self, segment: pa.Table) -> str:
        name = f"seg-{uuid.uuid4().hex}.arrow"
        self.store.write_bytes(f"{FOLDER}/{name}", _ipc(segment.combine_chunks()))
        return name

    def _list(self) -> None:
        segments = [{"name": n, "rows": t.num_rows} for n, t in zip(self.names, self.tables)]
        self.store.write_json(LISTING, {"format": FORMAT, "rows": self.rows, "segments": segments})


def _open_segment(store: DatasetStore, name: str) -> pa.Table:
    """One segment file, memory-mapped on a local root (pages are read as they are touched: a
    binary search of the sorted ids touches a few), read whole from an object store."""
    key = f"{FOLDER}/{name}"
    path = store.local_path(key)
    source = pa.memory_map(str(path)) if path is not None else pa.py_buffer(store.read_bytes(key))
    return pa.ipc.open_file(source).read_all()


def _read(store: DatasetStore, rows: int) -> SourceIndex | None:
    """The index as listed, when it covers exactly ``rows`` sources and every segment reads."""
    try:
        listing = store.read_json(LISTING)
    except (OSError, ValueError):
        return None
    if not isinstance(listing, dict) or listing.get("format") != FORMAT or listing.get("rows") != rows:
        return None
    index = SourceIndex(store)
    try:
        for entry in listing["segments"]:
            table = _open_segment(store, str(entry["name"]))
            if table.num_rows != int(entry["rows"]) or not table.schema.equals(_SCHEMA):
                return None
            index.tables.append(table)
            index.names.append(str(entry["name"]))
    except (OSError, KeyError, TypeError, ValueError, pa.ArrowException):
        return None
    return index if index.rows == rows else None


def load_source_index(store: DatasetStore) -> SourceIndex:
    """The index of every source in ``store``: read from its segments when they cover the table,
    else rebuilt from one scan of the table's projected columns (and written for the next call)."""
    found = _read(store, store.count("sources"))
    if found is not None:
        return found
    cols = store.read_arrow("sources", columns=["source_id", "colour_hash", *HASHES])
    index = SourceIndex(store)
    if cols.num_rows:
        log.info("rebuilding the source index of %s from %d sources", store.root, cols.num_rows)
        old = _listed(store)
        index.tables = [_packed(cols)]
        index.names = [index._write(index.tables[0])]
        index._list()
        for name in old:
            store.delete(f"{FOLDER}/{name}")
    return index


def _listed(store: DatasetStore) -> list[str]:
    """Segment files in the folder (listed or left by a killed writer)."""
    return [k.rsplit("/", 1)[-1] for k in store.list_keys(FOLDER) if k.endswith(".arrow")]


__all__ = ["SourceIndex", "load_source_index"]
