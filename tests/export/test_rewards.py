"""GRPO reward functions: TRL's calling convention, partial credit, format, parse failures."""

from __future__ import annotations

import pytest

from aescot import rewards
from aescot.teacher.parse import format_response

TRUTH = {
    "acceptable": ["A", "C"],
    "best": "C",
    "dimensions": {
        "A": [],
        "B": ["lighting_shadow"],
        "C": [],
        "D": ["placement_layout", "appearance_deformation"],
    },
}


def _reply(acceptable, best, dims=None) -> str:
    return format_response(
        "walk A-D", {"acceptable": acceptable, "best": best, "dimensions": dims or {k: [] for k in "ABCD"}}
    )


def _kwargs(n: int) -> dict:
    """Columns as TRL's GRPOTrainer passes them: one value per completion, plus its own extras."""
    return {
        "acceptable": [TRUTH["acceptable"]] * n,
        "best": [TRUTH["best"]] * n,
        "dimensions": [TRUTH["dimensions"]] * n,
        "prompts": ["q"] * n,
        "completion_ids": [[1]] * n,
        "trainer_state": None,
        "log_extra": None,
        "log_metric": None,
    }


def test_acceptable_partial_credit_like_multiple_answer_exams():
    cs = [_reply(["A", "C"], "C"), _reply(["C"], "C"), _reply(["A", "B", "C"], "C"), _reply([], None)]
    assert rewards.acceptable_reward(cs, **_kwargs(4)) == [1.0, 0.5, 0.0, 0.0]
    assert rewards.acceptable_credit([], []) == 1.0 and rewards.acceptable_credit(["A"], []) == 0.0


def test_best_and_dimension_rewards():
    cs = [_reply(["A", "C"], "C", TRUTH["dimensions"]), _reply(["A", "C"], "A", {"B": ["lighting_shadow"]})]
    assert rewards.best_reward(cs, **_kwargs(2)) == [1.0, 0.0]
    assert rewards.dimension_reward(cs, **_kwargs(2)) == [1.0, pytest.approx(1 / 3)]


def test_format_reward_is_strict_about_the_envelope():
    good = _reply(["A"], "A")
    cs = [good, "Sure! " + good, good.replace("<think>", ""), "<think>x</think><answer>{not json}</answer>"]
    assert rewards.format_reward(cs) == [1.0, 0.0, 0.0, 0.0]


def test_an_empty_think_earns_no_format_credit():
    answer = _reply(["A"], "A").split("</think>", 1)[1]
    cs = ["<think></think>" + answer, "<think> \n\t </think>" + answer, "<think>.</think>" + answer]
    assert rewards.format_reward(cs) == [0.0, 0.0, 1.0]


def test_conversational_completions_and_garbage():
    conv = [
        [{"role": "assistant", "content": _reply(["A", "C"], "C", TRUTH["dimensions"])}],
        [{"role": "assistant", "content": [{"type": "text", "text": _reply(["A", "C"], "C")}]}],
        [{"role": "assistant", "content": "no idea"}],
    ]
    out = rewards.screening_reward(conv, **_kwargs(3))
    assert out[0] == pytest.approx(1.0) and out[1] == pytest.approx(0.8) and out[2] == 0.0
    assert rewards.format_reward(conv) == [1.0, 1.0, 0.0]


def test_weights_and_missing_columns():
    only_best = rewards.make_screening_reward(acceptable=0, best=1, dimensions=0)
    assert only_best([_reply(["A"], "A")], **_kwargs(1)) == [0.0]
    with pytest.raises(KeyError, match="rl"):
        rewards.screening_reward([_reply(["A"], "A")], best=["A"])
    with pytest.raises(ValueError):
        rewards.make_screening_reward(-1, 1, 1)


