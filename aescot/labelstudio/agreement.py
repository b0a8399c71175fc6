"""Inter-annotator agreement (Krippendorff's alpha per field), per-annotator stats, gold scoring."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import krippendorff
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from aescot.labelstudio.collect import live_annotations
from aescot.labelstudio.mapping import DIMENSIONS, LETTERS
from aescot.labelstudio.push import TASKS_TABLE
from aescot.store import DatasetStore

BEST_CODES = {L: i for i, L in enumerate(LETTERS)} | {None: len(LETTERS)}


@dataclass
class FieldAgreement:
    field: str
    alpha: float | None
    units: int  # units rated by at least two annotators
    level: str


@dataclass
class AnnotatorStats:
    annotator: str
    submitted: int = 0
    skipped: int = 0
    mean_lead_time_s: float | None = None
    agrees_with_consensus: float | None = None  # share of labelled items where their best = consensus best


@dataclass
class AgreementReport:
    items: int
    multi_annotated_items: int
    fields: list[FieldAgreement] = field(default_factory=list)
    annotators: list[AnnotatorStats] = field(default_factory=list)

    def alpha(self, name: str) -> float | None:
        return next(f.alpha for f in self.fields if f.field == name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _alpha(matrix: np.ndarray, level: str) -> tuple[float | None, int]:
    """Alpha over units rated by >= 2 annotators; None where undefined (too few units, one value only)."""
    if matrix.size == 0:
        return None, 0
    rated = (~np.isnan(matrix)).sum(axis=0) >= 2
    data = matrix[:, rated]
    units = int(rated.sum())
    if units == 0 or len(np.unique(data[~np.isnan(data)])) < 2:
        return None, units
    try:
        value = float(krippendorff.alpha(reliability_data=data, level_of_measurement=level))
    except (ValueError, ZeroDivisionError):
        return None, units
    return (None if np.isnan(value) else round(value, 6)), units


def agreement_report(store: DatasetStore) -> AgreementReport:
    """Alpha for best (nominal), the acceptable set and each dimension (binary per item x letter),
    and scores (ordinal per item x letter), over submitted live annotations; plus per-annotator stats."""
    by_item = live_annotations(store)
    submitted = {i: [a for a in anns if a["status"] == "submitted"] for i, anns in by_item.items()}
    annotators = sorted({a["annotator"] for anns in by_item.values() for a in anns})
    row = {name: k for k, name in enumerate(annotators)}
    items = sorted(submitted)
    col = {i: k for k, i in enumerate(items)}

    def grid(units: int) -> np.ndarray:
        return np.full((len(annotators), units), np.nan)

    best = grid(len(items))
    per_letter = {name: grid(len(items) * 4) for name in ["acceptable", *DIMENSIONS, "score"]}
    for item_id, anns in submitted.items():
        for a in anns:
            r, c = row[a["annotator"]], col[item_id]
            best[r, c] = BEST_CODES[a["best"]]
            for k, letter in enumerate(LETTERS):
                u = c * 4 + k
                per_letter["acceptable"][r, u] = float(letter in a["acceptable"])
                for d in DIMENSIONS:
                    per_letter[d][r, u] = float(d in a["dimensions"][letter])
                if a["scores"][letter] is not None:
                    per_letter["score"][r, u] = a["scores"][letter]
    fields = [FieldAgreement("best", *_alpha(best, "nominal"), "nominal")]
    for name, m in per_letter.items():
        level = "ordinal" if name == "score" else "nominal"
        fields.append(FieldAgreement(name, *_alpha(m, level), level))

    labels = {r["item_id"]: r for r in store.read("labels", ["item_id", "best", "n_annotations"])}
    per_annotator: dict[str, list[dict[str, Any]]] = {}
    for anns in by_item.values():
        for a in anns:
            per_annotator.setdefault(a["annotator"], []).append(a)
    stats = []
    for name in annotators:
        mine = per_annotator[name]
        sub = [a for a in mine if a["status"] == "submitted"]
        leads = [a["lead_time_s"] for a in sub if a["lead_time_s"] is not None]
        judged = [a for a in sub if a["item_id"] in labels and labels[a["item_id"]]["n_annotations"] > 1]
        agree = (
            (sum(a["best"] == labels[a["item_id"]]["best"] for a in judged) / len(judged)) if judged else None
        )
        stats.append(
            AnnotatorStats(
                name,
                len(sub),
                len(mine) - len(sub),
                round(float(np.mean(leads)), 3) if leads else None,
                None if agree is None else round(agree, 6),
            )
        )
    multi = sum(1 for anns in submitted.values() if len(anns) >= 2)
    return AgreementReport(items=len(items), multi_annotated_items=multi, fields=fields, annotators=stats)


@dataclass
class GoldScore:
    annotator: str
    gold_items: int
    best_accuracy: float | None
    acceptable_exact: float | None
    acceptable_jaccard: float | None
    dimension_accuracy: float | None  # share of the 16 (letter, dimension) cells matching the known answer


@dataclass
class GoldReport:
    gold_items_pushed: int
    gold_items_annotated: int
    excluded_preannotated: int
    annotators: list[GoldScore] = field(default_factory=list)

    def for_annotator(self, name: str) -> GoldScore | None:
        return next((g for g in self.annotators if g.annotator == name), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def gold_report(store: DatasetStore) -> GoldReport:
    """Score each annotator's submitted answers on gold items against the known answers.

    Gold items that were shown with their known answer pre-filled are excluded (they cannot test anyone).
    """
    gold = pc.field("gold") == pa.scalar(True)
    pushed = store.read(TASKS_TABLE.name, ["item_id", "preannotated"], where=gold)
    excluded = {r["item_id"] for r in pushed if r["preannotated"]}
    known = {
        i["item_id"]: i["known_answer"]
        for i in store.read("items", ["item_id", "known_answer"], where=gold)
        if i["known_answer"] and i["item_id"] not in excluded
    }
    by_item = live_annotations(store, set(known))
    per: dict[str, list[tuple[dict, dict]]] = {}
    for item_id, anns in by_item.items():
        for a in anns:
            if a["status"] == "submitted":
                per.setdefault(a["annotator"], []).append((a, known[item_id]))
    scores = []
    for name, pairs in sorted(per.items()):
        n = len(pairs)
        best = sum(a["best"] == k["best"] for a, k in pairs) / n
        exact = sum(set(a["acceptable"]) == set(k["acceptable"]) for a, k in pairs) / n
        jac = (
            sum(
                (
                    len(set(a["acceptable"]) & set(k["acceptable"]))
                    / len(set(a["acceptable"]) | set(k["acceptable"]))
                )
                if (a["acceptable"] or k["acceptable"])
                else 1.0
                for a, k in pairs
            )
            / n
        )
        cells = sum(
            (d in a["dimensions"][L]) == (d in k["dimensions"][L])
            for a, k in pairs
            for L in LETTERS
            for d in DIMENSIONS
        ) / (n * 16)
        scores.append(GoldScore(name, n, round(best, 6), round(exact, 6), round(jac, 6), round(cells, 6)))
    annotated = sum(1 for anns in by_item.values() if any(a["status"] == "submitted" for a in anns))
    return GoldReport(
        gold_items_pushed=len({r["item_id"] for r in pushed}),
        gold_items_annotated=annotated,
        excluded_preannotated=len(excluded),
        annotators=scores,
    )
