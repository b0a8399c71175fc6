"""The ``rl`` export and the EasyR1 plug-ins against EasyR1's documented contract.

EasyR1 is not on PyPI and its dataset class needs a Qwen2-VL processor, so this checks what that class
does with a row, read from hiyouga/EasyR1 at b44b311 (``verl/utils/dataset.py``): it renders
``format_prompt`` with ``jinja2.Template(...).render(content=problem)``, splits the prompt on
``<image>`` into one image part per entry of ``images``, and hands ``answer`` to the batch reward as
``ground_truth`` (``verl/workers/reward/function.py``), which must return ``overall`` per response.
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets
from jinja2 import Template

from aescot.integrations import easyr1_reward
from aescot.integrations.__main__ import FILES


def _row(out: Path) -> dict:
    files = sorted(str(p) for p in (out / "rl" / "train").glob("*.parquet"))
    return datasets.load_dataset("parquet", data_files=files, split="train")[0]


def test_rl_rows_are_what_easyr1_reads(exported):
    _, out, _ = exported
    row = _row(out)
    prompt = Template(Path(FILES["easyr1-prompt"]).read_text().strip()).render(content=row["problem"])
    assert prompt.startswith(row["problem"].strip()) and "<answer>" in prompt
    parts = prompt.split("<image>")
    assert len(parts) - 1 == len(row["images"]) == 5, "one <image> per image: source, A, B, C, D"
    assert set(json.loads(row["answer"])) >= {"acceptable", "best", "dimensions"}


def test_batch_reward_scores_each_response(exported):
    _, out, _ = exported
    gt = _row(out)["answer"]
    inputs = [
        {
            "response": f"<think>walk A-D</think><answer>{gt}</answer>",
            "response_length": 9,
            "ground_truth": gt,
        },
        {"response": f"<think></think><answer>{gt}</answer>", "response_length": 5, "ground_truth": gt},
        {"response": "I cannot tell", "response_length": 3, "ground_truth": gt},
    ]
    assert easyr1_reward.REWARD_TYPE == "batch"
    scores = easyr1_reward.compute_score(inputs, format_weight=0.1)
    assert [s["overall"] for s in scores] == [1.0, 0.9, 0.0]
    assert [s["format"] for s in scores] == [1.0, 0.0, 0.0], "an empty <think> earns no format credit"
    assert all({"overall", "accuracy", "acceptable", "best", "dimensions"} <= set(s) for s in scores)