def test_rewards_on_rows_of_the_rl_export(exported):
    """Feed the exported columns exactly as GRPOTrainer does: repeat each row per generation."""
    import datasets  # a core dependency: never skipped

    _, out, _ = exported
    ds = datasets.load_dataset("parquet", data_files=str(out / "rl" / "train" / "*.parquet"))["train"]
    inputs = [r for r in ds.remove_columns("images").select(range(4)) for _ in range(2)]
    keys = [k for k in inputs[0] if k not in ("prompt", "completion", "completion_ids")]
    kwargs = {k: [ex[k] for ex in inputs] for k in keys}
    completions = [
        [
            {
                "role": "assistant",
                "content": format_response("r", {k: ex[k] for k in ("acceptable", "best", "dimensions")}),
            }
        ]
        for ex in inputs
    ]
    assert rewards.screening_reward(completions, prompts=[ex["prompt"] for ex in inputs], **kwargs) == [
        pytest.approx(1.0)
    ] * len(inputs)


# --- score rewards (Aes-R1 / RAPO), hand-computed ---------------------------------------------------------


def _said(score) -> str:
    return f"<think>the label is legible, the shadow falls left</think><answer>{score}</answer>"


def test_the_predicted_score_is_the_first_number_of_the_last_answer():
    assert rewards.predicted_score(_said("0.62")) == 0.62
    assert rewards.predicted_score("<answer>0.1</answer> then <answer> about 0.7, maybe 0.8 </answer>") == 0.7
    assert rewards.predicted_score("<think>0.9</think> no answer tag") is None
    assert rewards.predicted_score(_said("n/a")) is None


def test_absolute_score_reward_is_a_gaussian_of_the_error():
    # exp(-(p - s)^2 / (2 w^2)): error 0 -> 1; error 0.1 = one width -> e^-0.5 = 0.60653;
    # error 0.25 -> e^-3.125 = 0.04394; width 0.2, error 0.1 -> e^-0.125 = 0.88250
    cs = [_said("0.6"), _said("0.7"), _said("0.35"), "<answer>none</answer>"]
    out = rewards.absolute_score_reward(cs, score=[0.6] * 4)
    assert out == [1.0, pytest.approx(0.60653, abs=1e-5), pytest.approx(0.04394, abs=1e-5), 0.0]
    wide = rewards.make_absolute_score_reward(width=0.2)
    assert wide([_said("0.7")], score=[0.6]) == [pytest.approx(0.88250, abs=1e-5)]
    # the Aes-R1 `solution` column gives the same truth
    assert rewards.absolute_score_reward(cs, solution=["<answer> 0.6 </answer>"] * 4) == out
    with pytest.raises(KeyError, match="scores"):
        rewards.absolute_score_reward(cs)
    with pytest.raises(ValueError):
        rewards.make_absolute_score_reward(width=0)


def test_relative_score_reward_by_hand():
    """Two candidates, two generations each. X (human 0.8) predicted 0.8, 0.6: mean 0.7, sample variance
    0.02; Y (human 0.3) predicted 0.4, 0.2: mean 0.3, variance 0.02; sqrt(0.02 + 0.02) = 0.2.
    X@0.8 vs Y: Phi((0.8 - 0.3) / 0.2) = Phi(2.5) = 0.99379, X above Y (g = 1): sqrt(0.99379) + sqrt(1e-6)
    = 0.99689 + 0.001 = 0.99789. X@0.6: Phi(1.5) = 0.93319 -> 0.96602 + 0.001 = 0.96702.
    Y@0.4 vs X: Phi((0.4 - 0.7) / 0.2) = Phi(-1.5) = 0.06681, Y below X (g = 0): sqrt(1 - 0.06681) + 0.001
    = 0.96702; Y@0.2: Phi(-2.5) -> 0.99789."""
    cs = [_said(p) for p in ("0.8", "0.6", "0.4", "0.2")]
    kw = {"score": [0.8, 0.8, 0.3, 0.3], "candidate_id": ["x", "x", "y", "y"]}
    expected = [pytest.approx(v, abs=1e-4) for v in (0.99789, 0.96702, 0.96702, 0.99789)]
    assert rewards.relative_score_reward(cs, **kw) == expected
    # Aes-R1's trainer groups by consecutive blocks of num_generations instead
    assert rewards.relative_score_reward(cs, score=kw["score"], num_generations=2) == expected
    # the wrong order: X predicted 0.2, 0.4 (mean 0.3), Y 0.7, 0.9 (mean 0.8): X@0.2 vs Y
    # Phi((0.2 - 0.8) / 0.2) = Phi(-3) = 0.00135, g = 1: sqrt(0.00135) + 0.001 = 0.03774;
    # X@0.4: Phi(-2) = 0.02275 -> 0.15083 + 0.001 = 0.15183; Y mirrors X
    wrong = rewards.relative_score_reward([_said(p) for p in ("0.2", "0.4", "0.7", "0.9")], **kw)
    assert wrong == [pytest.approx(v, abs=1e-4) for v in (0.03774, 0.15183, 0.15183, 0.03774)]


