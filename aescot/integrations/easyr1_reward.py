"""EasyR1 batch reward for the ``rl`` export format (``problem``, ``answer``, ``images``).

    worker.reward.reward_function=$(python -m aescot.integrations easyr1):compute_score
    data.prompt_key=problem data.answer_key=answer data.image_key=images
    data.format_prompt=$(python -m aescot.integrations easyr1-prompt)

EasyR1 hands a batch of ``{"response", "response_length", "ground_truth"}`` dicts (``ground_truth`` is
the row's ``answer``, a JSON string) and reads ``overall`` plus any other keys as metrics.
"""

from __future__ import annotations

from typing import Any

from aescot.rewards import score_parts

REWARD_NAME = "aescot_screening"
REWARD_TYPE = "batch"


def compute_score(
    reward_inputs: list[dict[str, Any]], format_weight: float = 0.1, **kwargs: Any
) -> list[dict]:
    """One dict per response: ``overall`` (accuracy mixed with ``format_weight`` of format) and the parts."""
    if not isinstance(reward_inputs, list):
        raise TypeError("use the batch reward type (REWARD_TYPE = 'batch') for this reward function")
    out = []
    for item in reward_inputs:
        parts = score_parts(item["response"], item["ground_truth"])
        accuracy = parts["overall"]
        out.append(
            {
                **parts,
                "accuracy": accuracy,
                "overall": (1.0 - format_weight) * accuracy + format_weight * parts["format"],
            }
        )
    return out
