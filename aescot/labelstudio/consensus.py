"""Consensus labels from several annotators (Label Studio community has no overlap/agreement).

Rule, per item, over its live *submitted* annotations (skips do not vote):

* one annotation: taken as is (``single``);
* an annotation by a configured adjudicator settles the item (``adjudicated``);
* otherwise the best candidate needs a strict majority (``none acceptable`` is a choice like
  A-D); each letter is acceptable, and each (letter, dimension) defect present, when a strict
  majority says so (``majority``). Without a majority for best the item waits for another
  annotator or an adjudicator.

The majority rules keep the contract's invariant: a majority for best=X means a majority
ticked X acceptable, and a majority for "none" leaves no letter a majority.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from aescot.labelstudio.mapping import DIMENSIONS, LETTERS
from aescot.timeutil import now_iso


def _mean_scores(anns: list[dict[str, Any]]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for letter in LETTERS:
        vals = [a["scores"][letter] for a in anns if a["scores"].get(letter) is not None]
        out[letter] = round(sum(vals) / len(vals), 4) if vals else None
    return out


def consensus(
    item_id: str, annotations: Iterable[dict[str, Any]], adjudicators: Iterable[str] = ()
) -> dict[str, Any] | None:
    """The label record for one item, or None when there is no submitted annotation or no majority."""
    anns = sorted((a for a in annotations if a["status"] == "submitted"), key=lambda a: a["annotation_id"])
    if not anns:
        return None
    n = len(anns)
    adjudicating = [a for a in anns if a["annotator"] in set(adjudicators)]
    if n == 1 or adjudicating:
        chosen = adjudicating[-1] if adjudicating else anns[0]
        answer = {
            "acceptable": sorted(chosen["acceptable"]),
            "best": chosen["best"],
            "dimensions": {L: list(chosen["dimensions"][L]) for L in LETTERS},
        }
        method = "adjudicated" if adjudicating and n > 1 else "single"
    else:
        votes = Counter(a["best"] or "none" for a in anns)
        top, count = votes.most_common(1)[0]
        if count * 2 <= n:
            return None
        acceptable = sorted(L for L in LETTERS if sum(L in a["acceptable"] for a in anns) * 2 > n)
        dims = {
            L: [d for d in DIMENSIONS if sum(d in a["dimensions"][L] for a in anns) * 2 > n] for L in LETTERS
        }
        answer = {"acceptable": acceptable, "best": None if top == "none" else top, "dimensions": dims}
        method = "majority"
    agree = sum((a["best"] or "none") == (answer["best"] or "none") for a in anns) / n
    return {
        "item_id": item_id,
        **answer,
        "scores": _mean_scores(anns),
        "method": method,
        "n_annotations": n,
        "agreement": round(agree, 6),
        "annotation_ids": [a["annotation_id"] for a in anns],
        "updated_at": now_iso(),
    }
