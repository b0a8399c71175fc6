"""The set-wide near-duplicate report: every candidate and source against every other.

In-group duplicates are already regenerated at generation time; this finds what a group
cannot see: a candidate of one source close to another source's candidate or to another
source (leakage between items), and sources close to each other. Pairs are written to the
``near_duplicates`` table (key: the pair and the settings), so re-running adds nothing new.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import pyarrow as pa
from PIL import Image

from aescot.dedupe.hashing import DedupeConfig, hash_image
from aescot.ids import derive_id
from aescot.neardup import radius_search
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


@dataclass
class DedupeReport:
    """Counts of a set-wide pass (``pairs`` by kind) and the hashes it had to compute."""

    candidates: int = 0
    sources: int = 0
    hashed: int = 0
    pairs: dict[str, int] = field(default_factory=dict)
    new_pairs: int = 0
    examples: list[dict] = field(default_factory=list)


def _hash_key(store: DatasetStore, key: str, cfg: DedupeConfig) -> str:
    with Image.open(io.BytesIO(store.read_bytes(key))) as img:
        return hash_image(img, cfg)


def near_duplicate_report(
    store: DatasetStore, config: DedupeConfig | None = None, max_examples: int = 20
) -> DedupeReport:
    """Find near-duplicate pairs across the whole set and record the new ones.

    Stored hashes are used when they are of the configured size; otherwise (another
    ``hash_size``, or a candidate stored without one) the image is hashed again.
    Same-source candidate pairs are not reported: the generation stage owns those.
    """
    cfg = config or DedupeConfig()
    width = cfg.hash_size**2 // 4
    report = DedupeReport()
    ids, owners, kinds, hashes = [], [], [], []
    for rows, kind, id_col in (
        (
            store.read("candidates", columns=["candidate_id", "source_id", "image_key", "phash"]),
            "candidate",
            "candidate_id",
        ),
        (store.read("sources", columns=["source_id", "image_key", "phash"]), "source", "source_id"),
    ):
        for r in rows:
            h = r["phash"]
            # stored hashes are the default method's; rehash when the size or the method differs
            if not h or len(h) != width or cfg.method != "phash":
                h = _hash_key(store, r["image_key"], cfg)
                report.hashed += 1
            ids.append(r[id_col]), owners.append(r["source_id"]), kinds.append(kind), hashes.append(h)
        setattr(report, kind + "s", len(rows))
    pairs = radius_search(hashes, None, cfg.threshold)
    existing = store.keys(NEAR_DUPLICATES.name)
    rows = []
    for i, j, d in pairs.as_tuples():
        if owners[i] == owners[j]:
            continue  # a source's own candidates, or one vs its own source: the generation stage's job
        a, b = sorted([(kinds[i], ids[i], owners[i]), (kinds[j], ids[j], owners[j])])
        kind = f"{a[0]}-{b[0]}"
        report.pairs[kind] = report.pairs.get(kind, 0) + 1
        pid = derive_id("near-duplicate", a[1], b[1], cfg.method, cfg.hash_size, cfg.threshold)
        row = {
            "pair_id": pid,
            "kind": kind,
            "a_id": a[1],
            "b_id": b[1],
            "a_source_id": a[2],
            "b_source_id": b[2],
            "distance": d,
            "method": cfg.method,
            "hash_size": cfg.hash_size,
            "threshold": cfg.threshold,
            "found_at": now_iso(),
        }
        if len(report.examples) < max_examples:
            report.examples.append(row)
        if pid not in existing:
            rows.append(row)
    store.upsert(NEAR_DUPLICATES.name, rows, validate=False)
    report.new_pairs = len(rows)
    return report
