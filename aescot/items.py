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
from dataclasses import dataclass, field
from itertools import permutations
from typing import Any

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


def planted_answers(store: DatasetStore, item_ids: set[str] | None = None) -> dict[str, dict]:
    """item id -> its planted answer (:func:`planted_answer`), for items whose generator knows it."""
    cand = {
        r["candidate_id"]: r
        for r in store.read(
            "candidates", columns=["candidate_id", "params", "known_acceptable", "known_dimensions"]
        )
    }
    out = {}
    for item in store.read("items"):
        if item_ids is not None and item["item_id"] not in item_ids:
            continue
        rows = [cand.get(c["candidate_id"]) for c in sorted(item["candidates"], key=lambda c: c["letter"])]
        answer = planted_answer(rows) if all(rows) else None
        if answer is not None:
            out[item["item_id"]] = answer
    return out


def _gold_rank(item_id: str) -> str:
    return derive_id("gold-pick", item_id)


def build_items(
    store: DatasetStore, source_ids: list[str] | None = None, gold_share: float = DEFAULT_GOLD_SHARE
) -> ItemsReport:
    """One item per finished generation group with 4 candidates (of ``source_ids``, or all).

    Idempotent: the item id follows from its content, existing items are counted, not rewritten.
    A group with fewer than 4 candidates (near-duplicates after every retry) is a reject. Of the new
    items with an unambiguous known answer, just enough become gold (in a hashed order) that gold
    items make ``gold_share`` of all items, as far as such items exist.
    """
    if not 0.0 <= gold_share < 1.0:
        raise ValueError(f"gold_share must be in [0, 1), got {gold_share}")
    report = ItemsReport()
    groups = store.read(GROUPS.name)
    if source_ids is not None:
        wanted = set(source_ids)
        groups = [g for g in groups if g["source_id"] in wanted]
    if not groups:
        return report
    sources = {r["source_id"]: r for r in store.read("sources", columns=["source_id", "image_key"])}
    cand = {
        r["candidate_id"]: r
        for r in store.read(
            "candidates",
            columns=["candidate_id", "image_key", "params", "known_acceptable", "known_dimensions"],
        )
    }
    existing_items = store.read("items", columns=["item_id", "gold"])
    existing = {r["item_id"] for r in existing_items}
    gold_before = sum(1 for r in existing_items if r["gold"])
    rows, answers = [], {}
    for g in sorted(groups, key=lambda g: g["group_id"]):
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
            report.rejects.append(Reject(STAGE, g["group_id"], why, detail, g["source_id"]))
            continue
        ordered = letter_order(g["source_id"], ids)
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
            report.rejects.append(Reject(STAGE, g["group_id"], "invalid_item", str(exc), g["source_id"]))
            continue
        rows.append(record)
        if answer is not None:
            answers[iid] = answer
        existing.add(iid)
        report.built += 1
        report.item_ids.append(iid)
    # gold: enough eligible new items, in hashed order, that gold stays gold_share of all items
    target = int(gold_share * (len(existing_items) + len(rows)) + 0.5)
    for iid in sorted(answers, key=_gold_rank)[: max(0, target - gold_before)]:
        record = next(r for r in rows if r["item_id"] == iid)
        record.update(gold=True, known_answer=answers[iid])
        report.gold += 1
    store.upsert("items", [validate("screening_item", r) for r in rows])
    record_rejects(store, report.rejects)
    return report
