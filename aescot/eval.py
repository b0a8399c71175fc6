"""``aescot eval``: score any OpenAI-compatible multimodal model on the test split of an export.

Reads the ``rl`` export (prompt, images, ground truth), asks the model the student question with
the five images as data URLs, parses each reply with :func:`aescot.teacher.parse.parse_answer`
and reports, beside the same metrics for a **random baseline** (computed exactly, not sampled):

* ``best_accuracy`` — the best choice is right (none-acceptable counts as a choice);
* ``acceptable_credit`` — set-level partial credit (:func:`aescot.rewards.acceptable_credit`);
* ``acceptable_exact`` — the acceptable set is exactly right;
* ``dimension_jaccard`` — Jaccard of flagged (candidate, dimension) defects;
* per dimension: accuracy and F1 of "candidate fails this dimension" over all candidates;
* ``format_rate`` — share of replies that parse; an unparseable reply scores 0 everywhere.

The random policy picks the acceptable set uniformly among the 16 subsets, the best uniformly
within it (none when it is empty), and flags each (candidate, dimension) with probability 1/2.
"""

from __future__ import annotations

import asyncio
import json
import os
import posixpath
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any

import fsspec
import pyarrow.parquet as pq
from pydantic import BaseModel, Field, SecretStr

from aescot.export.features import LETTERS
from aescot.export.splits import DIMENSIONS
from aescot.rewards import acceptable_credit, best_credit, dimension_credit
from aescot.teacher.images import image_data_url
from aescot.teacher.parse import AnswerFormatError, parse_answer
from aescot.teacher.prompts import content_parts


class EvalConfig(BaseModel):
    """Where the data and the model are."""

    data: str = Field(description="an export folder (its rl/<split>/*.parquet is read) or fsspec URI")
    base_url: str
    model: str
    api_key: SecretStr = Field(
        default_factory=lambda: SecretStr(
            os.environ.get("AESCOT_EVAL_API_KEY") or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        )
    )
    split: str = "test"
    limit: int | None = Field(None, ge=1)
    concurrency: int = Field(8, ge=1)
    max_side: int = Field(768, ge=0, description="images are downscaled to this longest side before sending")
    max_tokens: int = Field(2048, ge=1)
    temperature: float = 0.0
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(3, ge=0)

    def endpoint(self):
        """These settings as the shared OpenAI-compatible client's (plain-text answers, no JSON schema)."""
        from aescot.teacher.config import TeacherSettings

        return TeacherSettings(
            base_url=self.base_url,
            model=self.model,
            api_key=self.api_key,
            concurrency=self.concurrency,
            timeout_s=self.timeout_s,
            max_attempts=self.max_retries + 1,
            retry_initial_wait_s=0.5,
            retry_max_wait_s=8.0,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            structured_output="off",
        )


@dataclass
class Metrics:
    n: int = 0
    best_accuracy: float = 0.0
    acceptable_credit: float = 0.0
    acceptable_exact: float = 0.0
    dimension_jaccard: float = 0.0
    format_rate: float = 0.0
    per_dimension: dict[str, dict[str, float]] = field(default_factory=dict)  # dim -> {accuracy, f1}


@dataclass
class EvalReport:
    model: str
    split: str
    n_items: int
    model_metrics: Metrics
    random_baseline: Metrics
    errors: dict[str, int]  # reply-level failures by reason (format, http)
    predictions: list[dict[str, Any]]

    def table(self) -> str:
        """The seed paper's layout: one row per metric, model beside random."""
        rows = [
            ("best choice accuracy", "best_accuracy"),
            ("acceptable set, partial credit", "acceptable_credit"),
            ("acceptable set, exact", "acceptable_exact"),
            ("dimensions, Jaccard", "dimension_jaccard"),
            ("answer format", "format_rate"),
        ]
        lines = [f"| metric ({self.split}, n={self.n_items}) | {self.model} | random |", "|---|---|---|"]
        for title, key in rows:
            lines.append(
                f"| {title} | {getattr(self.model_metrics, key):.3f} | {getattr(self.random_baseline, key):.3f} |"
            )
        for d in DIMENSIONS:
            m, r = self.model_metrics.per_dimension.get(d, {}), self.random_baseline.per_dimension.get(d, {})
            lines.append(
                f"| {d} accuracy / F1 | {m.get('accuracy', 0):.3f} / {m.get('f1', 0):.3f} | "
                f"{r.get('accuracy', 0):.3f} / {r.get('f1', 0):.3f} |"
            )
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "split": self.split,
            "n_items": self.n_items,
            "model_metrics": asdict(self.model_metrics),
            "random_baseline": asdict(self.random_baseline),
            "errors": self.errors,
        }


