"""The consistency filter: keep items whose teacher samples agree with the humans, and pick
the one rationale per kept item that goes into training.

For each labelled item with ``samples`` finished samples (no call ``error``) from one
(teacher model, prompt version, mode), agreement is recomputed against the *current* label
(labels can change as annotations arrive), then:

1. no finished sample -> dropped ``no_samples``;
2. every sample unparseable -> dropped ``format_failure``;
3. consistency = consistent samples / finished samples (unparseable ones count as not
   consistent); below ``min_consistency`` -> dropped ``low_consistency``;
4. the candidates are the consistent samples; those whose text matches a leak pattern
   ("the annotator chose", "the verified answer") are removed — none left -> ``label_leak``;
   those whose reasoning length is outside [min_chars, max_chars] are removed — none left
   -> ``length``;
5. kept: the candidate with the highest dimension agreement, then the highest overall
   agreement score, then the shortest reasoning, then the lowest sample index.

Items with unfinished samples are left undecided (``pending``); in answer-driven mode the
samples counted are those of the item's *current* label (the prompt contained it), so a
relabelled item waits for its new samples. A decision is written to ``selections`` only when it
differs from the one stored, so a re-run writes nothing.

Reads follow the work: the items to decide come from one projected scan of the rationales'
``item_id`` (rows of this model, prompt and mode); then, a batch of items at a time, their labels,
their k sample rows (without the text), the texts of the parseable samples of ready items and
their stored selections are read by key. Changed decisions are written every
:data:`WRITE_EVERY` rows.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pyarrow.compute as pc

from aescot.errors import ConfigError
from aescot.store import DatasetStore
from aescot.teacher.agreement import answer_agreement
from aescot.teacher.config import FilterConfig
from aescot.teacher.parse import AnswerFormatError, parse_response
from aescot.teacher.rationales import rationale_id
from aescot.timeutil import now_iso

BATCH = 512  # items decided per round of key reads
WRITE_EVERY = 4096  # changed decisions per upsert
LABEL_COLUMNS = ["item_id", "acceptable", "best", "dimensions"]
DROP_REASONS = ("no_samples", "format_failure", "low_consistency", "label_leak", "length")
_COMPARED = (
    "kept",
    "reason",
    "consistency",
    "min_consistency",
    "rationale_id",
    "teacher_model",
    "prompt_version",
    "n_samples",
)


class FilterError(ConfigError, ValueError):
    """The filter cannot decide what to filter (e.g. rationales from several models and none chosen)."""


@dataclass
class FilterReport:
    """Counts of one filter run; ``decisions`` holds every decided item's selection row when the
    run was asked to keep them (``keep_decisions``: for listing, it grows with the items)."""

    teacher_model: str | None = None
    decided: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    pending: int = 0
    written: int = 0
    unchanged: int = 0
    decisions: list[dict[str, Any]] = field(default_factory=list)


def leaks_label(text: str, patterns: tuple[str, ...]) -> str | None:
    """The first leak phrase found in ``text``, or None."""
    for pattern in patterns:
        match = re.search(pattern, text, re.IGNORECASE)
        if match:
            return match.group(0)
    return None


def _reasoning_length(text: str) -> int:
    try:
        return len(parse_response(text).reasoning.strip())
    except AnswerFormatError:
        return 0


def decide(samples: list[dict[str, Any]], label: dict[str, Any], config: FilterConfig) -> dict[str, Any]:
    """The selection fields (kept, reason, consistency, rationale_id, n_samples) for one item."""
    finished = [s for s in samples if s["error"] is None]
    out: dict[str, Any] = {
        "kept": False,
        "consistency": None,
        "rationale_id": None,
        "n_samples": len(finished),
    }
    if not finished:
        return {**out, "reason": "no_samples"}
    parsed = [s for s in finished if s["format_ok"] and s["parsed"] is not None]
    if not parsed:
        return {**out, "reason": "format_failure"}
    scored = [(s, answer_agreement(s["parsed"], label)) for s in parsed]
    consistent = [(s, a) for s, a in scored if a.consistent]
    consistency = round(len(consistent) / len(finished), 6)
    out["consistency"] = consistency
    if consistency + 1e-9 < config.min_consistency:
        return {**out, "reason": "low_consistency"}
    clean = [(s, a) for s, a in consistent if not leaks_label(s["text"], config.leak_patterns)]
    if not clean:
        return {**out, "reason": "label_leak"}
    sized = [
        (s, a, n)
        for s, a in clean
        if config.min_chars <= (n := _reasoning_length(s["text"])) <= config.max_chars
    ]
    if not sized:
        return {**out, "reason": "length"}
    best = min(sized, key=lambda t: (-t[1].dimensions, -t[1].score, t[2], t[0]["sample_index"]))
    return {**out, "kept": True, "reason": "kept", "rationale_id": best[0]["rationale_id"]}


_META = [
    "rationale_id",
    "item_id",
    "teacher_model",
    "prompt_version",
    "mode",
    "sample_index",
    "parsed",
    "format_ok",
    "error",
]


def _texts(store: DatasetStore, ids: list[str]) -> dict[str, str]:
    """The text of the given rationales only (a key read: other texts are never read)."""
    if not ids:
        return {}
    table = store.read_arrow("rationales", columns=["rationale_id", "text"], keys=ids)
    return dict(zip(table["rationale_id"].to_pylist(), table["text"].to_pylist(), strict=True))


def _models(store: DatasetStore, config: FilterConfig) -> list[str]:
    where = (pc.field("prompt_version") == config.prompt_version) & (pc.field("mode") == config.mode)
    models = store.column("rationales", "teacher_model", where=where).combine_chunks()
    return sorted(pc.unique(models).to_pylist()) if len(models) else []


def filter_rationales(
    store: DatasetStore, config: FilterConfig, keep_decisions: bool = False
) -> FilterReport:
    """Decide every ready item (see the module docstring); upsert changed decisions to ``selections``."""
    report = FilterReport()
    models = _models(store, config)
    model = config.teacher_model
    if model is None:
        if len(models) > 1:
            raise FilterError(
                f"rationales come from several teacher models ({', '.join(models)}): choose one"
            )
        model = models[0] if models else None
    report.teacher_model = model
    if model is None:
        return report
    where = (
        (pc.field("teacher_model") == model)
        & (pc.field("prompt_version") == config.prompt_version)
        & (pc.field("mode") == config.mode)
    )
    ids = store.column("rationales", "item_id", where=where).combine_chunks()
    ids = pc.unique(ids) if len(ids) else ids
    item_ids = pc.take(ids, pc.sort_indices(ids)).to_pylist()
    changed: list[dict[str, Any]] = []
    for start in range(0, len(item_ids), BATCH):
        changed += _decide_batch(
            store, config, model, item_ids[start : start + BATCH], report, keep_decisions
        )
        if len(changed) >= WRITE_EVERY:
            report.written += store.upsert("selections", changed)
            changed = []
    report.written += store.upsert("selections", changed)
    return report


def _decide_batch(
    store: DatasetStore,
    config: FilterConfig,
    model: str,
    batch: list[str],
    report: FilterReport,
    keep_decisions: bool,
) -> list[dict[str, Any]]:
    """Decide the ready items of one batch; returns the decisions that differ from the stored ones."""
    labels = {r["item_id"]: r for r in store.read("labels", LABEL_COLUMNS, keys=batch)}
    wanted: dict[str, list[str]] = {}
    for item_id in batch:
        label = labels.get(item_id)
        if label is None:
            report.pending += 1
            continue
        # the samples of the current prompt: in answer-driven mode that depends on the current label
        wanted[item_id] = [
            rationale_id(model, config.prompt_version, config.mode, item_id, s, label)
            for s in range(config.samples)
        ]
    rows = store.read("rationales", _META, keys=[i for ids in wanted.values() for i in ids])
    by_id = {r["rationale_id"]: r for r in rows}
    ready: dict[str, list[dict[str, Any]]] = {}
    for item_id, ids in wanted.items():
        samples = [by_id[i] for i in ids if i in by_id]
        if sum(1 for s in samples if s["error"] is None) < config.samples:
            report.pending += 1
            continue
        ready[item_id] = samples
    texts = _texts(store, [s["rationale_id"] for ss in ready.values() for s in ss if s["format_ok"]])
    existing = {row["item_id"]: row for row in store.read("selections", keys=list(ready))}
    changed = []
    for item_id, samples in ready.items():
        for s in samples:
            s["text"] = texts.get(s["rationale_id"], "")
        decision = {
            "item_id": item_id,
            **decide(samples, labels[item_id], config),
            "min_consistency": config.min_consistency,
            "teacher_model": model,
            "prompt_version": config.prompt_version,
        }
        report.decided += 1
        if decision["kept"]:
            report.kept += 1
        else:
            report.dropped[decision["reason"]] += 1
        old = existing.get(item_id)
        if old is not None and all(old.get(k) == decision[k] for k in _COMPARED):
            report.unchanged += 1
            if keep_decisions:
                report.decisions.append(old)
            continue
        decision["decided_at"] = now_iso()
        changed.append(decision)
        if keep_decisions:
            report.decisions.append(decision)
    return changed
