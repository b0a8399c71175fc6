"""verl reward for the ``verl`` export format (``custom_reward_function.path=<this file>``).

    reward.custom_reward_function.path=$(python -m aescot.integrations verl)
    reward.custom_reward_function.name=compute_score

verl calls ``compute_score(data_source, solution_str, ground_truth, extra_info)`` per response;
``ground_truth`` is the row's ``reward_model.ground_truth`` (the answer JSON). The returned dict's
``score`` is the reward; the other keys (format, acceptable, best, dimensions, parsed) are logged by
verl as extra metrics. ``format_weight`` (in ``reward_kwargs``) mixes the format credit into ``score``.
"""

from __future__ import annotations

from typing import Any

from aescot.rewards import score_parts


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str | dict[str, Any],
    extra_info: dict[str, Any] | None = None,
    format_weight: float = 0.0,
    **kwargs: Any,
) -> dict[str, float]:
    """The screening reward of one response: ``score`` plus the per-part figures."""
    parts = score_parts(solution_str, ground_truth)
    score = (1.0 - format_weight) * parts["overall"] + format_weight * parts["format"]
    return {"score": score, **parts}
