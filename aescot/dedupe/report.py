"""The set-wide near-duplicate report: every candidate and source against every other.

In-group duplicates are already regenerated at generation time; this finds what a group
cannot see: a candidate of one source close to another source's candidate or to another
source (leakage between items), and sources close to each other. Pairs are written to the
``near_duplicates`` table (key: the pair and the settings), so re-running adds nothing new.

A pair is a near-duplicate when the grey hashes are within ``threshold`` bits and the colour
signatures within ``colour_threshold`` percent (the same picture in another colour is another
image); the index is searched on the grey hash, the colour check applied to its matches only.

The pass is incremental. Each candidate or source checked with a setting (method, hash size,
threshold, colour threshold) gets a row in ``dedupe_hashes`` with the hash and colour signature it
was checked with: that hash column is the persisted index. Rows written before colour signatures
(null ``colour_threshold``) count as the colour check off (-1): the grey rule they were made with. A run reads it once (projected), builds one
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

from aescot.dedupe.hashing import DedupeConfig, colour_of, hash_image
from aescot.ids import derive_id
from aescot.neardup import HammingIndex, colour_apart, colour_match, radius_search
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
                pa.field("colour_difference", pa.int64()),  # percent; null: compared on grey alone
                pa.field("colour_threshold", pa.int64()),  # null: written before colour (= -1)
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
                pa.field("check_id", pa.string()),  # see _check_id
                pa.field("item_id", pa.string()),  # a candidate_id or a source_id
                pa.field("kind", pa.string()),  # candidate | source
                pa.field("source_id", pa.string()),  # the item's own source (the source itself for a source)
                pa.field("hash", pa.string()),
                pa.field("method", pa.string()),
                pa.field("hash_size", pa.int64()),
                pa.field("threshold", pa.int64()),
                pa.field("checked_at", pa.string()),
                pa.field("colour_hash", pa.string()),  # null: not known (colour check off, or before colour)
                pa.field("colour_threshold", pa.int64()),  # null: written before colour (= -1)
            ]
        ),
    )
)

BATCH = 4_096  # items checked (and committed) together
_META = pa.schema(
    [pa.field(n, pa.string()) for n in ("item_id", "kind", "source_id", "colour_hash")]
)  # what a pair needs of an item checked before
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
    """The grey settings, as a scan filter. The colour threshold is filtered after the scan
    (:func:`_with_colour`): a table written before colour signatures has no such column to filter on."""
    return (
        (pc.field("method") == cfg.method)
        & (pc.field("hash_size") == cfg.hash_size)
        & (pc.field("threshold") == cfg.threshold)
    )


def _with_colour(rows: pa.Table, cfg: DedupeConfig) -> pa.Table:
    """The rows recorded with this colour threshold (null, from before colour signatures, is -1)."""
    col = pc.fill_null(rows.column("colour_threshold"), -1)
    return rows.filter(pc.equal(col, cfg.colour_threshold))


def _check_id(kind: str, item: str, cfg: DedupeConfig) -> str:
    parts = [kind, item, cfg.method, cfg.hash_size, cfg.threshold]
    # the colour check off keeps the ids of before colour signatures: those rows are still this setting
    return derive_id(*parts) if cfg.colour_threshold < 0 else derive_id(*parts, cfg.colour_threshold)


def _pair_id(a: str, b: str, cfg: DedupeConfig) -> str:
    parts = ["near-duplicate", a, b, cfg.method, cfg.hash_size, cfg.threshold]
    return derive_id(*parts) if cfg.colour_threshold < 0 else derive_id(*parts, cfg.colour_threshold)


def _hash_key(
    store: DatasetStore, key: str, cfg: DedupeConfig, grey: bool, colour: bool
) -> tuple[str | None, str | None]:
    """The grey hash and/or the colour signature of a stored image (one read, one decode)."""
    with Image.open(io.BytesIO(store.read_bytes(key))) as img:
        img.load()
        return (hash_image(img, cfg) if grey else None), (colour_of(img) if colour else None)


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
    it was checked with is kept in ``dedupe_hashes``. So is the colour signature: the stored one
    (``colour_hash`` of the candidate or source), else taken from the image in the same read;
    with the colour check off (``colour_threshold`` -1) none is needed. Same-source pairs are not
    reported: the generation stage owns those.
    """
    cfg = config or DedupeConfig()
    width = cfg.hash_size**2 // 4
    settings = _settings(cfg)
    report = DedupeReport(candidates=store.count("candidates"), sources=store.count("sources"))
    colour = cfg.colour_threshold >= 0
    done = _with_colour(
        store.read_arrow(
            DEDUPE_HASHES.name,
            ["item_id", "kind", "source_id", "hash", "colour_hash", "colour_threshold"],
            where=settings,
        ),
        cfg,
    )
    index = HammingIndex.from_arrow(done.column("hash"), np.arange(done.num_rows))
    # index label -> row of concat(meta)
    meta = [done.select(["item_id", "kind", "source_id", "colour_hash"]).cast(_META)]
    n_meta = done.num_rows
    for kind, table, id_col in _KINDS:
        columns = list(dict.fromkeys([id_col, "source_id", "image_key", "phash", "colour_hash"]))
        todo = _backlog(store, table, id_col, kind, done)
        for start in range(0, len(todo), batch_size):
            rows = store.read(table, columns, keys=todo[start : start + batch_size])
            hashes, colours = [], []
            for r in rows:
                h, c = r["phash"], r["colour_hash"] if colour else None
                # stored hashes are the default method's; rehash when the size or the method differs
                grey = not h or len(h) != width or cfg.method != "phash"
                if grey or (colour and not c):
                    h2, c2 = _hash_key(store, r["image_key"], cfg, grey, colour and not c)
                    h, c = (h2 if grey else h), (c2 if colour and not c else c)
                    report.hashed += 1
                hashes.append(h)
                colours.append(c)
            batch = pa.table(
                {
                    "item_id": pa.array([r[id_col] for r in rows], pa.string()),
                    "kind": pa.array([kind] * len(rows), pa.string()),
                    "source_id": pa.array([r["source_id"] for r in rows], pa.string()),
                    "colour_hash": pa.array(colours, pa.string()),
                }
            )
            _record(store, _batch_pairs(index, meta, batch, hashes, cfg), cfg, report, max_examples)
            # after the pairs: a kill in between checks the batch again, losing nothing
            store.upsert(DEDUPE_HASHES.name, _checked_rows(batch, hashes, cfg))
            index.add_many(hashes, list(range(n_meta, n_meta + len(rows))))
            meta.append(batch)
            n_meta += len(rows)
            report.checked += len(rows)
    kinds = _with_colour(
        store.read_arrow(NEAR_DUPLICATES.name, ["kind", "colour_threshold"], where=settings), cfg
    ).column("kind")
    report.pairs = dict(sorted(Counter(kinds.to_pylist()).items()))
    return report


