"""Between screening items/answers and Label Studio's task data and result JSON.

Control names are a contract with ``annotation/screening.xml``: ``acceptable``, ``best``
(``none`` = nothing acceptable), ``defects_<L>`` and ``score_<L>`` for each letter.
"""

from __future__ import annotations

import posixpath
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aescot.errors import InputError
from aescot.store import DatasetStore
from aescot.vocab import DIMENSIONS, LETTERS

ITEM_FIELD = "aescot_item"  # the task data key carrying the item id (nothing else about the item is sent)


class ResultError(InputError, ValueError):
    """An annotation's result cannot become an answer (e.g. best is not among the acceptable)."""


@lru_cache(maxsize=64)
def _relative_root(store_root: str, document_root: Path) -> str:
    """The dataset root relative to the server's document root, as a POSIX path ('.' -> '')."""
    rel = Path(store_root).resolve().relative_to(Path(document_root).resolve()).as_posix()
    return "" if rel == "." else rel


def image_ref(store: DatasetStore, key: str, storage: str, document_root: Path | None) -> str:
    """How a task points at an image: Label Studio's local-files URL, or an s3://, gs:// URI it presigns."""
    if storage.startswith("local:"):
        return "/data/local-files/?d=" + quote(posixpath.join(_relative_root(store.root, document_root), key))
    scheme, _, rest = storage.partition(":")
    bucket, _, prefix = rest.partition("/")
    assert key.startswith("images/")
    return f"{'s3' if scheme == 's3' else 'gs'}://{bucket}/{posixpath.join(prefix, key[len('images/') :])}"


def task_data(item: dict[str, Any], store: DatasetStore, storage: str, document_root: Path | None) -> dict:
    """Task data: the item id and image references only (never gold flags or known answers)."""
    data = {
        ITEM_FIELD: item["item_id"],
        "source": image_ref(store, item["source_image_key"], storage, document_root),
    }
    for cand in item["candidates"]:
        data[cand["letter"]] = image_ref(store, cand["image_key"], storage, document_root)
    return data


def answer_to_result(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """An answer (acceptable, best, dimensions[, scores]) as Label Studio result regions (for predictions)."""
    out = [
        {
            "from_name": "best",
            "to_name": "source",
            "type": "choices",
            "value": {"choices": [answer["best"] or "none"]},
        },
    ]
    if answer["acceptable"]:
        out.append(
            {
                "from_name": "acceptable",
                "to_name": "source",
                "type": "choices",
                "value": {"choices": sorted(answer["acceptable"])},
            }
        )
    for letter in LETTERS:
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
    """Parse a submitted annotation's result into acceptable/best/dimensions/scores; raise ResultError if unusable."""
    acceptable: list[str] = []
    best: str | None = None
    best_seen = False
    dims: dict[str, list[str]] = {L: [] for L in LETTERS}
    scores: dict[str, int | None] = {L: None for L in LETTERS}
    for region in result:
        name, value = region.get("from_name"), region.get("value") or {}
        if name == "acceptable":
            acceptable = sorted(set(value.get("choices") or []))
            if not set(acceptable) <= set(LETTERS):
                raise ResultError(f"acceptable has unknown choices {acceptable}")
        elif name == "best":
            choices = value.get("choices") or []
            if len(choices) != 1 or choices[0] not in (*LETTERS, "none"):
                raise ResultError(f"best must be one of A-D or none, got {choices}")
            best, best_seen = (None if choices[0] == "none" else choices[0]), True
        elif name and name.startswith("defects_") and name[-1] in LETTERS:
            picked = value.get("choices") or []
            unknown = sorted(set(picked) - set(DIMENSIONS))
            if unknown:
                raise ResultError(f"{name} has unknown dimensions {unknown}")
            dims[name[-1]] = [d for d in DIMENSIONS if d in picked]
        elif name and name.startswith("score_") and name[-1] in LETTERS:
            rating = value.get("rating")
            if rating is not None:
                if not (isinstance(rating, (int, float)) and 1 <= rating <= 5):
                    raise ResultError(f"{name} rating {rating!r} is not 1-5")
                scores[name[-1]] = int(rating)
    if not best_seen:
        raise ResultError("no best candidate chosen (pick A-D or 'None acceptable')")
    if best is not None and best not in acceptable:
        raise ResultError(
            f"best is {best} but the acceptable set is {acceptable}: the best must be acceptable"
        )
    if best is None and acceptable:
        raise ResultError(f"best is 'none acceptable' but {acceptable} are ticked acceptable")
    return {"acceptable": acceptable, "best": best, "dimensions": dims, "scores": scores}
