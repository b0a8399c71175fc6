"""The set-wide near-duplicate report: every candidate and source against every other.

In-group duplicates are already regenerated at generation time; this finds what a group
cannot see: a candidate of one source close to another source's candidate or to another
source (leakage between items), and sources close to each other. Pairs are written to the
``near_duplicates`` table (key: the pair and the settings), so re-running adds nothing new.

The pass is incremental. Each candidate or source checked with a setting (method, hash size,
threshold) gets a row in ``dedupe_hashes`` with the hash it was checked with: that hash column is
the persisted index. A run reads it once (projected), builds one
:class:`~aescot.neardup.HammingIndex` from it, and checks only the backlog (items with no row for
the setting: a key anti-join), batch by batch: each batch against the index (every item checked
before it) and against itself, then the batch's hashes are added. Every pair is found once, when
its later item is checked; a batch costs O(batch log n), never a pass over the store.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image

from aescot.dedupe.hashing import DedupeConfig, hash_image
from aescot.ids import derive_id
from aescot.neardup import HammingIndex, radius_search
from aescot.store import DatasetStore, TableSpec, register_table
from aescot.timeutil import now_iso

NEAR_DUPLICATES = register_table(
    TableSpec(
        "near_duplicates",
        ("pair_id",),
        schema=pa.schema(
            [
                pa.field("pair_id", pa.string()),
                pa.field("kind", pa.string()),  # candidate-candidate | candidate-source | source-source
                pa.field("a_id", pa.string()),
                pa.field("b_id", pa.string()),
                pa.field("a_source_id", pa.string()),
                pa.field("b_source_id", pa.string()),
                pa.field("distance", pa.int64()),
                pa.field("method", pa.string()),
                pa.field("hash_size", pa.int64()),
                pa.field("threshold", pa.int64()),
                pa.field("found_at", pa.string()),
            ]
        ),
    )
)

DEDUPE_HASHES = register_table(
    TableSpec(
        "dedupe_hashes",
        ("check_id",),
        schema=pa.schema(
            [
                pa.field("check_id", pa.string()),  # derive_id(kind, item, method, hash_size, threshold)
                pa.field("item_id", pa.string()),  # a candidate_id or a source_id
                pa.field("kind", pa.string()),  # candidate | source
                pa.field("source_id", pa.string()),  # the item's own source (the source itself for a source)
                pa.field("hash", pa.string()),
                pa.field("method", pa.string()),
                pa.field("hash_size", pa.int64()),
                pa.field("threshold", pa.int64()),
                pa.field("checked_at", pa.string()),
            ]
        ),
    )
)

BATCH = 4_096  # items checked (and committed) together
_KINDS = (("candidate", "candidates", "candidate_id"), ("source", "sources", "source_id"))


@dataclass
class DedupeReport:
    """A pass: the set's size, what was checked now, and the pairs (``pairs``: by kind, all recorded
    with these settings; ``new_pairs``: found by this pass)."""

    candidates: int = 0
    sources: int = 0
    checked: int = 0
    hashed: int = 0
    pairs: dict[str, int] = field(default_factory=dict)
    new_pairs: int = 0
    examples: list[dict] = field(default_factory=list)


def _settings(cfg: DedupeConfig) -> pc.Expression:
    return (
        (pc.field("method") == cfg.method)
        & (pc.field("hash_size") == cfg.hash_size)
        & (pc.field("threshold") == cfg.threshold)
    )


def _hash_key(store: DatasetStore, key: str, cfg: DedupeConfig) -> str:
    with Image.open(io.BytesIO(store.read_bytes(key))) as img:
        return hash_image(img, cfg)


def _backlog(store: DatasetStore, table: str, id_col: str, kind: str, done: pa.Table) -> pa.Array:
    """Ids of ``table`` not yet checked with these settings (a key anti-join on projected id
    columns, sorted)."""
    ids = store.column(table, id_col).combine_chunks()
    checked = done.filter(pc.equal(done.column("kind"), kind)).column("item_id").combine_chunks()
    todo = ids.filter(pc.invert(pc.is_in(ids, value_set=checked))) if len(checked) else ids
    return pc.take(todo, pc.sort_indices(todo))


def near_duplicate_report(
    store: DatasetStore, config: DedupeConfig | None = None, max_examples: int = 20, batch_size: int = BATCH
) -> DedupeReport:
    """Check every candidate and source not yet checked with these settings against all that were,
    and record the new near-duplicate pairs.

    Stored hashes are used when they are of the configured size; otherwise (another
    ``hash_size``, or a candidate stored without one) the image is hashed again, once: the hash
    it was checked with is kept in ``dedupe_hashes``. Same-source pairs are not reported: the
    generation stage owns those.
    """
    cfg = config or DedupeConfig()
    width = cfg.hash_size**2 // 4
    settings = _settings(cfg)
    report = DedupeReport(candidates=store.count("candidates"), sources=store.count("sources"))
    done = store.read_arrow(DEDUPE_HASHES.name, ["item_id", "kind", "source_id", "hash"], where=settings)
    index = HammingIndex.from_arrow(done.column("hash"), np.arange(done.num_rows))
    meta = [done.select(["item_id", "kind", "source_id"])]  # index label -> row of concat(meta)
    n_meta = done.num_rows
    for kind, table, id_col in _KINDS:
        columns = list(dict.fromkeys([id_col, "source_id", "image_key", "phash"]))
        todo = _backlog(store, table, id_col, kind, done)
        for start in range(0, len(todo), batch_size):
            rows = store.read(table, columns, keys=todo[start : start + batch_size])
            hashes = []
            for r in rows:
                h = r["phash"]
                # stored hashes are the default method's; rehash when the size or the method differs
                if not h or len(h) != width or cfg.method != "phash":
                    h = _hash_key(store, r["image_key"], cfg)
                    report.hashed += 1
                hashes.append(h)
            batch = pa.table(
                {
                    "item_id": [r[id_col] for r in rows],
                    "kind": [kind] * len(rows),
                    "source_id": [r["source_id"] for r in rows],
                }
            )
            _record(store, _batch_pairs(index, meta, batch, hashes, cfg), cfg, report, max_examples)
            # after the pairs: a kill in between checks the batch again, losing nothing
            store.upsert(DEDUPE_HASHES.name, _checked_rows(batch, hashes, cfg))
            index.add_many(hashes, list(range(n_meta, n_meta + len(rows))))
            meta.append(batch)
            n_meta += len(rows)
            report.checked += len(rows)
    kinds = store.read_arrow(NEAR_DUPLICATES.name, ["kind"], where=settings).column("kind")
    report.pairs = dict(sorted(Counter(kinds.to_pylist()).items()))
    return report


def _checked_rows(batch: pa.Table, hashes: list[str], cfg: DedupeConfig) -> pa.Table:
    n, at = batch.num_rows, now_iso()
    ids = [
        derive_id(k, i, cfg.method, cfg.hash_size, cfg.threshold)
        for k, i in zip(batch["kind"].to_pylist(), batch["item_id"].to_pylist())
    ]
    return (
        batch.append_column("check_id", pa.array(ids, pa.string()))
        .append_column("hash", pa.array(hashes, pa.string()))
        .append_column("method", pa.array([cfg.method] * n, pa.string()))
        .append_column("hash_size", pa.array([cfg.hash_size] * n, pa.int64()))
        .append_column("threshold", pa.array([cfg.threshold] * n, pa.int64()))
        .append_column("checked_at", pa.array([at] * n, pa.string()))
    )


def _batch_pairs(
    index: HammingIndex, meta: list[pa.Table], batch: pa.Table, hashes: list[str], cfg: DedupeConfig
) -> list[tuple[tuple[str, str, str], tuple[str, str, str], int]]:
    """The batch's pairs within the threshold, with items checked before it and among itself, as
    ``((kind, id, source), (kind, id, source), distance)``; same-source pairs left out."""
    mine = list(zip(batch["kind"].to_pylist(), batch["item_id"].to_pylist(), batch["source_id"].to_pylist()))
    found: list[tuple[int, int, int]] = []  # (batch row, index label, distance)
    for qi, hits in enumerate(index.search(hashes, cfg.threshold)):
        found.extend((qi, label, d) for label, d in hits)
    others: dict[int, tuple[str, str, str]] = {}
    if found:
        labels = sorted({label for _, label, _ in found})
        rows = pa.concat_tables(meta).take(pa.array(labels))
        for label, k, i, s in zip(
            labels, rows["kind"].to_pylist(), rows["item_id"].to_pylist(), rows["source_id"].to_pylist()
        ):
            others[label] = (k, i, s)
    out = [(mine[qi], others[label], d) for qi, label, d in found]
    out.extend((mine[i], mine[j], d) for i, j, d in radius_search(hashes, None, cfg.threshold).as_tuples())
    return [(a, b, d) for a, b, d in out if a[2] != b[2]]  # a source's own candidates: generation's job


def _record(
    store: DatasetStore, pairs: list, cfg: DedupeConfig, report: DedupeReport, max_examples: int
) -> None:
    """Write the pairs not yet in ``near_duplicates`` (looked up by key: only these pairs' rows)."""
    rows: dict[str, dict] = {}
    at = now_iso()
    for x, y, d in pairs:
        a, b = sorted([x, y])
        pid = derive_id("near-duplicate", a[1], b[1], cfg.method, cfg.hash_size, cfg.threshold)
        rows[pid] = {
            "pair_id": pid,
            "kind": f"{a[0]}-{b[0]}",
            "a_id": a[1],
            "b_id": b[1],
            "a_source_id": a[2],
            "b_source_id": b[2],
            "distance": d,
            "method": cfg.method,
            "hash_size": cfg.hash_size,
            "threshold": cfg.threshold,
            "found_at": at,
        }
    if not rows:
        return
    old = set(
        store.read_arrow(NEAR_DUPLICATES.name, ["pair_id"], keys=list(rows)).column("pair_id").to_pylist()
    )
    new = [r for pid, r in rows.items() if pid not in old]
    store.upsert(NEAR_DUPLICATES.name, new, validate=False)
    report.new_pairs += len(new)
    report.examples.extend(new[: max(0, max_examples - len(report.examples))])
