"""GRPO reward functions for the screening answer, with the signature TRL's ``GRPOTrainer`` calls.

Every function is ``f(completions, **kwargs) -> list[float]``: ``completions`` are strings, or
conversational completions (``[{"role": "assistant", "content": ...}]``); the ground truth comes
from the ``rl`` export's columns, which TRL passes as keyword arguments, one value per completion:
``acceptable`` (list of letters), ``best`` (letter or None) and ``dimensions`` ({letter: [dims]}).

* :func:`format_reward` — 1.0 when the text is exactly ``<think>...</think><answer>...</answer>``
  and the answer parses (:func:`aescot.teacher.parse.parse_answer`), else 0.0.
* :func:`acceptable_reward` — partial credit on the acceptable set, scored as multiple-answer
  multiple-choice exam questions are: 0.0 if any chosen letter is wrong, else the share of the
  right letters chosen (``|P| / |H|``); an empty set is right only when nothing is acceptable.
* :func:`best_reward` — 1.0 when the best letter matches (or both say none is acceptable).
* :func:`dimension_reward` — Jaccard of the (letter, dimension) defect pairs, as in
  :mod:`aescot.teacher.agreement` (1.0 when neither answer flags a defect).
* :func:`screening_reward` — 0.5 acceptable + 0.3 best + 0.2 dimensions;
  :func:`make_screening_reward` builds one with other weights.

An answer that does not parse earns 0.0 from every function.

>>> from trl import GRPOTrainer
>>> from aescot import rewards
>>> GRPOTrainer(..., reward_funcs=[rewards.format_reward, rewards.screening_reward], train_dataset=rl_train)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aescot.teacher.agreement import defect_pairs
from aescot.teacher.parse import AnswerFormatError, parse_answer

RewardFunc = Callable[..., list[float]]
# the reasoning must say something: an empty or whitespace-only <think> earns no format credit
_STRICT = re.compile(r"\A\s*<think>(.*?)</think>\s*<answer>.+?</answer>\s*\Z", re.DOTALL)
WEIGHTS = {"acceptable": 0.5, "best": 0.3, "dimensions": 0.2}


def completion_text(completion: Any) -> str:
    """The text of a completion: a string, a message list (last assistant turn), or typed content parts."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        content = completion.get("content")
        if isinstance(content, list):
            return "".join(p.get("text") or "" for p in content if isinstance(p, Mapping))
        return content or ""
    if isinstance(completion, Sequence) and completion:
        return completion_text(completion[-1])
    return ""


def _parsed(completion: Any) -> dict[str, Any] | None:
    try:
        return parse_answer(completion_text(completion))
    except AnswerFormatError:
        return None


def acceptable_credit(predicted: Sequence[str], truth: Sequence[str]) -> float:
    """Multiple-answer partial credit: 0 with any wrong letter, else the share of right letters chosen."""
    p, h = set(predicted), set(truth)
    if not h:
        return 1.0 if not p else 0.0
    if p - h:
        return 0.0
    return len(p) / len(h)


def best_credit(predicted: str | None, truth: str | None) -> float:
    return 1.0 if predicted == truth else 0.0


def dimension_credit(predicted: Mapping[str, Any], truth: Mapping[str, Any]) -> float:
    """Jaccard of the (letter, dimension) pairs two answers flag; 1.0 when neither flags any."""
    p, h = defect_pairs(predicted), defect_pairs(truth)
    union = p | h
    return 1.0 if not union else len(p & h) / len(union)


def _truths(n: int, kwargs: dict[str, Any], *names: str) -> list[tuple]:
    missing = [k for k in names if k not in kwargs]
    if missing:
        raise KeyError(
            f"reward needs the dataset column(s) {', '.join(missing)} (from the aescot 'rl' export)"
        )
    cols = [kwargs[k] for k in names]
    for name, col in zip(names, cols):
        if len(col) != n:
            raise ValueError(f"{name}: {len(col)} values for {n} completions")
    return list(zip(*cols))


