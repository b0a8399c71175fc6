"""Grouped, stratified, seeded train/validation/test splits, and the check that proves no leak.

* **Grouped**: a source and every near-duplicate of it (perceptual-hash Hamming distance at most
  ``near_duplicate_bits``, transitively) form one group; a group lives in exactly one split.
* **Stratified**: each group has a stratum, the defect dimension its items fail most often
  (``none`` when they fail none); within a stratum, groups go greedily to the split furthest
  below its target share of items, largest groups first.
* **Seeded**: ties (equal-size groups) are broken by a hash of ``(seed, group id)``, so one seed
  gives one assignment and another seed a different, equally balanced one.
* **Sticky**: assignments are remembered in the store (table ``export_splits``); a later export
  keeps every known source where it was, so an item a model trained on never moves to test.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pyarrow as pa

from aescot.ids import derive_id
from aescot.neardup import near_pairs
from aescot.store import TableSpec, register_table
from aescot.vocab import DIMENSIONS, SPLITS

NO_DEFECT = "none"

SPLITS_TABLE = register_table(
    TableSpec(
        "export_splits",
        ("source_id",),
        schema=pa.schema(
            [
                pa.field("source_id", pa.string()),
                pa.field("group_id", pa.string()),
                pa.field("split", pa.string()),
                pa.field("seed", pa.int64()),
                pa.field("assigned_at", pa.string()),
            ]
        ),
    )
)


# --- near-duplicate grouping -----------------------------------------------------------------------


def near_duplicate_pairs(
    hashes: list[str], max_bits: int, block: int = 1024
) -> Iterable[tuple[int, int, int]]:
    """Yield ``(i, j, bits)`` with ``i < j`` for every pair of equal-length hashes within ``max_bits``.

    The near-duplicate engine's exact search (:func:`aescot.neardup.near_pairs`); ``block`` is kept
    for callers, the search sizes its own blocks.
    """
    yield from near_pairs(hashes, max_bits)


def source_pairs(phash_by_source: Mapping[str, str], max_bits: int) -> list[tuple[str, str, int]]:
    """Every pair of sources within ``max_bits`` of each other: ``(source a, source b, bits)`` with a < b."""
    ids = sorted(s for s, h in phash_by_source.items() if h)
    return [
        (ids[i], ids[j], bits)
        for i, j, bits in near_duplicate_pairs([phash_by_source[s] for s in ids], max_bits)
    ]


def group_sources(
    phash_by_source: Mapping[str, str], max_bits: int, pairs: list[tuple[str, str, int]] | None = None
) -> dict[str, str]:
    """Map each source id to its group id (the smallest source id among it and its near-duplicates)."""
    ids = sorted(phash_by_source)
    pos = {s: i for i, s in enumerate(ids)}
    parent = list(range(len(ids)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b, _ in source_pairs(phash_by_source, max_bits) if pairs is None else pairs:
        ri, rj = find(pos[a]), find(pos[b])
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)  # ids are sorted: the root is the smallest id
    return {s: ids[find(i)] for i, s in enumerate(ids)}


# --- assignment --------------------------------------------------------------------------------------


@dataclass
class SplitPlan:
    """The split of every exported source and item, and what the assignment had to resolve."""

    split_of_source: dict[str, str]
    group_of_source: dict[str, str]
    split_of_item: dict[str, str]
    stratum_of_group: dict[str, str]
    conflicts: list[str] = field(default_factory=list)  # groups whose known sources were in several splits
    new_sources: list[str] = field(
        default_factory=list
    )  # sources assigned or moved in this run (to remember)
    near_pairs: list[tuple[str, str, int]] = field(default_factory=list)  # near-duplicate source pairs found

    def counts(self) -> dict[str, int]:
        c = Counter(self.split_of_item.values())
        return {s: c.get(s, 0) for s in SPLITS}


def stratum(dimension_lists: Iterable[Iterable[str]]) -> str:
    """The dimension failed most often (ties in DIMENSIONS order), or ``none``."""
    c = Counter(d for dims in dimension_lists for d in dims)
    if not c:
        return NO_DEFECT
    return max(DIMENSIONS, key=lambda d: (c.get(d, 0), -DIMENSIONS.index(d)))


def _tiebreak(seed: int, group_id: str) -> str:
    return derive_id("split-order", seed, group_id)


def assign_splits(
    items: Mapping[str, tuple[str, list[str]]],
    phash_by_source: Mapping[str, str],
    ratios: Mapping[str, float],
    seed: int,
    near_duplicate_bits: int,
    previous: Mapping[str, str] | None = None,
) -> SplitPlan:
    """Assign every item to a split.

    ``items`` maps item id to ``(source id, all defect dimensions its candidates fail)``;
    ``previous`` maps already-assigned source ids to their split (kept as they are).
    Sources missing from ``phash_by_source`` form groups of their own.
    """
    previous = dict(previous or {})
    sources = {src for src, _ in items.values()}
    hashes = {s: h for s, h in phash_by_source.items() if h}
    pairs = source_pairs(hashes, near_duplicate_bits)
    group_of = group_sources(hashes, near_duplicate_bits, pairs)
    for s in sources:
        group_of.setdefault(s, s)

    members: dict[str, list[str]] = defaultdict(list)
    for s, g in group_of.items():
        members[g].append(s)
    items_of_group: dict[str, list[str]] = defaultdict(list)
    for item, (src, _) in items.items():
        items_of_group[group_of[src]].append(item)
    strata = {g: stratum(items[i][1] for i in its) for g, its in items_of_group.items()}

    split_of_group: dict[str, str] = {}
    conflicts: list[str] = []
    for g, srcs in members.items():
        known = {previous[s] for s in srcs if s in previous}
        if len(known) == 1:
            split_of_group[g] = known.pop()
        elif len(known) > 1:
            # A new near-duplicate bridged groups that sat in different splits. Train is the safe side:
            # moving a former training item into test would contaminate evaluation.
            split_of_group[g] = "train"
            conflicts.append(g)

    weights = {s: float(ratios.get(s, 0.0)) for s in SPLITS}
    total_w = sum(weights.values())
    if total_w <= 0:
        raise ValueError(f"split ratios must have a positive sum, got {dict(ratios)}")
    weights = {s: w / total_w for s, w in weights.items()}

    by_stratum: dict[str, list[str]] = defaultdict(list)
    for g in items_of_group:
        by_stratum[strata[g]].append(g)
    for st, groups in sorted(by_stratum.items()):
        total = sum(len(items_of_group[g]) for g in groups)
        have = Counter()
        for g in groups:
            if g in split_of_group:
                have[split_of_group[g]] += len(items_of_group[g])
        todo = [g for g in groups if g not in split_of_group]
        todo.sort(key=lambda g: (-len(items_of_group[g]), _tiebreak(seed, g)))
        for g in todo:
            open_splits = [s for s in SPLITS if weights[s] > 0]
            # furthest below its target share; ties go to the earlier split in SPLITS order
            best = max(
                open_splits,
                key=lambda s: ((weights[s] * total - have[s]) / (weights[s] * total), -SPLITS.index(s)),
            )
            split_of_group[g] = best
            have[best] += len(items_of_group[g])

    split_of_source = {s: split_of_group[g] for s, g in group_of.items() if g in split_of_group}
    return SplitPlan(
        split_of_source=split_of_source,
        group_of_source=dict(group_of),
        split_of_item={i: split_of_group[group_of[src]] for i, (src, _) in items.items()},
        stratum_of_group=strata,
        conflicts=sorted(conflicts),
        near_pairs=pairs,
        new_sources=sorted(
            s
            for s in split_of_source
            if previous.get(s) != split_of_source[s] and (s in sources or s in previous)
        ),
    )


# --- leak check ----------------------------------------------------------------------------------------


@dataclass
class LeakReport:
    """What the leak check found in an export: empty lists mean no leak."""

    n_rows: int
    n_items: int
    n_sources: int
    items_in_several_splits: list[str]
    sources_in_several_splits: list[str]
    near_duplicates_across_splits: list[
        tuple[str, str, str, str, int]
    ]  # (src a, split a, src b, split b, bits)
    near_duplicate_bits: int
    unhashed_sources: int = 0  # sources without a phash: checked by id only
    rows_in_wrong_folder: list[str] = field(default_factory=list)  # split column disagrees with the folder

    @property
    def ok(self) -> bool:
        return not (
            self.items_in_several_splits
            or self.sources_in_several_splits
            or self.near_duplicates_across_splits
            or self.rows_in_wrong_folder
        )

    def summary(self) -> str:
        if self.ok:
            return (
                f"no leak: {self.n_items} items from {self.n_sources} sources; no item, source or near-duplicate "
                f"(<= {self.near_duplicate_bits} bits) in two splits"
            )
        return (
            f"LEAK: {len(self.items_in_several_splits)} items and {len(self.sources_in_several_splits)} sources "
            f"in several splits, {len(self.near_duplicates_across_splits)} near-duplicate pairs across splits, "
            f"{len(self.rows_in_wrong_folder)} items in a folder of another split"
        )


def check_leaks(
    rows: Iterable[tuple[str, str, str]],
    phash_by_source: Mapping[str, str],
    near_duplicate_bits: int,
    pairs: list[tuple[str, str, int]] | None = None,
) -> LeakReport:
    """Check ``(item id, source id, split)`` rows, as read back from the written files.

    ``pairs`` (near-duplicate source pairs already computed from the same hashes) saves the O(n^2) search.
    """
    item_splits: dict[str, set[str]] = defaultdict(set)
    source_splits: dict[str, set[str]] = defaultdict(set)
    n_rows = 0
    for item, src, split in rows:
        n_rows += 1
        item_splits[item].add(split)
        source_splits[src].add(split)
    if pairs is None:
        pairs = source_pairs({s: phash_by_source.get(s) for s in source_splits}, near_duplicate_bits)
    cross = []
    for a, b, bits in pairs:
        if a not in source_splits or b not in source_splits:
            continue
        for sa in source_splits[a]:
            for sb in source_splits[b]:
                if sa != sb:
                    cross.append((a, sa, b, sb, bits))
    return LeakReport(
        n_rows=n_rows,
        n_items=len(item_splits),
        n_sources=len(source_splits),
        items_in_several_splits=sorted(i for i, s in item_splits.items() if len(s) > 1),
        sources_in_several_splits=sorted(s for s, sp in source_splits.items() if len(sp) > 1),
        near_duplicates_across_splits=sorted(cross),
        near_duplicate_bits=near_duplicate_bits,
        unhashed_sources=sum(1 for s in source_splits if not phash_by_source.get(s)),
    )