# --- scoring ----------------------------------------------------------------------------------------


def _f1(tp: float, fp: float, fn: float) -> float:
    return 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def score(predictions: list[dict[str, Any] | None], truths: list[dict[str, Any]]) -> Metrics:
    """Metrics of parsed answers (None = unparseable) against the ground-truth answers."""
    n = len(truths)
    if n == 0:
        return Metrics()
    sums = {"best": 0.0, "credit": 0.0, "exact": 0.0, "dims": 0.0, "ok": 0.0}
    conf = {d: {"tp": 0, "fp": 0, "fn": 0, "tn": 0} for d in DIMENSIONS}
    for pred, truth in zip(predictions, truths, strict=True):
        for letter in LETTERS:
            gold = set(truth["dimensions"][letter] or [])
            flagged = set(pred["dimensions"][letter]) if pred else set()
            for d in DIMENSIONS:
                key = ("tp" if d in flagged else "fn") if d in gold else ("fp" if d in flagged else "tn")
                conf[d][key] += 1
        if pred is None:
            continue
        sums["ok"] += 1
        sums["best"] += best_credit(pred["best"], truth["best"])
        sums["credit"] += acceptable_credit(pred["acceptable"], truth["acceptable"])
        sums["exact"] += float(set(pred["acceptable"]) == set(truth["acceptable"]))
        sums["dims"] += dimension_credit(pred, truth)
    per_dim = {
        d: {"accuracy": (c["tp"] + c["tn"]) / (4 * n), "f1": _f1(c["tp"], c["fp"], c["fn"])}
        for d, c in conf.items()
    }
    return Metrics(
        n=n,
        best_accuracy=sums["best"] / n,
        acceptable_credit=sums["credit"] / n,
        acceptable_exact=sums["exact"] / n,
        dimension_jaccard=sums["dims"] / n,
        format_rate=sums["ok"] / n,
        per_dimension=per_dim,
    )


_SUBSETS = [list(c) for k in range(5) for c in combinations(LETTERS, k)]  # the 16 acceptable sets


def _expected_jaccard_random(gold_pairs: int, total: int = 16) -> float:
    """E[|P∩H| / |P∪H|] when each of ``total`` pairs is flagged with probability 1/2 (exact, by counting)."""
    from math import comb

    h, rest = gold_pairs, total - gold_pairs
    exp = 0.0
    for a in range(h + 1):  # flagged gold pairs
        for b in range(rest + 1):  # flagged non-gold pairs
            union = h + b
            j = 1.0 if union == 0 else a / union
            exp += comb(h, a) * comb(rest, b) * j
    return exp / 2**total


def random_baseline(truths: list[dict[str, Any]]) -> Metrics:
    """The expected metrics of the random policy (see the module docstring), computed exactly."""
    n = len(truths)
    if n == 0:
        return Metrics()
    best = credit = exact = dims = 0.0
    conf = {d: {"tp": 0.0, "fp": 0.0, "fn": 0.0, "tn": 0.0} for d in DIMENSIONS}
    for truth in truths:
        for subset in _SUBSETS:
            p = 1 / len(_SUBSETS)
            credit += p * acceptable_credit(subset, truth["acceptable"])
            exact += p * float(set(subset) == set(truth["acceptable"]))
            if subset:
                best += p * sum(best_credit(b, truth["best"]) for b in subset) / len(subset)
            else:
                best += p * best_credit(None, truth["best"])
        gold_pairs = sum(len(truth["dimensions"][k] or []) for k in LETTERS)
        dims += _expected_jaccard_random(gold_pairs)
        for letter in LETTERS:
            gold = set(truth["dimensions"][letter] or [])
            for d in DIMENSIONS:
                if d in gold:
                    conf[d]["tp"] += 0.5
                    conf[d]["fn"] += 0.5
                else:
                    conf[d]["fp"] += 0.5
                    conf[d]["tn"] += 0.5
    per_dim = {
        d: {"accuracy": (c["tp"] + c["tn"]) / (4 * n), "f1": _f1(c["tp"], c["fp"], c["fn"])}
        for d, c in conf.items()
    }
    return Metrics(
        n=n,
        best_accuracy=best / n,
        acceptable_credit=credit / n,
        acceptable_exact=exact / n,
        dimension_jaccard=dims / n,
        format_rate=1.0,
        per_dimension=per_dim,
    )