def format_credit(text: str) -> float:
    """1.0 for ``<think>reasoning</think><answer>{parseable}</answer>`` and nothing around it, else 0.0."""
    m = _STRICT.match(text or "")
    return 1.0 if m and m.group(1).strip() and _parsed(text) is not None else 0.0


def score_parts(
    text: str, truth: Mapping[str, Any], weights: Mapping[str, float] | None = None
) -> dict[str, float]:
    """Every credit of one completion against a ground-truth answer, and their weighted ``overall``.

    ``truth`` has ``acceptable``, ``best`` and ``dimensions``; an unparseable answer scores 0 on every
    part. ``overall`` is the weighted sum of acceptable, best and dimensions (:data:`WEIGHTS` by default);
    ``format`` is reported beside it for trainers that add it with a weight of their own.
    """
    w = {**WEIGHTS, **(weights or {})}
    ans = _parsed(text)
    if ans is None:
        parts = {"acceptable": 0.0, "best": 0.0, "dimensions": 0.0}
    else:
        parts = {
            "acceptable": acceptable_credit(ans["acceptable"], truth.get("acceptable") or []),
            "best": best_credit(ans["best"], truth.get("best")),
            "dimensions": dimension_credit(ans, {"dimensions": truth.get("dimensions") or {}}),
        }
    overall = sum(w[k] * v for k, v in parts.items())
    return {"overall": overall, "format": format_credit(text), **parts, "parsed": float(ans is not None)}


def format_reward(completions: list, **kwargs: Any) -> list[float]:
    """1.0 for ``<think>...</think><answer>{parseable}</answer>`` and nothing else around it."""
    return [format_credit(completion_text(c)) for c in completions]


def acceptable_reward(completions: list, acceptable: list, **kwargs: Any) -> list[float]:
    """Partial credit on the acceptable set (see the module docstring)."""
    out = []
    for c, truth in zip(completions, acceptable, strict=True):
        ans = _parsed(c)
        out.append(0.0 if ans is None else acceptable_credit(ans["acceptable"], truth or []))
    return out


def best_reward(completions: list, best: list, **kwargs: Any) -> list[float]:
    """1.0 when the predicted best candidate is the labelled one (both None counts)."""
    out = []
    for c, truth in zip(completions, best, strict=True):
        ans = _parsed(c)
        out.append(0.0 if ans is None else best_credit(ans["best"], truth))
    return out


def dimension_reward(completions: list, dimensions: list, **kwargs: Any) -> list[float]:
    """Jaccard of the flagged (candidate, dimension) defects against the labelled ones."""
    out = []
    for c, truth in zip(completions, dimensions, strict=True):
        ans = _parsed(c)
        out.append(0.0 if ans is None else dimension_credit(ans, {"dimensions": truth or {}}))
    return out


def make_screening_reward(acceptable: float = 0.5, best: float = 0.3, dimensions: float = 0.2) -> RewardFunc:
    """A weighted sum of the acceptable, best and dimension credits (weights need not sum to 1)."""
    weights = (acceptable, best, dimensions)
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"weights must be non-negative with a positive sum, got {weights}")

    def screening_reward(completions: list, **kwargs: Any) -> list[float]:
        rows = _truths(len(completions), kwargs, "acceptable", "best", "dimensions")
        out = []
        for c, (acc, bst, dims) in zip(completions, rows):
            ans = _parsed(c)
            if ans is None:
                out.append(0.0)
                continue
            out.append(
                weights[0] * acceptable_credit(ans["acceptable"], acc or [])
                + weights[1] * best_credit(ans["best"], bst)
                + weights[2] * dimension_credit(ans, {"dimensions": dims or {}})
            )
        return out

    return screening_reward


screening_reward = make_screening_reward()

__all__ = [
    "acceptable_credit",
    "acceptable_reward",
    "best_credit",
    "best_reward",
    "completion_text",
    "dimension_credit",
    "dimension_reward",
    "format_reward",
    "make_screening_reward",
    "screening_reward",
]
