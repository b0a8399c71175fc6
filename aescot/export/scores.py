"""Rows of the ``scores`` formats: one per scored candidate, for Aes-R1's cold start and its RAPO RL stage.

A candidate's target is its annotators' mean 1-5 score mapped to [0, 1] (``(mean - 1) / 4``), with their
spread (population standard deviation, same scale). The annotators are the ones the consensus label used
(``label.annotation_ids``), read from the per-annotator ``annotations`` table; an annotator who left the
candidate unscored does not count, and a candidate nobody scored gets no row.

* ``scores`` (RAPO RL): ``problem`` (the question text), ``solution`` = ``<answer> s </answer>``, ``image``
  = [source, candidate] (the key Aes-R1's trainer reads; a list, which it accepts), ``prompt`` (typed
  chat turn: both images, then the text, as Aes-R1 builds it), the score figures and the candidate's labels.
* ``scores_sft`` (cold start, LLaMA-Factory sharegpt): ``messages`` ending in
  ``<think>rationale</think><answer>s</answer>``, ``images``. The store holds no per-candidate teacher
  text: a kept item's rationale walks A-D in one text. A row is written only where that text has a
  section of its own for the candidate (:func:`candidate_sections`), so the rationale is the teacher's
  words about that candidate alone; the card counts how many scored candidates have one.
"""

from __future__ import annotations

import math
import re
from typing import Any

from aescot.export.rows import typed_content
from aescot.teacher.prompts import IMAGE_PLACEHOLDER
from aescot.vocab import DIMENSION_INFO, LETTERS

SCORE_MIN, SCORE_MAX = 1, 5

SCORE_QUESTION = (
    "You are screening an AI-generated image of a medicine or health product for an online pharmacy. "
    "The first image is the source photo of the product; the second was generated from it (a new background, "
    "an outpainted wider canvas, or new lighting). Judge the generated image against the source on four "
    "dimensions:\n"
    + "\n".join(f"- {d.id}: {d.hint}." for d in DIMENSION_INFO)
    + "\nRate its overall quality as a number between 0 and 1, rounded to two decimal places, where 0 is "
    "unusable and 1 is excellent. Think inside <think></think>, then give only the rating inside "
    "<answer></answer>, e.g. <think>...</think><answer>0.75</answer>"
)
"""The question of every ``scores`` row (the images come before it, source then candidate)."""

SCORE_PROMPT = IMAGE_PLACEHOLDER * 2 + "\n" + SCORE_QUESTION
"""The user turn of the cold-start rows: one ``<image>`` per image, then the question."""


def normalise(score: float) -> float:
    """A 1-5 score on [0, 1]."""
    return (score - SCORE_MIN) / (SCORE_MAX - SCORE_MIN)


def score_stats(label: dict, annotations: dict[str, dict]) -> dict[str, dict[str, Any]]:
    """Per letter (only letters someone scored): ``score``, ``score_std`` (both on [0, 1]), the raw 1-5
    ``score_mean`` and ``scores_raw``, ``n_scores``; from the submitted annotations the label lists."""
    anns = [annotations[a] for a in label["annotation_ids"] if a in annotations]
    anns = [a for a in anns if a["status"] == "submitted"]
    out: dict[str, dict[str, Any]] = {}
    for letter in LETTERS:
        raw = [float(a["scores"][letter]) for a in anns if (a["scores"] or {}).get(letter) is not None]
        if not raw:
            continue
        mean = sum(raw) / len(raw)
        std = math.sqrt(sum((v - mean) ** 2 for v in raw) / len(raw))
        out[letter] = {
            "score": round(normalise(mean), 6),
            "score_std": round(std / (SCORE_MAX - SCORE_MIN), 6),
            "score_mean": round(mean, 6),
            "scores_raw": raw,
            "n_scores": len(raw),
        }
    return out


def answer_text(score: float) -> str:
    """The score as a model writes it: two decimals (the width of the absolute reward is 0.1)."""
    return f"{score:.2f}"


