"""The table format under the store: one Lance dataset per stage table. Only this module imports
``lance``; stages use :class:`aescot.store.DatasetStore` and never list files.

Why Lance (``bench/table_formats.py`` measures it beside Delta Lake at 16k and 128k keys): our
writes are keyed upserts of one batch (tens of rows with random content-hash keys) and our reads
are "these keys" or "the key column". Random hash keys sit in every file, so min/max pruning skips
nothing and a Delta ``merge`` rewrites the files it touches: at 128k keys its 32-row upsert took
12x what it took at 16k, Lance's 2.2x, and Lance was 0.03-0.25x Delta's time per upsert. Left
uncompacted (hundreds of fragments), Lance's reads fall behind Delta's single file; hence the
automatic compaction below. The B-tree key index showed no measurable gain at these sizes; it is
kept because it costs little and bounds key lookups beyond them.

Each table is ``<root>/tables/<name>.lance``:

* **upsert**: ``merge_insert(key)`` (update matched, insert the rest) after de-duplicating the
  batch on its key, so a retried or concurrent batch can never leave two rows for one key. Lance
  commits by an atomic manifest swap (put-if-absent on object stores): a writer killed mid-way
  leaves only unreferenced data files, which the next clean-up removes.
* **maintenance**: once a table holds more than :data:`MAX_FRAGMENTS` small fragments (one per
  upsert), the next upsert compacts them, indexes their keys and drops versions older than
  :data:`KEEP_VERSIONS_FOR` that no tag protects. File counts stay bounded as the store grows, and
  so does the cost of one compaction: only fragments under :data:`TARGET_FRAGMENT_ROWS` rows are
  rewritten, and their keys go into a small delta segment of the key index, so the indexed pages a
  process has cached stay valid. Lance's defaults rewrite every fragment under 1M rows and the whole
  B-tree on each compaction (at 400k rows 1.7 + 0.24 s CPU against 0.03 + 0.02 at 16k, measured):
  O(table) per compaction, which made a batch's cost grow with the store. Every
  :data:`MAX_INDEX_SEGMENTS` delta segments are merged into one (once per hundreds of upserts), after
  which their small fragments can be merged too; ``aescot compact`` does that at once.
* **versions**: every commit is a version; an export tags the versions it read, so
  ``aescot export --as-of TAG`` reads exactly those rows again even after clean-ups.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from aescot.errors import DamagedStore, ServiceUnavailable, StoreError

if TYPE_CHECKING:  # lance is imported only when a table is touched (CLI start stays fast)
    import lance

__all__ = [
    "KEEP_VERSIONS_FOR",
    "MAX_FRAGMENTS",
    "MAX_INDEX_SEGMENTS",
    "TARGET_FRAGMENT_ROWS",
    "Dropped",
    "LanceTables",
    "TableState",
    "keep_last",
]

MAX_FRAGMENTS = 32  # small fragments (under TARGET_FRAGMENT_ROWS) before an upsert compacts them
# a compacted fragment's rows (~20-30 MB here); fragments this large are left as they are
TARGET_FRAGMENT_ROWS = 65_536
MAX_INDEX_SEGMENTS = 8  # delta segments of a key index before a compaction merges them into one
# Larger merges into an indexed table exceed lance's default memory pool ("Resources exhausted ...
# HashJoinInput" at ~100k rows, measured); bigger upserts (migrations) commit in chunks of this many.
MAX_UPSERT_ROWS = 50_000  # far above any stage batch (tens to thousands), which stay one commit
KEEP_VERSIONS_FOR = timedelta(minutes=5)  # longer than any one scan; exports tag theirs
SUFFIX = ".lance"
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@dataclass(frozen=True)
class Dropped:
    """A fragment ``aescot repair`` took out of a table: its files, rows, and keys when readable."""

    table: str
    files: list[str]
    rows: int
    keys: list[Any]
    problem: str


@dataclass(frozen=True)
class TableState:
    """What ``aescot status`` / ``doctor`` show of one table."""

    name: str
    version: int
    rows: int
    fragments: int
    files: int
    # (path under the table's data/ folder, size in bytes as written; None when not recorded)
    data_files: tuple[tuple[str, int | None], ...] = ()


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


# One lance Session per process: the caches of opened indexes and file metadata outlive each open.
# Without it every keyed read and upsert (a fresh ``lance.dataset``) loaded the key's B-tree index
# again, which grows with the table: 256 keys read from a 256k-row table took 74 ms, 7.3x the 16k
# table's; with the session 15 ms, 1.6x (bench/lance_session.py). Bounded, so RSS stays flat.
SESSION_CACHE_BYTES = 128 * 1024 * 1024  # each of the index cache and the metadata cache
_session: tuple[int, Any] | None = None  # (pid, Session): a forked child makes its own


def _lance_session() -> Any:
    global _session
    if _session is None or _session[0] != os.getpid():
        session = _lance().Session(
            index_cache_size_bytes=SESSION_CACHE_BYTES, metadata_cache_size_bytes=SESSION_CACHE_BYTES
        )
        _session = (os.getpid(), session)
    return _session[1]


class LanceTables:
    """The stage tables of one dataset root. ``pinned`` maps table -> version (or tag) to read."""

    def __init__(self, tables_uri: str, storage_options: dict[str, str] | None, is_local: bool):
        self.base = tables_uri.rstrip("/")
        self.storage_options = storage_options or None
        self.is_local = is_local
        self.pinned: dict[str, int | str] | None = None
        self.root = self.base.rsplit("/", 1)[0]  # the dataset root (``tables/`` sits in it), for messages
        # called after each write that committed: (table, what it did, the rows upserted): "upsert" with
        # its rows, "compact" (the same rows rewritten) or "repair" (rows dropped) with None. The store
        # records there what ``aescot status`` shows.
        self.on_commit: Callable[[str, str, pa.Table | None], None] | None = None

    # --- locating ----------------------------------------------------------------------------------

    def uri(self, table: str) -> str:
        return f"{self.base}/{table}{SUFFIX}"

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
            return lance.dataset(
                self.uri(table),
                version=version,
                storage_options=self.storage_options,
                session=_lance_session(),
            )
        except ValueError as exc:  # lance raises ValueError for "not found" and for bad versions
            text = str(exc)
            if "not found" in text.lower() or "does not exist" in text.lower():
                if version is not None:
                    raise StoreError(f"table {table}: version {version!r} does not exist ({_short(exc)})")
                return None
            raise DamagedStore(table, self.uri(table), _short(exc), self.root) from None
        except OSError as exc:
            if not self.is_local and _UNREACHABLE.search(str(exc)):  # the service, not the file
                raise StoreUnreachable(f"table {table}: {_short(exc)}") from None
            raise DamagedStore(table, self.uri(table), _short(exc), self.root) from None

    # --- writing -----------------------------------------------------------------------------------

    def upsert(self, table: str, data: pa.Table, key: Sequence[str]) -> int:
        """Insert or replace ``data``'s rows by ``key``; returns the rows written.

        One commit per call, except above :data:`MAX_UPSERT_ROWS` (a migration, a bulk load): then one
        commit per chunk, each keyed, so a re-run after a kill finishes the rest without duplicates.
        """
        if self.pinned is not None:
            raise StoreError("this store is opened at a fixed version (as of an export); it is read-only")
        if not data.num_rows:
            return 0
        data = keep_last(data, key)
        ds = self._open(table)
        if ds is None:
            self._create(table, data.schema, key)
            ds = self._open(table)  # ours, or the one another writer created at the same moment
        ds = self._evolve(table, ds, data.schema)
        for start in range(0, data.num_rows, MAX_UPSERT_ROWS):
            # a copy, not a slice: Lance's merge_insert panics on a slice of nested (list) columns
            # ("assertion failed: end <= self.len()" in arrow-data), so every chunk starts at offset 0
            stop = min(start + MAX_UPSERT_ROWS, data.num_rows)
            chunk = data if stop - start == data.num_rows else data.take(pa.array(range(start, stop)))
            for attempt in range(3):
                try:
                    (
                        ds.merge_insert(list(key))
                        .when_matched_update_all()
                        .when_not_matched_insert_all()
                        .conflict_retries(20)
                        .execute(chunk)
                    )
                    break
                except (OSError, ValueError) as exc:
                    # Two writers creating a table at once: the second create lands as an Overwrite
                    # (of the empty table) that Lance's conflict retries cannot rebase an Update onto.
                    # Open the table again and upsert on top of it (tests/test_store_faults.py, two writers).
                    if attempt < 2 and "incompatible" in str(exc).lower():
                        ds = self._open(table)
                        continue
                    raise StoreError(f"table {table}: upsert failed: {_short(exc)}") from None
            if start + MAX_UPSERT_ROWS < data.num_rows:
                ds = self._open(table)
        self._maintain_if_due(table, key)
        if self.on_commit is not None:
            self.on_commit(table, "upsert", data)
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

    def _create(self, table: str, schema: pa.Schema, key: Sequence[str]) -> lance.LanceDataset | None:
        """Create the table empty, its key marked as lance's primary key; rows arrive by merge_insert.

        Empty, because two writers creating one table at the same moment can both "succeed", the
        last manifest replacing the first (measured: a whole first batch lost, both writers told ok);
        replacing an empty version loses nothing. The primary-key marking makes lance detect two
        writers inserting the same new key at once and retry one (without it both rows are committed)."""
        lance = _lance()
        try:
            ds = lance.write_dataset(
                _keyed(schema, key).empty_table(),
                self.uri(table),
                mode="create",
                storage_options=self.storage_options,
            )
        except (OSError, ValueError) as exc:
            if "exist" in str(exc).lower():
                return None
            raise StoreError(f"table {table}: create failed: {_short(exc)}") from None
        self._index(ds, key)
        return ds

    @classmethod
    def _index(cls, ds: lance.LanceDataset, key: Sequence[str]) -> None:
        if len(key) == 1 and not cls._segments(ds, key):
            with contextlib.suppress(OSError, ValueError, RuntimeError):  # a concurrent writer won
                ds.create_scalar_index(key[0], index_type="BTREE")

    @staticmethod
    def _segments(ds: lance.LanceDataset, key: Sequence[str]) -> int:
        """Segments of the key's B-tree index (0: no index, or a key of several columns)."""
        if len(key) != 1:
            return 0
        with contextlib.suppress(Exception):  # an index is an optimisation, never a failure
            for ix in ds.describe_indices():
                if ix.name == f"{key[0]}_idx":
                    return len(ix.segments)
        return 0

    @staticmethod
    def _small_fragments(ds: lance.LanceDataset) -> list:
        """The fragments a compaction rewrites: those under :data:`TARGET_FRAGMENT_ROWS` rows."""
        return [f for f in ds.get_fragments() if f.metadata.physical_rows < TARGET_FRAGMENT_ROWS]

    def _maintain_if_due(self, table: str, key: Sequence[str]) -> None:
        ds = self._open(table)
        if ds is not None and len(self._small_fragments(ds)) > MAX_FRAGMENTS:
            self.compact(table, key, full=False)

    def compact(
        self, table: str, key: Sequence[str] = (), keep_for: timedelta = KEEP_VERSIONS_FOR, full: bool = True
    ) -> TableState | None:
        """Merge small fragments, index their keys (building the index if a killed writer never did),
        drop old untagged versions. ``full``: first merge the key index's delta segments into one,
        so that every small fragment can be merged (the upserts' automatic compaction does this
        every :data:`MAX_INDEX_SEGMENTS` compactions only: it rewrites the whole index)."""
        ds = self._open(table)
        if ds is None:
            return None
        if key:
            self._index(ds, key)
            ds = self._open(table)
        segments = self._segments(ds, key)
        if segments and (full or segments >= MAX_INDEX_SEGMENTS):
            # lance merges fragments only within one index segment: one segment (of every row) first
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                ds.optimize.optimize_indices(num_indices_to_merge=segments)
            ds = self._open(table)
        with contextlib.suppress(OSError, ValueError, RuntimeError):  # a concurrent compaction won
            ds.optimize.compact_files(target_rows_per_fragment=TARGET_FRAGMENT_ROWS)
        ds = self._open(table)
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            # the new rows' keys as a delta segment: the indexed pages stay as they are (and cached)
            ds.optimize.optimize_indices(num_indices_to_merge=0)
        ds = self._open(table)
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            ds.cleanup_old_versions(older_than=keep_for, error_if_tagged_old_versions=False)
        if self.on_commit is not None:
            self.on_commit(table, "compact", None)
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
            return _as_contract(out.select(cols or schema.names), schema)
        return _as_contract(self._scan(table, ds, cols, where), schema)

    def _scan(self, table: str, ds: lance.LanceDataset, cols: list[str] | None, where) -> pa.Table:
        try:
            return ds.to_table(columns=cols, filter=where)
        except BaseException as exc:  # lance's Rust panics are BaseExceptions
            if not _is_read_failure(exc):
                raise
            raise self._damaged(table, ds, exc, cols, where) from None

    def _damaged(self, table: str, ds: lance.LanceDataset, exc: BaseException, cols, where) -> StoreError:
        """The error for a failed scan. A data file is damaged if lance's message names it, or if a
        fragment that fails this scan also fails to read in full on its own; a scan that fails on
        readable files is a bad query (a column twice, a filter on a missing column), not damage."""
        text = str(exc)
        named = [df.path for frag in ds.get_fragments() for df in frag.data_files() if df.path in text]
        if not named:
            for frag in ds.get_fragments():
                try:
                    frag.to_table(columns=cols, filter=where)
                    continue
                except BaseException as again:
                    if not _is_read_failure(again):
                        raise
                try:
                    for batch in frag.to_batches():
                        batch.validate(full=True)
                except BaseException as broken:
                    if not _is_read_failure(broken):
                        raise
                    named = [df.path for df in frag.data_files()]
                    break
                return StoreError(f"table {table}: read failed: {_short(exc)}")
        where_ = ", ".join(self.data_uri(table, p) for p in named) or self.uri(table)
        return DamagedStore(table, where_, _short(exc), self.root)

    def data_uri(self, table: str, path: str) -> str:
        """The URI of one data file of ``table`` (as a fragment names it)."""
        return f"{self.uri(table)}/data/{path}"

    def count(self, table: str) -> int:
        ds = self._open(table)
        return 0 if ds is None else ds.count_rows()

    def version(self, table: str) -> int | None:
        ds = self._open(table)
        return None if ds is None else ds.version

    def state(self, table: str) -> TableState | None:
        ds = self._open(table)
        return None if ds is None else self._state(table, ds)

    @staticmethod
    def _state(table: str, ds: lance.LanceDataset) -> TableState:
        frags = ds.get_fragments()
        data = tuple((df.path, df.file_size_bytes) for f in frags for df in f.data_files())
        return TableState(table, ds.version, ds.count_rows(), len(frags), len(data), data)

    def snapshot(self, table: str, columns: Sequence[str] = ()) -> tuple[TableState, pa.Table | None] | None:
        """One version of ``table``: its state and ``columns`` of every row (None when the table lacks
        one of them), both read from the same version. None if the table was never written."""
        ds = self._open(table)
        if ds is None:
            return None
        have = set(ds.schema.names)
        cols = self._scan(table, ds, list(columns), None) if columns and have.issuperset(columns) else None
        return self._state(table, ds), cols

    def names(self) -> list[str]:
        """The tables written so far (local roots: by folder; object stores: the registry passes them)."""
        if not self.is_local:
            raise NotImplementedError
        if not os.path.isdir(self.base):
            return []
        return sorted(n[: -len(SUFFIX)] for n in os.listdir(self.base) if n.endswith(SUFFIX))

    def verify(self, table: str, quick: bool = False) -> Iterator[tuple[str, str]]:
        """Check every data file of a table; yields ``(file, problem)`` for each that fails.

        ``quick``: each file exists, has the size the manifest recorded and a readable footer (what the
        flow checks before it starts). Otherwise every page of every file is read and validated."""
        for frag, problem in self._check_fragments(table, quick):
            yield (", ".join(self.data_uri(table, df.path) for df in frag.data_files()), problem)

    def _check_fragments(self, table: str, quick: bool) -> Iterator[tuple[Any, str]]:
        ds = self._open(table)
        if ds is None:
            return
        for frag in ds.get_fragments():
            problem = self._check_files(table, frag)
            if problem is None and not quick:
                try:
                    for batch in frag.to_batches():
                        batch.validate(full=True)
                except BaseException as exc:  # lance's Rust panics are BaseExceptions
                    if not _is_read_failure(exc):
                        raise
                    problem = _short(exc)
            if problem is not None:
                yield frag, problem

    def _check_files(self, table: str, frag: Any) -> str | None:
        """The cheap check of one fragment's files: present, the recorded size, a readable footer."""
        from lance.file import LanceFileReader

        for df in frag.data_files():
            uri = self.data_uri(table, df.path)
            if self.is_local:  # a stat first: lance panics on a zero-byte file rather than raising
                try:
                    size = os.path.getsize(uri)
                except OSError:
                    return "the file is missing"
                if df.file_size_bytes is not None and size != df.file_size_bytes:
                    return f"{size} bytes on disk, {df.file_size_bytes} when written"
            try:
                LanceFileReader(uri, storage_options=self.storage_options).metadata()
            except BaseException as exc:
                if not _is_read_failure(exc):
                    raise
                return _short(exc)
        return None

    def drop_damaged(self, table: str, key: Sequence[str] = ()) -> list[Dropped]:
        """Commit a new version of ``table`` without its unreadable fragments (``aescot repair``).

        Every other row stays; the version before stays listed in ``versions()``. Returns what was
        dropped: the files, the rows they held (from the manifest) and their ``key`` values when those
        columns could still be read."""
        lance = _lance()
        ds = self._open(table)
        if ds is None:
            return []
        bad = list(self._check_fragments(table, quick=False))
        if not bad:
            return []
        out = []
        for frag, problem in bad:
            keys: list[Any] = []
            if key:
                try:
                    got = frag.to_table(columns=list(key))
                    cols = [got.column(k).to_pylist() for k in key]
                    keys = cols[0] if len(cols) == 1 else [tuple(v) for v in zip(*cols)]
                except BaseException as exc:
                    if not _is_read_failure(exc):
                        raise
            rows = frag.physical_rows
            with contextlib.suppress(OSError, ValueError, RuntimeError):  # the deletion file may be gone too
                rows = frag.count_rows()
            files = [self.data_uri(table, df.path) for df in frag.data_files()]
            out.append(Dropped(table, files, rows, keys, problem))
        op = lance.LanceOperation.Delete(
            [], [frag.fragment_id for frag, _ in bad], "aescot repair: unreadable fragments dropped"
        )
        lance.LanceDataset.commit(
            self.uri(table), op, read_version=ds.version, storage_options=self.storage_options
        )
        if self.on_commit is not None:
            self.on_commit(table, "repair", None)
        return out

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


