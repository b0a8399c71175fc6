"""Screening items: a source and its four final candidates as letters A-D.

The letter order is a permutation derived from the item's content (source and candidate ids),
so it is stable across runs but the clean candidate is not always A.

A generator that knows its answers (synthetic) plants one per candidate (``known_acceptable``,
``known_dimensions`` and, in ``params``, a 1-5 ``quality``); :func:`planted_answer` reads an
item's. Only a ``gold_share`` of the items become *gold* tasks (``known_answer`` set, scored
against annotators): those whose answer is unambiguous (at most one acceptable candidate, so the
best is certain), chosen by a hash of the item so the share of gold among all items stays at
``gold_share`` as batches arrive.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import permutations
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from aescot.contracts import ContractError, validate
from aescot.generate.groups import GROUPS
from aescot.ids import derive_id, item_id
from aescot.rejects import Reject, record_rejects
from aescot.store import DatasetStore
from aescot.timeutil import now_iso
from aescot.vocab import LETTERS

STAGE = "items"
DEFAULT_GOLD_SHARE = 0.1  # Label Studio's default share of gold tasks (LabelStudioConfig.gold_share)
_ORDERS = list(permutations(range(4)))
READ_CHUNK = 256  # groups (or items) whose rows one keyed read fetches
GROUP_COLUMNS = ["group_id", "source_id", "generator", "candidate_ids", "failed_slots"]
ANSWER_COLUMNS = ["candidate_id", "params", "known_acceptable", "known_dimensions"]
ITEM_CANDIDATE_COLUMNS = ["candidate_id", "image_key", *ANSWER_COLUMNS[1:]]


@dataclass
class ItemsReport:
    """What an item-building run did."""

    groups: int = 0
    built: int = 0
    already_built: int = 0
    gold: int = 0
    rejects: list[Reject] = field(default_factory=list)
    item_ids: list[str] = field(default_factory=list)


def letter_order(source_id: str, candidate_ids: list[str]) -> list[str]:
    """The candidates in letter order A-D: one of the 24 permutations, chosen by a hash of the group."""
    ids = sorted(candidate_ids)
    k = int(derive_id("letters", source_id, ids)[:8], 16) % len(_ORDERS)
    return [ids[i] for i in _ORDERS[k]]


def planted_answer(candidates: list[dict]) -> dict | None:
    """The planted answer of candidates in letter order (acceptable, best, dimensions, scores), or None
    when a candidate's answer is unknown. Best is the acceptable candidate with the highest planted
    ``quality`` in its params (the first letter on ties); scores are the planted qualities."""
    if any(c.get("known_acceptable") is None for c in candidates):
        return None
    quality = [_quality(c) for c in candidates]
    acceptable = [L for L, c in zip(LETTERS, candidates) if c["known_acceptable"]]
    ranked = sorted(acceptable, key=lambda L: -(quality[LETTERS.index(L)] or 0))
    answer: dict[str, Any] = {
        "acceptable": acceptable,
        "best": ranked[0] if ranked else None,
        "dimensions": {L: list(c["known_dimensions"] or []) for L, c in zip(LETTERS, candidates)},
    }
    if all(q is not None for q in quality):
        answer["scores"] = dict(zip(LETTERS, quality))
    return answer


def _quality(candidate: dict) -> int | None:
    params = candidate.get("params")
    if isinstance(params, str):
        params = json.loads(params)
    q = (params or {}).get("quality")
    return int(q) if q is not None else None


def known_answer(candidates: list[dict]) -> dict | None:
    """The answer a gold task is scored against: the planted one when it is unambiguous (at most one
    acceptable candidate, so the best is certain), else None."""
    answer = planted_answer(candidates)
    if answer is None or len(answer["acceptable"]) > 1:
        return None
    return {k: answer[k] for k in ("acceptable", "best", "dimensions")}


def iter_item_candidates(
    store: DatasetStore, item_ids: Iterable[str] | None = None, chunk: int = READ_CHUNK
) -> Iterator[tuple[str, list[dict | None]]]:
    """``(item id, its candidate rows in letter order A-D)`` (None for a row not found) for
    ``item_ids``, or every item. Reads ``chunk`` items and their candidates at a time, by key, with
    only the columns a planted answer needs (:data:`ANSWER_COLUMNS`)."""
    if item_ids is None:
        ids = store.column("items", "item_id").combine_chunks()
    else:
        ids = pa.array(list(item_ids), pa.string())
    for i in range(0, len(ids), chunk):
        items = store.read("items", ["item_id", "candidates"], keys=ids[i : i + chunk])
        cids = [c["candidate_id"] for it in items for c in it["candidates"]]
        cand = {r["candidate_id"]: r for r in store.read("candidates", ANSWER_COLUMNS, keys=cids)}
        for item in items:
            letters = sorted(item["candidates"], key=lambda c: c["letter"])
            yield item["item_id"], [cand.get(c["candidate_id"]) for c in letters]


def iter_planted_answers(
    store: DatasetStore, item_ids: Iterable[str] | None = None, chunk: int = READ_CHUNK
) -> Iterator[tuple[str, dict]]:
    """``(item id, planted answer)`` (:func:`planted_answer`) for items whose generator knows it: of
    ``item_ids``, or of every item, ``chunk`` items at a time (:func:`iter_item_candidates`)."""
    for iid, rows in iter_item_candidates(store, item_ids, chunk):
        answer = planted_answer(rows) if all(rows) else None
        if answer is not None:
            yield iid, answer


def planted_answers(store: DatasetStore, item_ids: Iterable[str] | None = None) -> dict[str, dict]:
    """item id -> its planted answer (:func:`planted_answer`), for items whose generator knows it."""
    return dict(iter_planted_answers(store, item_ids))


def _gold_rank(item_id: str) -> str:
    return derive_id("gold-pick", item_id)


def groups_without_items(store: DatasetStore) -> pa.Array:
    """Group ids that have no screening item yet, sorted (see :func:`_items_backlog`)."""
    return _items_backlog(store)[0]


def _items_backlog(store: DatasetStore) -> tuple[pa.Array, int]:
    """(group ids that have no screening item yet, sorted; how many groups there are): the items
    backlog, once per run.

    An item holds exactly its group's four candidates, so a group is done when its candidates are
    in items: an anti-join of the ledger's flattened candidate ids against the items' (projected
    columns, no row read whole). Groups without four candidates stay in the backlog: each run
    records their reject again (same reject id) instead of forgetting them.
    """
    groups = store.read_arrow(GROUPS.name, ["group_id", "candidate_ids"])
    if not groups.num_rows:
        return pa.array([], pa.string()), 0
    lists = groups.column("candidate_ids").combine_chunks()
    gids = groups.column("group_id").combine_chunks()
    flat = pa.table(
        {
            "group_id": pc.take(gids, pc.list_parent_indices(lists)),
            "candidate_id": pc.list_flatten(lists),
        }
    )
    built = pc.list_flatten(store.column("items", "candidates").combine_chunks())
    built = pa.table({"candidate_id": pc.struct_field(built, "candidate_id")})
    todo = flat.join(built, keys="candidate_id", join_type="left anti", use_threads=False).column("group_id")
    short = gids.filter(pc.not_equal(pc.list_value_length(lists), 4))
    todo = pc.unique(pa.concat_arrays([todo.combine_chunks().cast(pa.string()), short]))
    return pc.take(todo, pc.sort_indices(todo)), groups.num_rows


def build_items(
    store: DatasetStore,
    source_ids: Iterable[str] | None = None,
    gold_share: float = DEFAULT_GOLD_SHARE,
    group_ids: Iterable[str] | None = None,
) -> ItemsReport:
    """One item per finished generation group with 4 candidates: the groups ``group_ids`` (a
    batch's, read by key), else those of ``source_ids``, else every group without an item yet
    (:func:`groups_without_items`).

    Idempotent: the item id follows from its content, existing items are counted, not rewritten.
    A group with fewer than 4 candidates (near-duplicates after every retry) is a reject. Of the new
    items with an unambiguous known answer, just enough become gold (in a hashed order) that gold
    items make ``gold_share`` of all items, as far as such items exist.

    Each chunk of :data:`READ_CHUNK` groups reads only its own ledger, source, candidate and item
    rows (by key, only the columns an item needs); the share of gold so far comes from the row
    count and the gold column.
    """
    if not 0.0 <= gold_share < 1.0:
        raise ValueError(f"gold_share must be in [0, 1), got {gold_share}")
    report = ItemsReport()
    if group_ids is not None:
        wanted = pa.array(sorted(set(group_ids)), pa.string())
    elif source_ids is not None:
        sids = sorted(set(source_ids))
        if not sids:
            return report
        found = store.column(GROUPS.name, "group_id", where=pc.field("source_id").isin(pa.array(sids)))
        wanted = pc.unique(found.combine_chunks())
        wanted = pc.take(wanted, pc.sort_indices(wanted))
    else:
        wanted, total = _items_backlog(store)
        report.groups = report.already_built = total - len(wanted)  # done groups: not read at all
    for i in range(0, len(wanted), READ_CHUNK):
        _build_chunk(store, wanted[i : i + READ_CHUNK], gold_share, report)
    return report


def _build_chunk(store: DatasetStore, group_ids: pa.Array, gold_share: float, report: ItemsReport) -> None:
    groups = sorted(store.read(GROUPS.name, GROUP_COLUMNS, keys=group_ids), key=lambda g: g["group_id"])
    if not groups:
        return
    sources = {
        r["source_id"]: r
        for r in store.read("sources", ["source_id", "image_key"], keys={g["source_id"] for g in groups})
    }
    cids = [c for g in groups for c in g["candidate_ids"]]
    cand = {r["candidate_id"]: r for r in store.read("candidates", ITEM_CANDIDATE_COLUMNS, keys=cids)}
    ordered_by_group = {
        g["group_id"]: letter_order(g["source_id"], list(g["candidate_ids"]))
        for g in groups
        if len(g["candidate_ids"]) == 4
    }
    iids = [
        item_id(g["source_id"], ordered_by_group[g["group_id"]])
        for g in groups
        if g["group_id"] in ordered_by_group
    ]
    existing = set(store.read_arrow("items", ["item_id"], keys=iids).column("item_id").to_pylist())
    items_before = store.count("items")
    gold_before = len(store.column("items", "gold", where=pc.field("gold") == pa.scalar(True)))
    rows, answers, rejects = [], {}, []
    for g in groups:
        report.groups += 1
        ids = list(g["candidate_ids"])
        missing = [c for c in ids if c not in cand]
        if len(ids) != 4 or missing or g["source_id"] not in sources:
            if len(ids) != 4:
                why = "too_few_candidates"
                detail = f"{len(ids)} distinct candidates (slots {g['failed_slots']} stayed near-duplicates): no item"
            elif missing:
                why, detail = "missing_candidates", f"candidate rows not found: {missing}"
            else:
                why, detail = "unknown_source", "the group's source is not in the sources table"
            rejects.append(Reject(STAGE, g["group_id"], why, detail, g["source_id"]))
            continue
        ordered = ordered_by_group[g["group_id"]]
        iid = item_id(g["source_id"], ordered)
        if iid in existing:
            report.already_built += 1
            continue
        answer = known_answer([cand[c] for c in ordered])
        record = {
            "item_id": iid,
            "source_id": g["source_id"],
            "source_image_key": sources[g["source_id"]]["image_key"],
            "candidates": [
                {"letter": L, "candidate_id": c, "image_key": cand[c]["image_key"]}
                for L, c in zip(LETTERS, ordered)
            ],
            "generator": g["generator"],
            "gold": False,
            "known_answer": None,
            "created_at": now_iso(),
        }
        try:
            validate("screening_item", {**record, "gold": answer is not None, "known_answer": answer})
        except ContractError as exc:
            rejects.append(Reject(STAGE, g["group_id"], "invalid_item", str(exc), g["source_id"]))
            continue
        rows.append(record)
        if answer is not None:
            answers[iid] = answer
        existing.add(iid)
        report.built += 1
        report.item_ids.append(iid)
    # gold: enough eligible new items, in hashed order, that gold stays gold_share of all items
    target = int(gold_share * (items_before + len(rows)) + 0.5)
    by_id = {r["item_id"]: r for r in rows}
    for iid in sorted(answers, key=_gold_rank)[: max(0, target - gold_before)]:
        by_id[iid].update(gold=True, known_answer=answers[iid])
        report.gold += 1
    store.upsert("items", [validate("screening_item", r) for r in rows], validate=False)  # validated here
    record_rejects(store, rejects)
    report.rejects.extend(rejects)