def test_relative_score_reward_edge_cases():
    # equal human scores count as "above" (Aes-R1's >=); equal predictions: Phi(0) = 0.5 -> sqrt(0.5) + 0.001
    tie = rewards.relative_score_reward(
        [_said("0.5"), _said("0.5")], score=[0.5, 0.5], candidate_id=["a", "b"]
    )
    assert tie == [pytest.approx(0.70811, abs=1e-5)] * 2
    # ... so of two equally scored candidates, the one predicted lower is "wrongly" below: b@0.4 vs a@0.6
    # Phi(-0.2 / 0.001) = 0, g = 1 -> sqrt(1e-6) + sqrt(1e-6) = 0.002; a gets 1 + 0.001
    split = rewards.relative_score_reward(
        [_said("0.6"), _said("0.4")], score=[0.5, 0.5], candidate_id=["a", "b"]
    )
    assert split == [pytest.approx(1.001, abs=1e-6), pytest.approx(0.002, abs=1e-6)]
    # one candidate in the batch: nothing to rank against
    assert (
        rewards.relative_score_reward([_said("0.5")] * 2, score=[0.5] * 2, candidate_id=["a", "a"])
        == [0.0] * 2
    )
    # a completion without a score earns 0 and stays out of its group's mean/variance: b's one prediction
    # 0.9 has variance 0; a (0.2) vs b: Phi((0.2 - 0.9) / sqrt(1e-6)) ~ 0, a below b (g = 0) -> 1.001
    out = rewards.relative_score_reward(
        [_said("0.2"), _said("0.9"), "<answer>?</answer>"],
        score=[0.1, 0.9, 0.9],
        candidate_id=["a", "b", "b"],
    )
    assert out == [pytest.approx(1.001, abs=1e-6), pytest.approx(1.001, abs=1e-6), 0.0]
    with pytest.raises(ValueError, match="different truths"):
        rewards.relative_score_credits([0.1, 0.2], [0.3, 0.4], ["a", "a"])
    with pytest.raises(KeyError, match="candidate_id"):
        rewards.relative_score_reward([_said("0.5")], score=[0.5])


def test_score_rewards_on_rows_of_the_scores_export(exported):
    """Feed the exported columns as GRPOTrainer does (each row repeated per generation)."""
    import datasets

    _, out, _ = exported
    ds = datasets.load_dataset("parquet", data_files=str(out / "scores" / "train" / "*.parquet"))["train"]
    rows = [r for r in ds.remove_columns("image").select(range(8)) for _ in range(2)]
    kwargs = {k: [r[k] for r in rows] for k in rows[0] if k != "prompt"}
    truthful = [[{"role": "assistant", "content": _said(f"{r['score']:.2f}")}] for r in rows]
    assert rewards.absolute_score_reward(truthful, **kwargs) == [pytest.approx(1.0, abs=1e-3)] * len(rows)
    reversed_ = [[{"role": "assistant", "content": _said(f"{1 - r['score']:.2f}")}] for r in rows]
    good, bad = (rewards.relative_score_reward(c, **kwargs) for c in (truthful, reversed_))
    assert sum(good) > sum(bad)
