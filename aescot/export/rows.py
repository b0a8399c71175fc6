"""Build the rows of each export format from one item's joined records.

Pure functions over plain dicts (no I/O): the export run reads the store, these shape the rows.
Image values are already in the ``datasets`` Image storage layout ``{"bytes", "path"}``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aescot.export.features import LETTERS
from aescot.teacher.parse import format_answer
from aescot.teacher.prompts import IMAGE_PLACEHOLDER  # "<image>", LLaMA-Factory's default placeholder too

PAIR_PROMPT = (
    "The first image is a photo of a health product; the other is an image generated from it (new background, "
    "outpainting or relighting). A good generated image keeps the product undeformed with legible text, lights it "
    "consistently with its shadows, places it plausibly, and extends the scene without seams or impossible content."
)


@lru_cache(maxsize=8)
def typed_content(text: str) -> list[dict[str, str | None]]:
    """Split text with ``<image>`` placeholders into TRL's typed parts, images where the placeholders were.

    Cached (the prompt is the same for every row): treat the result as read-only."""
    parts: list[dict[str, str | None]] = []
    pieces = text.split(IMAGE_PLACEHOLDER)
    for i, piece in enumerate(pieces):
        if i > 0:
            parts.append({"type": "image", "text": None})
        if piece.strip():
            parts.append({"type": "text", "text": piece})
    return parts


def answer_of(label: dict[str, Any]) -> dict[str, Any]:
    """The ground-truth answer of a label: acceptable (sorted), best, dimensions per letter."""
    return {
        "acceptable": sorted(label["acceptable"]),
        "best": label["best"],
        "dimensions": {k: list(label["dimensions"][k]) for k in LETTERS},
    }


def canonical_answer_text(label: dict[str, Any]) -> str:
    """The answer as the JSON a model writes inside ``<answer>``: the ``answer`` column RL frameworks compare."""
    return format_answer(answer_of(label))


def _common(item: dict[str, Any], split: str) -> dict[str, Any]:
    return {"item_id": item["item_id"], "source_id": item["source_id"], "split": split}


def sft_rows(
    item: dict,
    label: dict,
    selection: dict,
    rationale: dict,
    images: list[dict],
    split: str,
    prompt_text: str,
) -> tuple[dict, dict]:
    """The LLaMA-Factory (sharegpt) row and the TRL row of one kept item."""
    extra = {
        "images": images,
        "consistency": selection["consistency"],
        "agreement": label["agreement"],
        "rationale_id": rationale["rationale_id"],
    }
    text = rationale["text"]
    sharegpt = {
        **_common(item, split),
        "messages": [{"role": "user", "content": prompt_text}, {"role": "assistant", "content": text}],
        **extra,
    }
    trl = {
        **_common(item, split),
        "messages": [
            {"role": "user", "content": typed_content(prompt_text)},
            {"role": "assistant", "content": [{"type": "text", "text": text}]},
        ],
        **extra,
    }
    return sharegpt, trl


def rl_row(item: dict, label: dict, images: list[dict], split: str, prompt_text: str) -> dict:
    """The GRPO row: prompt, images and the verifiable ground truth."""
    ans = answer_of(label)
    return {
        **_common(item, split),
        "prompt": [{"role": "user", "content": typed_content(prompt_text)}],
        "images": images,
        "problem": prompt_text,
        "answer": canonical_answer_text(label),
        "acceptable": ans["acceptable"],
        "best": ans["best"],
        "dimensions": ans["dimensions"],
        "scores": {k: label["scores"].get(k) for k in LETTERS},
        "agreement": label["agreement"],
        "n_annotations": label["n_annotations"],
        "gold": bool(item.get("gold")),
    }


VERL_DATA_SOURCE = "aescot/image_screening"
VERL_ABILITY = "image_screening"


def verl_row(item: dict, label: dict, images: list[dict], split: str, prompt_text: str, index: int) -> dict:
    """verl's RLHFDataset row: string chat content with ``<image>`` placeholders, rule-style ground truth."""
    return {
        **_common(item, split),
        "data_source": VERL_DATA_SOURCE,
        "prompt": [{"role": "user", "content": prompt_text}],
        "images": images,
        "ability": VERL_ABILITY,
        "reward_model": {"style": "rule", "ground_truth": canonical_answer_text(label)},
        "extra_info": {
            "split": split,
            "index": index,
            "item_id": item["item_id"],
            "source_id": item["source_id"],
        },
    }


def pair_rows(item: dict, label: dict, images: list[dict], split: str) -> list[dict]:
    """Chosen/rejected candidate pairs: every acceptable vs every flawed one, and the best vs other acceptables.

    ``margin`` is the chosen minus the rejected mean score when both were scored.
    """
    acceptable = set(label["acceptable"])
    scores = label["scores"]
    cands = {c["letter"]: c for c in item["candidates"]}
    image_of = dict(zip(LETTERS, images[1:]))
    pairs: list[tuple[str, str, str]] = []
    for a in LETTERS:
        if a in acceptable:
            pairs += [(a, u, "acceptable_vs_flawed") for u in LETTERS if u not in acceptable]
    best = label["best"]
    if best is not None:
        pairs += [(best, a, "best_vs_acceptable") for a in LETTERS if a in acceptable and a != best]
    rows = []
    for chosen, rejected, kind in pairs:
        sc, sr = scores.get(chosen), scores.get(rejected)
        rows.append(
            {
                **_common(item, split),
                "prompt": PAIR_PROMPT,
                "source_image": images[0],
                "chosen_image": image_of[chosen],
                "rejected_image": image_of[rejected],
                "chosen": chosen,
                "rejected": rejected,
                "chosen_candidate_id": cands[chosen]["candidate_id"],
                "rejected_candidate_id": cands[rejected]["candidate_id"],
                "kind": kind,
                "rejected_dimensions": list(label["dimensions"][rejected]),
                "margin": None if sc is None or sr is None else float(sc) - float(sr),
                "agreement": label["agreement"],
            }
        )
    return rows