# --- reading the export and asking the model ----------------------------------------------------------


def _image_bytes(fs, value: dict[str, Any]) -> bytes:
    if value.get("bytes") is not None:
        return value["bytes"]
    with fsspec.open(value["path"], "rb") as fh:
        return fh.read()


def iter_rows(cfg: EvalConfig):
    """Rows of ``rl/<split>`` (item_id, problem, images, truth), streamed file by file."""
    fs, root = fsspec.core.url_to_fs(cfg.data)
    files = sorted(fs.glob(posixpath.join(root.rstrip("/"), "rl", cfg.split, "*.parquet")))
    if not files:
        raise FileNotFoundError(
            f"no rl/{cfg.split}/*.parquet under {cfg.data!r}: export with the 'rl' format first"
        )
    n = 0
    cols = ["item_id", "problem", "images", "acceptable", "best", "dimensions"]
    for path in files:
        with fs.open(path, "rb") as fh:
            for batch in pq.ParquetFile(fh).iter_batches(batch_size=64, columns=cols):
                for row in batch.to_pylist():
                    if cfg.limit is not None and n >= cfg.limit:
                        return
                    n += 1
                    yield fs, row


async def _ask(client, cfg: EvalConfig, fs, row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"item_id": row["item_id"], "text": None, "parsed": None, "error": None}
    try:
        urls = [image_data_url(_image_bytes(fs, v), max_side=cfg.max_side) for v in row["images"]]
    except (OSError, ValueError) as exc:
        out["error"] = f"image: {exc}"
        return out
    from aescot.teacher.client import TeacherFatalError

    messages = [{"role": "user", "content": content_parts(row["problem"], urls)}]
    try:
        result = await client.complete(messages)
    except TeacherFatalError as exc:  # refused (key, URL, model): this item's error, the run goes on
        out["error"] = f"http: {exc}"
        return out
    if result.error is not None:
        out["error"] = f"http: {result.error}"
        return out
    out["text"] = result.text or ""
    try:
        out["parsed"] = parse_answer(out["text"])
    except AnswerFormatError as exc:
        out["error"] = f"format: {exc.reason}"
    return out


async def _run(cfg: EvalConfig) -> list[tuple[int, dict, dict]]:
    """``concurrency`` workers pull rows from one stream: at most that many items are in memory.

    Requests go through the teacher's client (:class:`aescot.teacher.client.TeacherClient`): the one
    OpenAI-compatible client, with its retries, backoff, ``Retry-After`` handling and key scrubbing.
    """
    from aescot.teacher.client import TeacherClient

    client = TeacherClient(cfg.endpoint())
    rows = enumerate(iter_rows(cfg))
    done: list[tuple[int, dict, dict]] = []

    async def worker() -> None:
        for i, (fs, row) in rows:  # one shared iterator: each row goes to exactly one worker
            truth = {"acceptable": row["acceptable"], "best": row["best"], "dimensions": row["dimensions"]}
            done.append((i, truth, await _ask(client, cfg, fs, row)))

    try:
        await asyncio.gather(*(worker() for _ in range(cfg.concurrency)))
    finally:
        await client.aclose()
    return sorted(done, key=lambda t: t[0])


def evaluate(config: EvalConfig) -> EvalReport:
    """Ask the model every item of the split and score it beside the random baseline."""
    done = asyncio.run(_run(config))
    truths, results = [t for _, t, _ in done], [r for _, _, r in done]
    errors: dict[str, int] = {}
    for r in results:
        if r["error"]:
            reason = r["error"].split(":")[0]
            errors[reason] = errors.get(reason, 0) + 1
    return EvalReport(
        model=config.model,
        split=config.split,
        n_items=len(truths),
        model_metrics=score([r["parsed"] for r in results], truths),
        random_baseline=random_baseline(truths),
        errors=errors,
        predictions=results,
    )


def write_report(report: EvalReport, out: str) -> None:
    """``report.json``, ``report.md`` and ``predictions.jsonl`` into folder ``out``."""
    fs, root = fsspec.core.url_to_fs(out)
    fs.makedirs(root, exist_ok=True)
    with fs.open(posixpath.join(root, "report.json"), "w") as fh:
        fh.write(json.dumps(report.as_dict(), indent=1))
    with fs.open(posixpath.join(root, "report.md"), "w") as fh:
        fh.write(report.table() + "\n")
    with fs.open(posixpath.join(root, "predictions.jsonl"), "w") as fh:
        for p in report.predictions:
            fh.write(json.dumps(p) + "\n")
