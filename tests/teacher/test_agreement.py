import pytest

from aescot.teacher.agreement import answer_agreement, consistency

E = {"A": [], "B": [], "C": [], "D": []}


def ans(acc, best, **dims):
    return {"acceptable": acc, "best": best, "dimensions": {**E, **dims}}


def test_identical_answers_agree_fully():
    a = ans(["A", "C"], "A", B=["lighting_shadow"], D=["placement_layout", "appearance_deformation"])
    ag = answer_agreement(a, a)
    assert ag.consistent and ag.score == 1.0 and ag.dimensions == 1.0


def test_empty_sets_agree():
    ag = answer_agreement(ans([], None), ans([], None))
    assert ag.acceptable_exact and ag.best and ag.acceptable_jaccard == 1.0 and ag.dimensions == 1.0


def test_acceptable_set_must_match_exactly_for_consistency():
    ag = answer_agreement(ans(["A"], "A"), ans(["A", "B"], "A"))
    assert ag.best and not ag.acceptable_exact and not ag.consistent
    assert ag.acceptable_jaccard == pytest.approx(0.5)


def test_wrong_best_is_inconsistent():
    ag = answer_agreement(ans(["A", "B"], "B"), ans(["A", "B"], "A"))
    assert ag.acceptable_exact and not ag.best and not ag.consistent


def test_dimension_jaccard_over_letter_dimension_pairs():
    human = ans([], None, A=["lighting_shadow"], B=["placement_layout"])
    # right defect, wrong candidate for one of them: pairs {(A,ls),(C,pl)} vs {(A,ls),(B,pl)} -> 1/3
    pred = ans([], None, A=["lighting_shadow"], C=["placement_layout"])
    ag = answer_agreement(pred, human)
    assert ag.dimensions == pytest.approx(1 / 3)
    assert ag.consistent  # dimensions do not decide consistency
    assert ag.score == pytest.approx((1 + 1 + 1 / 3) / 3)


def test_label_row_extra_keys_are_ignored():
    label = {**ans(["B"], "B"), "scores": {}, "method": "majority", "item_id": "x"}
    assert answer_agreement(ans(["B"], "B"), label).consistent


def test_consistency_share():
    assert consistency([True, True, False, None, True]) == pytest.approx(0.6)
    assert consistency([]) is None
