"""The screening vocabulary, defined once: candidate letters, defect dimensions, the answer.

Every stage, the Label Studio config, the teacher prompt, the rewards and the tests import these
names; ``schemas/defs.schema.json`` carries the same enums and a test holds the two together.
Adding a dimension is one edit here (plus its hotkeys and guideline text).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aescot.errors import InputError

LETTERS: tuple[str, ...] = ("A", "B", "C", "D")
"""Candidate letters, in display order."""

SLOTS = len(LETTERS)
"""Candidates per screening item."""

IMAGE_ORDER: tuple[str, ...] = ("source", *LETTERS)
"""The order images are shown to annotators, the teacher and trained models."""

SPLITS: tuple[str, ...] = ("train", "validation", "test")
"""The export's splits, in order."""

EXPORT_FORMATS: tuple[str, ...] = ("sft", "sft_trl", "rl", "verl", "pairs", "scores", "scores_sft")
"""The export formats (their columns: :mod:`aescot.export.features`)."""


@dataclass(frozen=True)
class Dimension:
    """One defect dimension: its stored id, the short text annotators tick, and a longer hint."""

    id: str
    label: str
    hint: str


DIMENSION_INFO: tuple[Dimension, ...] = (
    Dimension(
        "appearance_deformation",
        "Product deformed / text garbled",
        "the product is warped, melted or swirled, or its printed text is garbled",
    ),
    Dimension(
        "lighting_shadow",
        "Lighting or shadow wrong",
        "shadows or highlights contradict the light: missing, towards the light, or doubled",
    ),
    Dimension(
        "placement_layout",
        "Placement or layout wrong",
        "the product floats, is cut off by the frame, is badly scaled or pushed into a corner",
    ),
    Dimension(
        "extension_rationality",
        "Extension implausible",
        "the generated surroundings have seams, repeated or impossible content, or the product is smeared out",
    ),
)

DIMENSIONS: tuple[str, ...] = tuple(d.id for d in DIMENSION_INFO)
"""Dimension ids, in display order."""

DIMENSION_LABELS: dict[str, str] = {d.id: d.label for d in DIMENSION_INFO}

NONE_ACCEPTABLE = "none"
"""The stored value of "no candidate is acceptable" in the Label Studio ``best`` control."""


class AnswerError(InputError, ValueError):
    """An answer breaks the screening rules (e.g. the best is not among the acceptable)."""


def empty_dimensions() -> dict[str, list[str]]:
    """``{letter: []}`` for every letter."""
    return {letter: [] for letter in LETTERS}


def answer_problems(answer: Mapping[str, Any]) -> list[str]:
    """Every way ``answer`` (acceptable, best, dimensions) breaks the rules; empty when it is valid."""
    problems: list[str] = []
    acceptable = list(answer.get("acceptable") or [])
    best = answer.get("best")
    dims = answer.get("dimensions") or {}
    unknown = sorted(set(acceptable) - set(LETTERS))
    if unknown:
        problems.append(f"acceptable has unknown letters {unknown}")
    if best is not None and best not in LETTERS:
        problems.append(f"best must be one of {', '.join(LETTERS)} or none, got {best!r}")
    elif best is not None and best not in acceptable:
        problems.append(
            f"best is {best} but the acceptable set is {sorted(acceptable)}: the best must be acceptable"
        )
    if best is None and acceptable:
        problems.append(f"best is 'none acceptable' but {sorted(acceptable)} are ticked acceptable")
    for letter, picked in dims.items():
        if letter not in LETTERS:
            problems.append(f"dimensions name an unknown candidate {letter!r}")
            continue
        bad = sorted(set(picked or []) - set(DIMENSIONS))
        if bad:
            problems.append(f"{letter} has unknown dimensions {bad}")
    return problems


def verdict_problems(answer: Mapping[str, Any]) -> list[str]:
    """Per-candidate rules of the labeling page: a flawed (not acceptable) candidate names at least one
    dimension, an acceptable one names none. Empty when ``answer`` keeps them."""
    acceptable = set(answer.get("acceptable") or [])
    dims = answer.get("dimensions") or {}
    problems = []
    for letter in LETTERS:
        picked = list(dims.get(letter) or [])
        if letter in acceptable and picked:
            problems.append(f"{letter} is acceptable but has defects {picked}")
        elif letter not in acceptable and not picked:
            problems.append(f"{letter} is flawed but no defect dimension is given")
    return problems


def check_answer(answer: Mapping[str, Any]) -> None:
    """Raise :class:`AnswerError` naming every problem of ``answer``."""
    problems = answer_problems(answer)
    if problems:
        raise AnswerError("; ".join(problems))
