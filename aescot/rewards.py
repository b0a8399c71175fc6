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

Score rewards for the ``scores`` export (Aes-R1's RAPO, arXiv 2509.21871, as its ``rapo.py`` defines
them; the ground truth is the ``score`` column, the annotators' mean 1-5 score mapped to [0, 1], or the
number in ``solution`` = ``<answer> s </answer>``):

* :func:`absolute_score_reward` — ``exp(-(p - s)^2 / (2 w^2))``, a Gaussian of the error with width
  ``w`` (0.1 as in Aes-R1; :func:`make_absolute_score_reward` sets another).
* :func:`relative_score_reward` — for each completion, the probability that it ranks its candidate above
  each other candidate in the batch, scored against the human order with the fidelity measure and
  averaged over the other candidates (see :func:`relative_score_credits`).

A completion earns 0.0 from both when its last ``<answer>`` holds no number.

The seed paper's DPA reward ("Dynamic Proportional Accuracy", arXiv 2505.23265) is not implemented: its
equation could not be read here, and a guess would not be that paper's reward. :func:`acceptable_credit`
is the exam-style partial credit on the acceptable set.

>>> from trl import GRPOTrainer
>>> from aescot import rewards
>>> GRPOTrainer(..., reward_funcs=[rewards.format_reward, rewards.screening_reward], train_dataset=rl_train)
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
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


def answer_credits(answer: Mapping[str, Any] | None, truth: Mapping[str, Any]) -> dict[str, float]:
    """The acceptable, best and dimension credits of a parsed answer (0.0 each when it did not parse)."""
    if answer is None:
        return {"acceptable": 0.0, "best": 0.0, "dimensions": 0.0}
    return {
        "acceptable": acceptable_credit(answer["acceptable"], truth.get("acceptable") or []),
        "best": best_credit(answer["best"], truth.get("best")),
        "dimensions": dimension_credit(answer, {"dimensions": truth.get("dimensions") or {}}),
    }


def score_parts(
    text: str, truth: Mapping[str, Any] | str, weights: Mapping[str, float] | None = None
) -> dict[str, float]:
    """Every credit of one completion against a ground-truth answer, and their weighted ``overall``.

    ``truth`` has ``acceptable``, ``best`` and ``dimensions`` (or is that answer as JSON text, as the
    exports' ``answer`` and ``reward_model.ground_truth`` columns hold it); an unparseable answer scores
    0 on every part. ``overall`` is the weighted sum of acceptable, best and dimensions (:data:`WEIGHTS`
    by default); ``format`` is reported beside it for trainers that add it with a weight of their own.
    """
    if isinstance(truth, str):
        truth = json.loads(truth)
    w = {**WEIGHTS, **(weights or {})}
    ans = _parsed(text)
    parts = answer_credits(ans, truth)
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


def make_screening_reward(
    acceptable: float = WEIGHTS["acceptable"],
    best: float = WEIGHTS["best"],
    dimensions: float = WEIGHTS["dimensions"],
) -> RewardFunc:
    """A weighted sum of the acceptable, best and dimension credits (weights need not sum to 1)."""
    weights = {"acceptable": acceptable, "best": best, "dimensions": dimensions}
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f"weights must be non-negative with a positive sum, got {tuple(weights.values())}")

    def screening_reward(completions: list, **kwargs: Any) -> list[float]:
        rows = _truths(len(completions), kwargs, "acceptable", "best", "dimensions")
        out = []
        for c, (acc, bst, dims) in zip(completions, rows):
            parts = answer_credits(_parsed(c), {"acceptable": acc, "best": bst, "dimensions": dims})
            out.append(sum(weights[k] * v for k, v in parts.items()))
        return out

    return screening_reward


screening_reward = make_screening_reward()

# --- score rewards (Aes-R1 / RAPO) ----------------------------------------------------------------------

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
SCORE_WIDTH = 0.1  # Aes-R1's width of the Gaussian (scores in [0, 1])
FIDELITY_EPS = 1e-6  # Aes-R1's epsilon inside the fidelity square roots and the variance sum


def predicted_score(text: str) -> float | None:
    """The first number inside the last ``<answer>...</answer>`` of ``text``; None when there is none.

    (Aes-R1 falls back to the whole text without an ``<answer>`` and to a random number without a number;
    here such a completion has no score and earns nothing.)
    """
    found = _ANSWER.findall(text or "")
    if not found:
        return None
    m = _NUMBER.search(found[-1])
    return float(m.group()) if m else None


