"""Read a model's screening answer out of its output text.

Accepted shapes (the first that applies wins):

* ``<think>reasoning</think><answer>{json}</answer>`` — the format the prompts ask for; the
  last ``<answer>`` block is used, and its body may be JSON (optionally in a code fence) or
  ``key: value`` lines (``acceptable: A, C`` / ``best: A`` / ``B: lighting_shadow``);
* a bare JSON object (servers with structured output), either the answer itself or a
  wrapper ``{"reasoning": "...", "answer": {...}}``;
* a JSON code fence anywhere in the text.

The answer is normalised: letters upper-case and sorted, dimensions in canonical order,
every candidate A-D present in ``dimensions``. Anything else raises :class:`AnswerFormatError`
with a short ``reason`` code and a readable message.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from aescot.errors import InputError
from aescot.vocab import DIMENSIONS, LETTERS

_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL | re.IGNORECASE)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_STRAY_THINK = re.compile(r"</?think>", re.IGNORECASE)  # servers that strip the opening tag
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)
_NONE_WORDS = {"", "none", "null", "nil", "n/a", "-", "no", "empty"}


class AnswerFormatError(InputError, ValueError):
    """The text holds no readable, self-consistent answer. ``reason`` is a stable code."""

    def __init__(self, reason: str, message: str):
        self.reason = reason
        super().__init__(f"{reason}: {message}")


@dataclass(frozen=True)
class ParsedResponse:
    """A model output split into its reasoning (may be empty) and its normalised answer."""

    reasoning: str
    answer: dict[str, Any]


def parse_answer(text: str) -> dict[str, Any]:
    """The normalised answer ``{"acceptable": [...], "best": str|None, "dimensions": {...}}`` in ``text``."""
    return parse_response(text).answer


def parse_response(text: str) -> ParsedResponse:
    """Split ``text`` into reasoning and answer; see the module docstring for the shapes read."""
    if text is None or not str(text).strip():
        raise AnswerFormatError("empty", "the output is empty")
    text = str(text)
    thinks = _THINK.findall(text)
    answers = _ANSWER.findall(text)
    if answers:
        obj = _read_body(answers[-1])
        reasoning = (
            "\n".join(t.strip() for t in thinks)
            if thinks
            else _STRAY_THINK.sub("", _ANSWER.sub("", text)).strip()
        )
        return ParsedResponse(reasoning, normalise_answer(obj))
    stripped = text.strip()
    whole = _try_json(stripped)
    if isinstance(whole, dict):
        reasoning, obj = _unwrap(whole)
        return ParsedResponse(reasoning, normalise_answer(obj))
    fences = _FENCE.findall(text)
    if fences:
        obj = _try_json(fences[-1].strip())
        if isinstance(obj, dict):
            reasoning, inner = _unwrap(obj)
            outside = _FENCE.sub("", text).strip()
            return ParsedResponse(reasoning or outside, normalise_answer(inner))
    raise AnswerFormatError("no_answer", "found no <answer>...</answer> block and no JSON answer object")


def format_answer(answer: dict[str, Any]) -> str:
    """The canonical one-line JSON of a (normalised) answer, as written inside ``<answer>``."""
    ans = normalise_answer(answer)
    return json.dumps(ans, ensure_ascii=False)


def format_response(reasoning: str, answer: dict[str, Any]) -> str:
    """The canonical training text: ``<think>reasoning</think>\\n<answer>{json}</answer>``."""
    return f"<think>{reasoning.strip()}</think>\n<answer>{format_answer(answer)}</answer>"


def _try_json(body: str) -> Any:
    try:
        return json.loads(body)
    except (json.JSONDecodeError, ValueError):
        return None


def _unwrap(obj: dict[str, Any]) -> tuple[str, Any]:
    """``{"reasoning": ..., "answer": {...}}`` -> (reasoning, answer); a bare answer -> ("", obj)."""
    reasoning = ""
    for key in ("reasoning", "rationale", "think", "thinking", "analysis"):
        if isinstance(obj.get(key), str):
            reasoning = obj[key]
            break
    if isinstance(obj.get("answer"), dict):
        return reasoning, obj["answer"]
    return reasoning, {k: v for k, v in obj.items() if k in ("acceptable", "best", "dimensions")} or obj


def _read_body(body: str) -> dict[str, Any]:
    body = body.strip()
    fence = _FENCE.search(body)
    candidate = fence.group(1).strip() if fence else body
    obj = _try_json(candidate)
    if isinstance(obj, dict):
        return _unwrap(obj)[1]
    if candidate.startswith("{"):
        raise AnswerFormatError("bad_json", f"the <answer> block is not valid JSON: {candidate[:120]!r}")
    return _read_lines(candidate)


def _read_lines(body: str) -> dict[str, Any]:
    """``acceptable: A, C`` / ``best: A`` / ``B: lighting_shadow, placement_layout`` lines."""
    out: dict[str, Any] = {"dimensions": {}}
    for raw in body.splitlines():
        if not raw.strip():
            continue
        key, sep, value = raw.partition(":")
        if not sep:
            raise AnswerFormatError("bad_line", f"answer line without 'key: value': {raw.strip()[:80]!r}")
        key = key.strip().strip("-* ").lower()
        if key == "acceptable":
            out["acceptable"] = _split_words(value)
        elif key == "best":
            out["best"] = value.strip()
        elif key.upper() in LETTERS:
            out["dimensions"][key.upper()] = _split_words(value)
        else:
            raise AnswerFormatError("bad_line", f"unknown answer key {key!r}")
    if "acceptable" not in out or "best" not in out:
        raise AnswerFormatError("missing_key", "the answer needs an 'acceptable' and a 'best' line")
    return out


def _split_words(value: str) -> list[str]:
    words: list[str] = []
    for piece in re.split(r"[,;]+", value.strip().strip("[]")):
        piece = piece.strip().strip("\"'")
        if re.fullmatch(r"[A-Da-d](\s+[A-Da-d])+", piece):  # "A C": letters separated by spaces
            words.extend(piece.split())
        elif piece:
            words.append(piece)
    return [] if len(words) == 1 and words[0].lower() in _NONE_WORDS else words


def _letter(value: Any, where: str) -> str:
    if not isinstance(value, str) or value.strip().strip("\"'").upper() not in LETTERS:
        raise AnswerFormatError("bad_letter", f"{where}: {value!r} is not one of A, B, C, D")
    return value.strip().strip("\"'").upper()


def _dimension(value: Any, where: str) -> str:
    name = str(value).strip().strip("\"'").lower().replace("-", "_").replace(" ", "_")
    if name not in DIMENSIONS:
        raise AnswerFormatError("bad_dimension", f"{where}: {value!r} is not one of {', '.join(DIMENSIONS)}")
    return name


def normalise_answer(obj: Any) -> dict[str, Any]:
    """Validate and normalise an answer-like dict; raises :class:`AnswerFormatError`."""
    if not isinstance(obj, dict):
        raise AnswerFormatError(
            "not_an_object", f"the answer must be a JSON object, got {type(obj).__name__}"
        )
    missing = [k for k in ("acceptable", "best") if k not in obj]
    if missing:
        raise AnswerFormatError("missing_key", f"the answer lacks {', '.join(missing)}")
    acc = obj["acceptable"]
    if isinstance(acc, str):
        acc = _split_words(acc)
    if not isinstance(acc, list):
        raise AnswerFormatError("bad_acceptable", f"acceptable must be a list of letters, got {acc!r}")
    acceptable = sorted({_letter(v, "acceptable") for v in acc})
    best = obj["best"]
    if best is None or (isinstance(best, str) and best.strip().lower() in _NONE_WORDS):
        best = None
    else:
        best = _letter(best, "best")
    dims_in = obj.get("dimensions") or {}
    if not isinstance(dims_in, dict):
        raise AnswerFormatError("bad_dimensions", "dimensions must map each letter to a list of dimensions")
    dimensions: dict[str, list[str]] = {letter: [] for letter in LETTERS}
    for key, values in dims_in.items():
        letter = _letter(key, "dimensions")
        if isinstance(values, str):
            values = _split_words(values)
        if not isinstance(values, list):
            raise AnswerFormatError("bad_dimensions", f"dimensions/{letter} must be a list, got {values!r}")
        found = {_dimension(v, f"dimensions/{letter}") for v in values}
        dimensions[letter] = [d for d in DIMENSIONS if d in found]
    if best is not None and best not in acceptable:
        raise AnswerFormatError("inconsistent", f"best {best!r} is not in the acceptable set {acceptable}")
    if best is None and acceptable:
        raise AnswerFormatError("inconsistent", f"best is null but {acceptable} are acceptable")
    return {"acceptable": acceptable, "best": best, "dimensions": dimensions}