# A section heading: "Candidate A:" anywhere, or "A:", "A)", "**A**", "### Candidate A" at a line start.
_HEADING = re.compile(
    r"(?:\bCandidate\s+(?P<inline>[A-D])\b\**\s*[:\-\u2013\u2014]"
    r"|^[ \t]*(?:[#>*\-]+[ \t]*)?(?:\*\*)?(?:Candidate[ \t]+)?(?P<line>[A-D])(?:\*\*)?[ \t]*[:.)])",
    re.MULTILINE,
)
_OTHER = re.compile(r"\bcandidates?\s+([A-D])\b", re.IGNORECASE)
_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


def candidate_sections(rationale_text: str) -> dict[str, str]:
    """The section of a rationale's ``<think>`` about each candidate, where the text has clean ones.

    Sections start at the first heading of each letter; the four must appear in the order A, B, C, D
    (the teacher prompt asks for that walk). A section runs to the next letter's heading; D's to the end of
    its line when the walk is one line per candidate, else to the end of its paragraph (what follows is the
    comparison of the candidates). A section that names another candidate ("unlike candidate B") or is empty is left out:
    it is not about this candidate alone. No sections at all when the headings are missing or out of order.
    """
    m = _THINK.search(rationale_text or "")
    think = m.group(1) if m else ""
    first: dict[str, re.Match] = {}
    for h in _HEADING.finditer(think):
        letter = h.group("inline") or h.group("line")
        first.setdefault(letter, h)
    if set(first) != set(LETTERS):
        return {}
    starts = [first[k].start() for k in LETTERS]
    if starts != sorted(starts):
        return {}
    # one line per candidate (A-C have no line break inside): D's section is its line; else its paragraph
    one_line = all(
        "\n" not in think[first[k].end() : starts[i + 1]].strip() for i, k in enumerate(LETTERS[:-1])
    )
    out: dict[str, str] = {}
    for i, letter in enumerate(LETTERS):
        begin = first[letter].end()
        if i + 1 < len(LETTERS):
            end = starts[i + 1]
        else:
            stop = think.find("\n" if one_line else "\n\n", begin)
            end = stop if stop != -1 else len(think)
        text = think[begin:end].strip()
        if text and all(o == letter for o in _OTHER.findall(text)):
            out[letter] = text
    return out


def _common(item: dict, letter: str, split: str) -> dict[str, Any]:
    cand = next(c for c in item["candidates"] if c["letter"] == letter)
    return {
        "item_id": item["item_id"],
        "source_id": item["source_id"],
        "split": split,
        "candidate_id": cand["candidate_id"],
        "letter": letter,
    }


def _figures(stats: dict[str, Any], label: dict, letter: str) -> dict[str, Any]:
    return {
        "score": stats["score"],
        "score_std": stats["score_std"],
        "score_mean": stats["score_mean"],
        "scores_raw": stats["scores_raw"],
        "n_scores": stats["n_scores"],
        "acceptable": letter in label["acceptable"],
        "dimensions": list(label["dimensions"][letter]),
    }


def score_rl_row(item: dict, label: dict, letter: str, stats: dict, pair: list[dict], split: str) -> dict:
    """RAPO's RL row of one candidate: ``pair`` is [source image, candidate image]."""
    return {
        **_common(item, letter, split),
        "problem": SCORE_QUESTION,
        "solution": f"<answer> {answer_text(stats['score'])} </answer>",
        "image": pair,
        "prompt": [{"role": "user", "content": typed_content(SCORE_PROMPT)}],
        **_figures(stats, label, letter),
    }


def score_sft_row(
    item: dict,
    label: dict,
    letter: str,
    stats: dict,
    pair: list[dict],
    split: str,
    section: str,
    rationale_id: str,
) -> dict:
    """The cold-start row of one candidate: its rationale section in ``<think>``, its score in ``<answer>``."""
    reply = f"<think>{section}</think><answer>{answer_text(stats['score'])}</answer>"
    return {
        **_common(item, letter, split),
        "messages": [{"role": "user", "content": SCORE_PROMPT}, {"role": "assistant", "content": reply}],
        "images": pair,
        **_figures(stats, label, letter),
        "rationale_id": rationale_id,
    }
