"""The column layout of each export format, as Hugging Face ``datasets`` features.

The Arrow schema written to Parquet comes from ``Features.arrow_schema``, so it carries the
``huggingface`` metadata: ``load_dataset("parquet", ...)`` decodes image columns to PIL images
(embedded ``bytes``, or ``path`` = a URI when images are referenced), and the same files load in
TRL and LLaMA-Factory, which read through ``datasets``.

Formats:

* ``sft`` — LLaMA-Factory's multimodal *sharegpt* layout: ``messages`` = [{role, content}] with one
  ``<image>`` placeholder per image in the user turn (order: source, A, B, C, D), ``images``.
* ``sft_trl`` — TRL's conversational vision layout: ``messages`` whose ``content`` is a list of
  typed parts (``{"type": "image"}`` / ``{"type": "text", "text": ...}``) interleaved as the
  placeholders were, ``images``. (TRL reads ``messages`` before ``prompt``/``completion`` and
  treats string content as text, so the two layouts cannot share one column.)
* ``rl`` — TRL ``GRPOTrainer`` layout: ``prompt`` (typed conversational user turn), ``images``,
  plus the verifiable ground truth as extra columns (TRL hands them to reward functions as
  keyword arguments): ``acceptable``, ``best``, ``dimensions``, ``scores``; ``problem`` (the prompt as
  text with ``<image>`` placeholders) and ``answer`` (the canonical answer text) for EasyR1/verl.
* ``verl`` — verl's RLHF layout: ``data_source``, ``prompt`` (chat with string content, one ``<image>``
  per image in order source, A, B, C, D), ``images``, ``ability``, ``reward_model`` (``style: rule``,
  ``ground_truth``: the answer JSON) and ``extra_info`` (split, index, item and source ids); scored by
  :mod:`aescot.integrations.verl_reward` (``custom_reward_function.path``).
* ``scores`` — Aes-R1 / RAPO RL, one row per scored candidate: ``problem``, ``solution``
  (``<answer> s </answer>``), ``image`` ([source, candidate]), ``prompt`` (typed), ``score`` (annotators'
  mean 1-5 score on [0, 1]), ``score_std`` (their spread, same scale), the raw scores and the candidate's
  labels (:mod:`aescot.export.scores`); rewarded by :func:`aescot.rewards.absolute_score_reward` and
  :func:`aescot.rewards.relative_score_reward`.
* ``scores_sft`` — Aes-R1's cold start (LLaMA-Factory sharegpt): ``messages`` ending in
  ``<think>rationale</think><answer>s</answer>``, ``images``; only candidates whose kept rationale has a
  section of its own.
* ``pairs`` — candidate preference pairs for reward models / image DPO: ``source_image``,
  ``chosen_image``, ``rejected_image`` with letters, candidate ids, the pair ``kind`` and a score margin.
"""

from __future__ import annotations

import json
from typing import Any

import datasets
import pyarrow as pa
from datasets import Features, Image, List, Value

from aescot.vocab import EXPORT_FORMATS, LETTERS

FORMATS = EXPORT_FORMATS

_str = Value("string")
_f64 = Value("float64")

_common = {
    "item_id": _str,
    "source_id": _str,
    "split": _str,
}
_typed_content = List({"type": _str, "text": _str})
_dims = {letter: List(_str) for letter in LETTERS}
_scores = {letter: _f64 for letter in LETTERS}