_PRIMARY_KEY = {"lance-schema:unenforced-primary-key": "true"}


def _keyed(schema: pa.Schema, key: Sequence[str]) -> pa.Schema:
    """The schema as lance stores it: the key columns not null and marked as the primary key."""
    fields = [
        f.with_nullable(False).with_metadata({**(f.metadata or {}), **_PRIMARY_KEY}) if f.name in key else f
        for f in schema
    ]
    return pa.schema(fields, metadata=schema.metadata)


def _as_contract(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Read rows with the contract's fields (nullability, metadata), not lance's primary-key marking."""
    fields = [schema.field(n) if n in schema.names else table.schema.field(n) for n in table.column_names]
    target = pa.schema(fields, metadata=table.schema.metadata)
    return table if table.schema == target else table.cast(target)


def _is_read_failure(exc: BaseException) -> bool:
    """An error reading table data (lance's Rust panics arrive as PanicException, a BaseException)."""
    if isinstance(exc, (OSError, ValueError, RuntimeError, pa.ArrowException)):
        return True
    return type(exc).__name__ == "PanicException"


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = re.sub(r",? /\S+\.rs:\d+:\d+", "", text)  # where in lance's Rust source: not the user's concern
    return text if len(text) <= 200 else text[:197] + "..."


class StoreUnreachable(ServiceUnavailable, StoreError):
    """The object store did not answer (refused, timed out) after every retry: not damage; re-run."""


# A request that failed at the service (after object_store's own retries), not a file that is bad.
_UNREACHABLE = re.compile(
    r"Error performing|error sending request|connection (refused|reset|closed)|timed? ?out|dns error",
    re.IGNORECASE,
)


def is_unreachable(exc: BaseException) -> bool:
    """Whether a failed store request failed at the service or the network (retry later), not at a
    file: a connection or timeout error, or a message that says so (Lance's and botocore's)."""
    return isinstance(exc, (ConnectionError, TimeoutError)) or bool(_UNREACHABLE.search(str(exc)))


# Lance's object-store client retries a failed request only briefly by default: with an S3 server's
# port shut for 30 s an upsert failed after 0.6 s (tests/test_store_s3_outage.py, "refused"), and with
# 30 retries a request still gave up after 15 s (its backoff is short). These retry, with backoff,
# for up to 2 minutes from the first attempt (the time limit binds, not the count). A key given in the
# store's storage_options (any of LANCE_OPTIONS) wins.
OBJECT_STORE_RETRIES = {"client_max_retries": "1000", "client_retry_timeout": "120"}
LANCE_OPTIONS = ("client_max_retries", "client_retry_timeout", "timeout", "connect_timeout")


def lance_storage_options(storage_options: dict[str, Any] | None) -> dict[str, str]:
    """Translate fsspec/s3fs options (and the AWS_* environment) into Lance's object-store options."""
    so = storage_options or {}
    opts: dict[str, str] = dict(OBJECT_STORE_RETRIES)
    opts.update({k: str(so[k]) for k in LANCE_OPTIONS if so.get(k) is not None})
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
    return opts
