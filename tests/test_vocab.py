"""The vocabulary is defined once and the data contracts agree with it."""

from __future__ import annotations

import json

import pytest

from aescot.contracts import schemas_dir
from aescot.vocab import (
    DIMENSIONS,
    LETTERS,
    SLOTS,
    AnswerError,
    answer_problems,
    check_answer,
    empty_dimensions,
)


def test_schema_enums_match_the_vocabulary():
    defs = json.loads((schemas_dir() / "defs.schema.json").read_text())["$defs"]
    assert tuple(defs["letter"]["enum"]) == LETTERS
    assert tuple(defs["dimension"]["enum"]) == DIMENSIONS
    assert tuple(defs["per_candidate_dimensions"]["required"]) == LETTERS
    assert defs["letter_set"]["maxItems"] == SLOTS


def test_a_valid_answer_has_no_problems():
    dims = empty_dimensions() | {"B": ["lighting_shadow"]}
    assert answer_problems({"acceptable": ["A", "C"], "best": "A", "dimensions": dims}) == []
    assert answer_problems({"acceptable": [], "best": None, "dimensions": dims}) == []


@pytest.mark.parametrize(
    ("answer", "fragment"),
    [
        ({"acceptable": ["A"], "best": "B"}, "the best must be acceptable"),
        ({"acceptable": ["A"], "best": None}, "'none acceptable' but ['A']"),
        ({"acceptable": ["E"], "best": None}, "unknown letters ['E']"),
        ({"acceptable": [], "best": None, "dimensions": {"A": ["blurry"]}}, "unknown dimensions ['blurry']"),
    ],
)
def test_contradictions_are_named(answer, fragment):
    with pytest.raises(AnswerError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        check_answer(answer)
