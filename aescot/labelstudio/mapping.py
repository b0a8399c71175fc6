"""Between screening items/answers and Label Studio's task data and result JSON.

Control names are a contract with the labeling page (:mod:`aescot.labelstudio.labeling`): ``best``
(``none`` = nothing acceptable), and per letter ``verdict_<L>`` (acceptable / flawed), ``defects_<L>``
and ``score_<L>``; the first release's ``acceptable`` set is still read.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aescot.errors import InputError
from aescot.labelstudio.labeling import ACCEPTABLE, FLAWED, OUTLINE_KEY, SOURCE_KEY
from aescot.store import DatasetStore
from aescot.vocab import DIMENSIONS, LETTERS, NONE_ACCEPTABLE, answer_problems, verdict_problems

_URL_SAFE = re.compile(r"[A-Za-z0-9/_.~-]*")  # what quote() leaves as it is
ITEM_FIELD = "aescot_item"  # the task data key carrying the item id (nothing else about the item is sent)


class ResultError(InputError, ValueError):
    """An annotation's result cannot become an answer (e.g. best is not among the acceptable)."""


@lru_cache(maxsize=64)
def _relative_root(store_root: str, document_root: Path) -> str:
    """The dataset root relative to the server's document root, as a POSIX path ('.' -> '')."""
    rel = Path(store_root).resolve().relative_to(Path(document_root).resolve()).as_posix()
    return "" if rel == "." else rel


def image_refs(store: DatasetStore, storage: str, document_root: Path | None) -> Callable[[str], str]:
    """:func:`image_ref` for many keys of one store and storage: the part common to every key is
    worked out once (a push refers to five images per task)."""
    if storage.startswith("local:"):
        rel = _relative_root(store.root, document_root)
        head = "/data/local-files/?d=" + (quote(rel) + "/" if rel else "")
        # content-addressed keys (images/ab/<sha256>.png) need no quoting: skip quote() for those
        return lambda key: head + (key if _URL_SAFE.fullmatch(key) else quote(key))
    scheme, _, rest = storage.partition(":")
    bucket, _, prefix = rest.partition("/")
    base = f"{'s3' if scheme == 's3' else 'gs'}://{bucket}/"

    def remote(key: str) -> str:
        assert key.startswith("images/")
        return base + posixpath.join(prefix, key[len("images/") :])

    return remote


def image_ref(store: DatasetStore, key: str, storage: str, document_root: Path | None) -> str:
    """How a task points at an image: Label Studio's local-files URL, or an s3://, gs:// URI it presigns."""
    return image_refs(store, storage, document_root)(key)


def task_data(
    item: dict[str, Any],
    store: DatasetStore,
    storage: str,
    document_root: Path | None,
    outline_key: str | None = None,
) -> dict:
    """Task data: the item id and image references only (never gold flags or known answers).

    ``SOURCE_KEY``: the source photo; ``OUTLINE_KEY``: what the page shows as the source, the outlined
    copy ``outline_key`` (:mod:`aescot.labelstudio.outlines`) or, without one, the photo again;
    ``A``-``D``: the candidates."""
    return item_data(item, image_refs(store, storage, document_root), outline_key)


def item_data(item: dict[str, Any], refs: Callable[[str], str], outline_key: str | None = None) -> dict:
    """:func:`task_data` with the :func:`image_refs` of the store and storage already made."""
    photo = refs(item["source_image_key"])
    data = {
        ITEM_FIELD: item["item_id"],
        SOURCE_KEY: photo,
        OUTLINE_KEY: refs(outline_key) if outline_key else photo,
    }
    for cand in item["candidates"]:
        data[cand["letter"]] = refs(cand["image_key"])
    return data


