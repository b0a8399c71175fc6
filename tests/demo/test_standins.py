"""The demo stand-ins on their own: simulated answers obey the answer rules and err at their rate,
the stand-in teacher's noise follows the planted severity, and a Prefect API that cannot start
in time becomes one line with the fix."""

from __future__ import annotations

import random

import pytest

from aescot.demo.annotators import simulated_answer
from aescot.demo.prefect_api import PrefectUnavailable, ensure_prefect_api
from aescot.demo.teacher import BANNER, noisy_answer
from aescot.vocab import LETTERS, answer_problems

PLANTED = {
    "acceptable": ["A", "C"],
    "best": "C",
    "dimensions": {
        "A": [],
        "B": ["lighting_shadow", "placement_layout"],
        "C": [],
        "D": ["appearance_deformation"],
    },
    "scores": {"A": 4, "B": 1, "C": 5, "D": 3},
}
DETAIL = {"A": {}, "B": {"severity": "obvious"}, "C": {}, "D": {"severity": "subtle"}}


def test_simulated_answers_are_valid_and_err_at_their_rate():
    rng = random.Random(0)
    careful = [simulated_answer(PLANTED, DETAIL, 0.0, rng) for _ in range(50)]
    assert all(
        {k: a[k] for k in ("acceptable", "best", "dimensions")}
        == {k: PLANTED[k] for k in ("acceptable", "best", "dimensions")}
        for a in careful
    )
    hasty = [simulated_answer(PLANTED, DETAIL, 0.2, rng) for _ in range(400)]
    assert all(not answer_problems(a) for a in hasty)
    for a in hasty:  # a flawed candidate always has a dimension, an acceptable one none
        assert all(bool(a["dimensions"][L]) != (L in a["acceptable"]) for L in LETTERS)
    missed_subtle = sum("D" in a["acceptable"] for a in hasty) / len(hasty)
    missed_obvious = sum("B" in a["acceptable"] for a in hasty) / len(hasty)
    assert 0.6 < missed_subtle < 0.95 and missed_obvious < 0.35  # 4x the rate for subtle defects


def test_stand_in_misreads_subtle_defects_more_and_says_what_it_is():
    truth = [
        {"dimensions": [], "quality": 4},
        {"dimensions": ["lighting_shadow"], "severity": "obvious", "quality": 2},
        {"dimensions": [], "quality": 5},
        {"dimensions": ["appearance_deformation"], "severity": "subtle", "quality": 3},
    ]
    rng = random.Random(1)
    answers = [noisy_answer(truth, rng)[0] for _ in range(400)]
    assert all(not answer_problems(a) for a in answers)
    right = [a["acceptable"] == ["A", "C"] and a["best"] == "C" for a in answers]
    assert 0.6 < sum(right) / len(right) < 0.85
    assert sum("D" in a["acceptable"] for a in answers) > 4 * sum("B" in a["acceptable"] for a in answers)
    assert "demo stand-in teacher" in BANNER


def test_prefect_api_that_cannot_start_in_time_is_one_line_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    with pytest.raises(PrefectUnavailable) as err:
        ensure_prefect_api()
    msg = str(err.value)
    assert "\n" not in msg and "2 tries" in msg
    assert "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" in msg and "prefect server start" in msg
