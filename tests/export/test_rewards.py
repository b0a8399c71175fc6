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
