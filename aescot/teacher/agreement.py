"""How a model's answer is compared with the human answer (the consensus label).

Both answers are ``{"acceptable": [letters], "best": letter | None, "dimensions": {letter: [dims]}}``.

* **acceptable** — ``acceptable_exact``: the two sets are equal (both empty counts as equal);
  ``acceptable_jaccard``: |P ∩ H| / |P ∪ H|, 1.0 when both are empty.
* **best** — ``best``: the same letter, or both ``None`` (nothing acceptable).
* **dimensions** — ``dimensions``: Jaccard over the (letter, dimension) pairs each answer
  flags, |P ∩ H| / |P ∪ H| over the 16 possible pairs, 1.0 when neither flags any defect.
  (With pairs, flagging the right defect on the wrong candidate earns nothing.)

A sample is **consistent** with the humans when ``acceptable_exact and best``: the
multiple-choice answer is right. Dimensions do not decide consistency (annotators agree on
them far less); they rank consistent samples when the filter picks the rationale to keep.

``score`` = mean of ``acceptable_jaccard``, ``best`` (0/1) and ``dimensions``: one number in
[0, 1] per sample, stored as the rationale's ``agreement``.

An item's **consistency** is the share of its k samples that are consistent; a sample whose
output could not be parsed counts as not consistent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from aescot.teacher.parse import LETTERS


@dataclass(frozen=True)
class Agreement:
    """Agreement of one answer with the human answer (see the module docstring)."""

    acceptable_exact: bool
    acceptable_jaccard: float
    best: bool
    dimensions: float

    @property
    def consistent(self) -> bool:
        """The acceptable set and the best choice both match."""
        return self.acceptable_exact and self.best

    @property
    def score(self) -> float:
        """Mean of acceptable Jaccard, best (0/1) and dimension Jaccard."""
        return (self.acceptable_jaccard + float(self.best) + self.dimensions) / 3.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "consistent": self.consistent, "score": self.score}


def _jaccard(a: set, b: set) -> float:
    union = a | b
    return 1.0 if not union else len(a & b) / len(union)


def defect_pairs(answer: Mapping[str, Any]) -> set[tuple[str, str]]:
    """The (letter, dimension) pairs an answer flags."""
    dims = answer.get("dimensions") or {}
    return {(letter, d) for letter in LETTERS for d in (dims.get(letter) or [])}


def answer_agreement(predicted: Mapping[str, Any], human: Mapping[str, Any]) -> Agreement:
    """Compare a (parsed) answer with the human answer; extra keys (a label row's) are ignored."""
    p_acc, h_acc = set(predicted.get("acceptable") or []), set(human.get("acceptable") or [])
    return Agreement(
        acceptable_exact=p_acc == h_acc,
        acceptable_jaccard=_jaccard(p_acc, h_acc),
        best=predicted.get("best") == human.get("best"),
        dimensions=_jaccard(defect_pairs(predicted), defect_pairs(human)),
    )


def consistency(flags: Iterable[bool | None]) -> float | None:
    """Share of samples that are consistent (``None``/``False`` count as not); None if no samples."""
    flags = list(flags)
    if not flags:
        return None
    return sum(1 for f in flags if f) / len(flags)