def features(fmt: str) -> Features:
    """The ``datasets.Features`` of an export format."""
    if fmt == "sft":
        return Features(
            {
                **_common,
                "messages": List({"role": _str, "content": _str}),
                "images": List(Image()),
                "consistency": _f64,
                "agreement": _f64,
                "rationale_id": _str,
            }
        )
    if fmt == "sft_trl":
        return Features(
            {
                **_common,
                "messages": List({"role": _str, "content": _typed_content}),
                "images": List(Image()),
                "consistency": _f64,
                "agreement": _f64,
                "rationale_id": _str,
            }
        )
    if fmt == "rl":
        return Features(
            {
                **_common,
                "prompt": List({"role": _str, "content": _typed_content}),
                "images": List(Image()),
                "problem": _str,
                "answer": _str,
                "acceptable": List(_str),
                "best": _str,
                "dimensions": _dims,
                "scores": _scores,
                "agreement": _f64,
                "n_annotations": Value("int64"),
                "gold": Value("bool"),
            }
        )
    if fmt == "verl":
        return Features(
            {
                **_common,
                "data_source": _str,
                "prompt": List({"role": _str, "content": _str}),
                "images": List(Image()),
                "ability": _str,
                "reward_model": {"style": _str, "ground_truth": _str},
                "extra_info": {"split": _str, "index": Value("int64"), "item_id": _str, "source_id": _str},
            }
        )
    if fmt == "pairs":
        return Features(
            {
                **_common,
                "prompt": _str,
                "source_image": Image(),
                "chosen_image": Image(),
                "rejected_image": Image(),
                "chosen": _str,
                "rejected": _str,
                "chosen_candidate_id": _str,
                "rejected_candidate_id": _str,
                "kind": _str,
                "rejected_dimensions": List(_str),
                "margin": _f64,
                "agreement": _f64,
            }
        )
    if fmt in ("scores", "scores_sft"):
        per_candidate = {
            **_common,
            "candidate_id": _str,
            "letter": _str,
        }
        figures = {
            "score": _f64,
            "score_std": _f64,
            "score_mean": _f64,
            "scores_raw": List(_f64),
            "n_scores": Value("int64"),
            "acceptable": Value("bool"),
            "dimensions": List(_str),
        }
        if fmt == "scores":
            return Features(
                {
                    **per_candidate,
                    "problem": _str,
                    "solution": _str,
                    "image": List(Image()),
                    "prompt": List({"role": _str, "content": _typed_content}),
                    **figures,
                }
            )
        return Features(
            {
                **per_candidate,
                "messages": List({"role": _str, "content": _str}),
                "images": List(Image()),
                **figures,
                "rationale_id": _str,
            }
        )
    raise ValueError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")


def portable_features_dict(feats: Features) -> dict[str, Any]:
    """``feats.to_dict()`` in the form every ``datasets`` from 2.x to the newest reads.

    ``datasets`` 4 serialises lists as ``{"_type": "List"}``, which 3.x does not know ("Feature type
    'List' not found"; LLaMA-Factory pins ``datasets<=4.0``). 3.x writes a list of a plain feature as
    ``{"_type": "Sequence", "feature": ...}`` and a list of structs as the shorthand ``[{...}]``;
    4.x and later read both as ``List`` (``Sequence`` of a *struct* would mean a struct of lists there,
    hence the shorthand). The Arrow types are the same either way.
    """

    def convert(obj: Any) -> Any:
        if isinstance(obj, list):
            return [convert(x) for x in obj]
        if not isinstance(obj, dict):
            return obj
        if obj.get("_type") == "List":
            inner = convert(obj["feature"])
            length = obj.get("length", -1)
            if isinstance(inner, dict) and "_type" not in inner and length == -1:
                return [inner]
            out = {"feature": inner, "_type": "Sequence"}
            if length != -1:
                out["length"] = length
            return out
        return {key: convert(value) for key, value in obj.items()}

    return convert(feats.to_dict())


def arrow_schema(feats: Features) -> pa.Schema:
    """The Arrow schema of ``feats`` with Hugging Face metadata that old and new ``datasets`` read."""
    meta = {"info": {"features": portable_features_dict(feats)}}
    return feats.arrow_schema.with_metadata({"huggingface": json.dumps(meta)})


__all__ = ["FORMATS", "LETTERS", "arrow_schema", "datasets", "features", "portable_features_dict"]
