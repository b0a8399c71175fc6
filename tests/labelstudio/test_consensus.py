"""Consensus rules and Krippendorff's alpha on hand-made annotations (no server)."""

from __future__ import annotations

import krippendorff
import numpy as np
import pytest

from aescot.contracts import validate
from aescot.labelstudio.agreement import _alpha
from aescot.labelstudio.consensus import consensus
from tests.labelstudio.helpers import answer

ITEM = "a" * 64


def ann(n: int, who: str, ans: dict, status: str = "submitted") -> dict:
    return {
        "annotation_id": f"labelstudio:{n}",
        "annotator": who,
        "status": status,
        "scores": {L: (ans.get("scores") or {}).get(L) for L in "ABCD"},
        **{k: ans[k] for k in ("acceptable", "best", "dimensions")},
    }


def test_single_annotation_is_taken_as_is():
    label = consensus(ITEM, [ann(1, "x", answer("B", ["B"], {"A": ["lighting_shadow"]}, {"B": 4}))])
    assert (label["method"], label["best"], label["scores"]["B"], label["agreement"]) == (
        "single",
        "B",
        4.0,
        1.0,
    )
    validate("label", label)


def test_majority_per_field_keeps_best_inside_acceptable():
    anns = [
        ann(1, "x", answer("A", ["A", "B"], {"C": ["placement_layout"]})),
        ann(2, "y", answer("A", ["A"], {"C": ["placement_layout"], "D": ["lighting_shadow"]})),
        ann(3, "z", answer(None, [], {"C": ["appearance_deformation"]})),
        ann(4, "w", answer(None, [], {}), status="skipped"),
    ]
    label = validate("label", consensus(ITEM, anns))
    assert (label["best"], label["acceptable"], label["n_annotations"]) == ("A", ["A"], 3)
    assert label["dimensions"] == {"A": [], "B": [], "C": ["placement_layout"], "D": []}
    assert label["agreement"] == pytest.approx(2 / 3)


def test_majority_for_none_acceptable():
    anns = [ann(1, "x", answer(None, [])), ann(2, "y", answer(None, [])), ann(3, "z", answer("D", ["D"]))]
    label = validate("label", consensus(ITEM, anns))
    assert (label["best"], label["acceptable"]) == (None, [])


def test_tie_waits_unless_an_adjudicator_answered():
    anns = [ann(1, "x", answer("A", ["A"])), ann(2, "y", answer("B", ["B"]))]
    assert consensus(ITEM, anns) is None
    label = consensus(ITEM, anns, adjudicators=["y"])
    assert (label["method"], label["best"]) == ("adjudicated", "B")
    assert consensus(ITEM, [ann(1, "x", answer(None, []), status="skipped")]) is None


def test_alpha_matches_the_krippendorff_package_and_edges():
    data = np.array(
        [
            [1, 2, 3, 3, 2, 1, 4, 1, 2, np.nan],
            [1, 2, 3, 3, 2, 2, 4, 1, 2, 5],
            [np.nan, 3, 3, 3, 2, 3, 4, 2, 2, 5],
        ],
        dtype=float,
    )
    value, units = _alpha(data, "nominal")
    assert units == 10
    assert value == pytest.approx(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))
    assert _alpha(np.array([[1.0, 0.0], [1.0, 0.0]]), "nominal") == (1.0, 2)
    assert _alpha(np.array([[1.0, 1.0], [1.0, 1.0]]), "nominal") == (None, 2)  # one value only: undefined
    assert _alpha(np.array([[1.0, np.nan], [np.nan, 0.0]]), "nominal") == (None, 0)
