"""Screening items: a source and its four final candidates as letters A-D.

The letter order is a permutation derived from the item's content (source and candidate ids),
so it is stable across runs but the clean candidate is not always A. Items of a generator
that knows its answers (synthetic) are *gold*: ``known_answer`` holds the acceptable set, the
best one and each candidate's defect dimensions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import permutations

from aescot.contracts import ContractError, validate
from aescot.generate.groups import GROUPS
from aescot.ids import derive_id, item_id
from aescot.rejects import Reject, record_rejects
from aescot.store import DatasetStore
from aescot.timeutil import now_iso
from aescot.vocab import LETTERS

STAGE = "items"
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


def known_answer(candidates: list[dict]) -> dict | None:
    """The ground truth of candidates in letter order, or None when a candidate's answer is unknown
    or the best one would be ambiguous (several acceptable)."""
    if any(c["known_acceptable"] is None for c in candidates):
        return None
    acceptable = [L for L, c in zip(LETTERS, candidates) if c["known_acceptable"]]
    if len(acceptable) > 1:
        return None
    return {
        "acceptable": acceptable,
        "best": acceptable[0] if acceptable else None,
        "dimensions": {L: list(c["known_dimensions"] or []) for L, c in zip(LETTERS, candidates)},
    }


def build_items(store: DatasetStore, source_ids: list[str] | None = None) -> ItemsReport:
    """One item per finished generation group with 4 candidates (of ``source_ids``, or all).

    Idempotent: the item id follows from its content, existing items are counted, not rewritten.
    A group with fewer than 4 candidates (near-duplicates after every retry) is a reject.
    """
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
            "candidates", columns=["candidate_id", "image_key", "known_acceptable", "known_dimensions"]
        )
    }
    existing = store.keys("items")
    rows = []
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
            "gold": answer is not None,
            "known_answer": answer,
            "created_at": now_iso(),
        }
        try:
            rows.append(validate("screening_item", record))
        except ContractError as exc:
            report.rejects.append(Reject(STAGE, g["group_id"], "invalid_item", str(exc), g["source_id"]))
            continue
        existing.add(iid)
        report.built += 1
        report.gold += answer is not None
        report.item_ids.append(iid)
    store.append("items", rows)
    record_rejects(store, report.rejects)
    return report