def _checked_rows(batch: pa.Table, hashes: list[str], cfg: DedupeConfig) -> pa.Table:
    n, at = batch.num_rows, now_iso()
    ids = [_check_id(k, i, cfg) for k, i in zip(batch["kind"].to_pylist(), batch["item_id"].to_pylist())]
    return (
        batch.append_column("check_id", pa.array(ids, pa.string()))
        .append_column("hash", pa.array(hashes, pa.string()))
        .append_column("method", pa.array([cfg.method] * n, pa.string()))
        .append_column("hash_size", pa.array([cfg.hash_size] * n, pa.int64()))
        .append_column("threshold", pa.array([cfg.threshold] * n, pa.int64()))
        .append_column("checked_at", pa.array([at] * n, pa.string()))
        .append_column("colour_threshold", pa.array([cfg.colour_threshold] * n, pa.int64()))
    )


def _batch_pairs(
    index: HammingIndex, meta: list[pa.Table], batch: pa.Table, hashes: list[str], cfg: DedupeConfig
) -> list[tuple[tuple[str, str, str], tuple[str, str, str], int, int | None]]:
    """The batch's pairs within the threshold whose colours match too, with items checked before it
    and among itself, as ``((kind, id, source), (kind, id, source), distance, colour difference)``;
    same-source pairs left out."""
    mine = list(zip(batch["kind"].to_pylist(), batch["item_id"].to_pylist(), batch["source_id"].to_pylist()))
    my_colour = batch["colour_hash"].to_pylist()
    found: list[tuple[int, int, int]] = []  # (batch row, index label, distance)
    for qi, hits in enumerate(index.search(hashes, cfg.threshold)):
        found.extend((qi, label, d) for label, d in hits)
    others: dict[int, tuple[tuple[str, str, str], str | None]] = {}
    if found:
        labels = sorted({label for _, label, _ in found})
        rows = pa.concat_tables(meta).take(pa.array(labels))
        for label, k, i, s, c in zip(
            labels,
            rows["kind"].to_pylist(),
            rows["item_id"].to_pylist(),
            rows["source_id"].to_pylist(),
            rows["colour_hash"].to_pylist(),
        ):
            others[label] = ((k, i, s), c)
    t = cfg.colour_threshold
    out = [
        (mine[qi], others[label][0], d, colour_apart(my_colour[qi], others[label][1], t))
        for qi, label, d in found
        if colour_match(my_colour[qi], others[label][1], t)
    ]
    out.extend(
        (mine[i], mine[j], d, colour_apart(my_colour[i], my_colour[j], t))
        for i, j, d in radius_search(hashes, None, cfg.threshold).as_tuples()
        if colour_match(my_colour[i], my_colour[j], t)
    )
    return [p for p in out if p[0][2] != p[1][2]]  # a source's own candidates: generation's job


def _record(
    store: DatasetStore, pairs: list, cfg: DedupeConfig, report: DedupeReport, max_examples: int
) -> None:
    """Write the pairs not yet in ``near_duplicates`` (looked up by key: only these pairs' rows)."""
    rows: dict[str, dict] = {}
    at = now_iso()
    for x, y, d, c in pairs:
        a, b = sorted([x, y])
        pid = _pair_id(a[1], b[1], cfg)
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
            "colour_difference": c,
            "colour_threshold": cfg.colour_threshold,
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