def absolute_score_credit(predicted: float | None, truth: float, width: float = SCORE_WIDTH) -> float:
    """``exp(-(p - s)^2 / (2 w^2))``: 1.0 for the exact score, 0.61 at one width off, 0.0 without a score."""
    if predicted is None:
        return 0.0
    return math.exp(-0.5 * ((predicted - truth) / width) ** 2)


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def relative_score_credits(
    predicted: Sequence[float | None],
    truths: Sequence[float],
    groups: Sequence[Hashable],
    eps: float = FIDELITY_EPS,
) -> list[float]:
    """RAPO's relative (ranking) reward of every completion in a batch.

    Completions with the same ``groups`` key are generations for one candidate (its human score is
    ``truths``). For group *i* let ``mu_i`` and ``var_i`` be the mean and the sample variance (n - 1; 0 for
    one generation) of its predicted scores. A completion of group *i* predicting ``p`` is compared with
    every other group *z* that has a predicted score:

        P  = Phi((p - mu_z) / sqrt(var_i + var_z + eps))       the probability it ranks i above z
        g  = 1 if s_i >= s_z else 0                            the human order (a tie counts as above)
        F  = sqrt(P g + eps) + sqrt((1 - P)(1 - g) + eps)      the fidelity of P to g

    and its reward is the mean of ``F`` over those groups. A completion without a score earns 0.0 and is
    left out of its group's mean and variance; with no other group in the batch every reward is 0.0.
    """
    n = len(predicted)
    if len(truths) != n or len(groups) != n:
        raise ValueError(f"{n} predictions, {len(truths)} truths and {len(groups)} group keys must match")
    members: dict[Hashable, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    stats: dict[Hashable, tuple[float, float, float]] = {}  # group -> (truth, mean, variance)
    for g, idx in members.items():
        truth = {float(truths[i]) for i in idx}
        if len(truth) > 1:
            raise ValueError(f"group {g!r} has different truths {sorted(truth)}")
        ps = [float(predicted[i]) for i in idx if predicted[i] is not None]
        if not ps:
            continue
        mean = sum(ps) / len(ps)
        var = sum((p - mean) ** 2 for p in ps) / (len(ps) - 1) if len(ps) > 1 else 0.0
        stats[g] = (truth.pop(), mean, var)
    out = []
    for i, p in enumerate(predicted):
        own = stats.get(groups[i])
        others = [v for g, v in stats.items() if g != groups[i]]
        if p is None or own is None or not others:
            out.append(0.0)
            continue
        s_i, _, var_i = own
        total = 0.0
        for s_z, mu_z, var_z in others:
            prob = _phi((float(p) - mu_z) / math.sqrt(var_i + var_z + eps))
            g = 1.0 if s_i >= s_z else 0.0
            total += math.sqrt(prob * g + eps) + math.sqrt((1.0 - prob) * (1.0 - g) + eps)
        out.append(total / len(others))
    return out


def _score_truths(n: int, kwargs: dict[str, Any]) -> list[float]:
    """The human score of each completion: the ``score`` column, else the number in ``solution``."""
    if "score" in kwargs:
        col = [float(v) for v in kwargs["score"]]
    elif "solution" in kwargs:
        col = []
        for v in kwargs["solution"]:
            s = predicted_score(v) if "<answer>" in str(v) else float(v)
            if s is None:
                raise ValueError(f"solution {v!r} holds no score")
            col.append(s)
    else:
        raise KeyError(
            "score rewards need the dataset column score or solution (from the aescot 'scores' export)"
        )
    if len(col) != n:
        raise ValueError(f"{len(col)} scores for {n} completions")
    return col


def _score_groups(n: int, kwargs: dict[str, Any]) -> list[Hashable]:
    """Which completions are generations for one candidate: its ``candidate_id`` column (TRL passes every
    dataset column), else consecutive blocks of ``num_generations`` (Aes-R1's trainer passes that)."""
    if "candidate_id" in kwargs:
        col = list(kwargs["candidate_id"])
        if len(col) != n:
            raise ValueError(f"{len(col)} candidate ids for {n} completions")
        return col
    k = kwargs.get("num_generations")
    if k:
        return [i // int(k) for i in range(n)]
    raise KeyError("the relative score reward needs the candidate_id column or num_generations")


def make_absolute_score_reward(width: float = SCORE_WIDTH) -> RewardFunc:
    """The absolute score reward with a Gaussian of width ``width`` (on the [0, 1] score scale)."""
    if not width > 0:
        raise ValueError(f"width must be positive, got {width}")

    def absolute_score_reward(completions: list, **kwargs: Any) -> list[float]:
        truths = _score_truths(len(completions), kwargs)
        preds = [predicted_score(completion_text(c)) for c in completions]
        return [absolute_score_credit(p, s, width) for p, s in zip(preds, truths)]

    return absolute_score_reward


absolute_score_reward = make_absolute_score_reward()


def relative_score_reward(completions: list, **kwargs: Any) -> list[float]:
    """RAPO's ranking reward over the batch (see :func:`relative_score_credits`)."""
    n = len(completions)
    preds = [predicted_score(completion_text(c)) for c in completions]
    return relative_score_credits(preds, _score_truths(n, kwargs), _score_groups(n, kwargs))


__all__ = [
    "absolute_score_credit",
    "absolute_score_reward",
    "acceptable_credit",
    "acceptable_reward",
    "best_credit",
    "best_reward",
    "completion_text",
    "dimension_credit",
    "dimension_reward",
    "format_reward",
    "make_absolute_score_reward",
    "make_screening_reward",
    "predicted_score",
    "relative_score_credits",
    "relative_score_reward",
    "score_parts",
    "screening_reward",
]