def answer_to_result(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """An answer (acceptable, best, dimensions[, scores]) as the result regions the labeling page submits.

    Each candidate gets its verdict (acceptable or flawed) and its dimensions as given, so an answer
    that breaks the rules is encoded as it is (collect then records it as invalid)."""
    out = [
        {
            "from_name": "best",
            "to_name": "source",
            "type": "choices",
            "value": {"choices": [answer["best"] or NONE_ACCEPTABLE]},
        },
    ]
    acceptable = set(answer["acceptable"])
    for letter in LETTERS:
        out.append(
            {
                "from_name": f"verdict_{letter}",
                "to_name": f"img_{letter}",
                "type": "choices",
                "value": {"choices": [ACCEPTABLE if letter in acceptable else FLAWED]},
            }
        )
        dims = answer["dimensions"].get(letter) or []
        if dims:
            out.append(
                {
                    "from_name": f"defects_{letter}",
                    "to_name": f"img_{letter}",
                    "type": "choices",
                    "value": {"choices": list(dims)},
                }
            )
        score = (answer.get("scores") or {}).get(letter)
        if score is not None:
            out.append(
                {
                    "from_name": f"score_{letter}",
                    "to_name": f"img_{letter}",
                    "type": "rating",
                    "value": {"rating": int(score)},
                }
            )
    return out


def result_to_answer(result: list[dict[str, Any]]) -> dict[str, Any]:
    """Parse a submitted annotation's result into acceptable/best/dimensions/scores.

    Raises :class:`ResultError` naming every problem: unknown values, a missing best or verdict, and the
    rules of :mod:`aescot.vocab` (the best must be acceptable; a flawed candidate names a dimension, an
    acceptable one none). Results of the first release's page (an ``acceptable`` set, no verdicts) are
    read too, under the rules of that page (a candidate not ticked acceptable may name no dimension).
    """
    legacy_acceptable: list[str] | None = None
    verdicts: dict[str, str] = {}
    best: str | None = None
    best_seen = False
    dims: dict[str, list[str]] = {L: [] for L in LETTERS}
    scores: dict[str, int | None] = {L: None for L in LETTERS}
    problems: list[str] = []
    for region in result:
        name, value = region.get("from_name") or "", region.get("value") or {}
        letter = name.rpartition("_")[2]
        if name == "acceptable":
            legacy_acceptable = sorted(set(value.get("choices") or []))
            if not set(legacy_acceptable) <= set(LETTERS):
                raise ResultError(f"acceptable has unknown choices {legacy_acceptable}")
        elif name == "best":
            choices = value.get("choices") or []
            if len(choices) != 1 or choices[0] not in (*LETTERS, NONE_ACCEPTABLE):
                raise ResultError(f"best must be one of A-D or none, got {choices}")
            best, best_seen = (None if choices[0] == NONE_ACCEPTABLE else choices[0]), True
        elif name.startswith("verdict_") and letter in LETTERS:
            choices = value.get("choices") or []
            if len(choices) != 1 or choices[0] not in (ACCEPTABLE, FLAWED):
                raise ResultError(f"{name} must be {ACCEPTABLE} or {FLAWED}, got {choices}")
            verdicts[letter] = choices[0]
        elif name.startswith("defects_") and letter in LETTERS:
            picked = value.get("choices") or []
            unknown = sorted(set(picked) - set(DIMENSIONS))
            if unknown:
                raise ResultError(f"{name} has unknown dimensions {unknown}")
            dims[letter] = [d for d in DIMENSIONS if d in picked]
        elif name.startswith("score_") and letter in LETTERS:
            rating = value.get("rating")
            if rating is not None:
                if not (isinstance(rating, (int, float)) and 1 <= rating <= 5):
                    raise ResultError(f"{name} rating {rating!r} is not 1-5")
                scores[letter] = int(rating)
    if not best_seen:
        problems.append("no best candidate chosen (pick A-D or 'None acceptable')")
    legacy = not verdicts and legacy_acceptable is not None
    if legacy:
        acceptable = legacy_acceptable or []
    else:
        acceptable = sorted(L for L, v in verdicts.items() if v == ACCEPTABLE)
        missing = [L for L in LETTERS if L not in verdicts]
        if missing:
            problems.append(f"no verdict (acceptable or flawed) for {', '.join(missing)}")
    answer = {"acceptable": acceptable, "best": best, "dimensions": dims, "scores": scores}
    if best_seen:
        problems += answer_problems(answer)
    if not legacy:
        problems += [p for p in verdict_problems(answer) if not any(p.startswith(m) for m in missing)]
    if problems:
        raise ResultError("; ".join(problems))
    return answer
