"""Streaming Parquet writer: rows in, sharded files out, memory bounded by one row group.

Rows arrive in the storage layout of their ``datasets`` features (an image is ``{"bytes", "path"}``)
and are buffered until ``row_group_rows`` rows or ``row_group_bytes`` of image bytes, then written
as one row group; a shard is closed after ``rows_per_shard`` rows. Shards are written under
temporary names and renamed to the Hugging Face convention ``<split>-00000-of-00003.parquet``
when the writer closes (the total is only known then).
"""

from __future__ import annotations

import posixpath
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Features

from aescot.export.features import arrow_schema


class ShardWriter:
    """Write one split of one format as Parquet shards into ``directory`` (an fsspec path)."""

    def __init__(
        self,
        fs: fsspec.AbstractFileSystem,
        directory: str,
        split: str,
        features: Features,
        rows_per_shard: int = 10_000,
        row_group_rows: int = 256,
        row_group_bytes: int = 64 * 1024 * 1024,
        compression: str = "zstd",
    ):
        self.fs, self.directory, self.split = fs, directory, split
        self.features = features
        self.schema: pa.Schema = arrow_schema(features)
        self.rows_per_shard, self.row_group_rows, self.row_group_bytes = (
            rows_per_shard,
            row_group_rows,
            row_group_bytes,
        )
        self.compression = compression
        self._buffer: list[dict[str, Any]] = []
        self._buffer_bytes = 0
        self._shard_rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._handle = None
        self._tmp_paths: list[str] = []
        self.rows = 0
        fs.makedirs(directory, exist_ok=True)

    def write(self, row: dict[str, Any], payload_bytes: int = 0) -> None:
        """Buffer one row already in the features' storage layout; ``payload_bytes`` sizes row groups."""
        self._buffer.append(row)
        self._buffer_bytes += payload_bytes
        self.rows += 1
        if len(self._buffer) >= self.row_group_rows or self._buffer_bytes >= self.row_group_bytes:
            self._flush()
        if self._shard_rows >= self.rows_per_shard:
            self._close_shard()

    def _flush(self) -> None:
        if not self._buffer:
            return
        if self._writer is None:
            path = posixpath.join(self.directory, f".{self.split}-{len(self._tmp_paths):05d}.parquet.tmp")
            self._tmp_paths.append(path)
            self._handle = self.fs.open(path, "wb")
            self._writer = pq.ParquetWriter(self._handle, self.schema, compression=self.compression)
        self._writer.write_table(pa.Table.from_pylist(self._buffer, schema=self.schema))
        self._shard_rows += len(self._buffer)
        self._buffer, self._buffer_bytes = [], 0

    def _close_shard(self) -> None:
        self._flush()
        if self._writer is not None:
            self._writer.close()
            self._handle.close()
            self._writer, self._handle, self._shard_rows = None, None, 0

    def close(self) -> list[str]:
        """Finish the last shard and give every shard its final name; returns the final paths."""
        self._close_shard()
        n = len(self._tmp_paths)
        final = []
        for i, tmp in enumerate(self._tmp_paths):
            path = posixpath.join(self.directory, f"{self.split}-{i:05d}-of-{n:05d}.parquet")
            self.fs.mv(tmp, path)
            final.append(path)
        return final

    def abort(self) -> None:
        """Drop what was written (on error)."""
        if self._writer is not None:
            try:
                self._writer.close()
                self._handle.close()
            except Exception:  # noqa: BLE001, S110 - best-effort clean-up; the original error matters
                pass
        for tmp in self._tmp_paths:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)
