"""Prefect tasks: one per stage step, each a thin call into the ``aescot`` library.

Tasks take the store's root URI and ids (never pixels) and return small dicts of counts, so
results persist cheaply and retries are safe: every stage is idempotent in the store.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from prefect import get_run_logger, task
from prefect.context import TaskRunContext

from aescot.errors import is_retryable
from aescot.generate import GenerateConfig, generate_candidates
from aescot.ids import derive_id
from aescot.ingest import ingest
from aescot.items import build_items
from aescot.store import DatasetStore
from flows.limits import GPU_LIMIT, TEACHER_LIMIT, batch_lock, hold_slots


def retryable(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's retry condition: never retry a configuration, input or contract error (retrying the
    same call cannot help; it only delays the one-line message by the whole backoff, ~41 s)."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - no result to inspect: keep Prefect's default (retry)
        return True
    return not isinstance(exc, BaseException) or is_retryable(exc)


NETWORK_RETRIES = {
    "retries": 3,
    "retry_delay_seconds": [2, 10, 30],
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retryable,
}


def require_healthy_store(root: str) -> dict[str, Any]:
    """The cheap part of ``aescot doctor`` (file list and every footer), run before the flow does
    anything: a damaged store stops the run with one line naming the file and ``aescot repair``."""
    from aescot.doctor import require_healthy

    report = require_healthy(DatasetStore(root))
    return {"tables": report.tables, "files": report.files, "rows": report.rows}


@task(name="ingest")
def ingest_sources(root: str, inputs: list[str]) -> dict[str, Any]:
    report = ingest(DatasetStore(root), inputs)
    return {
        "added": report.added,
        "already_present": report.already_present,
        "rejected": report.rejected,
        "reasons": report.reasons(),
    }


def sources_without_items(root: str) -> list[str]:
    """Sources that have no screening item yet, sorted by id: the generation backlog, one key
    anti-join of two projected columns per run."""
    return DatasetStore(root).backlog("sources", "items", on="source_id").to_pylist()


def generation_config(generator: str, model: str | None, steps: int, seconds_per_call: float = 0.5) -> str:
    """The generation settings as JSON (a task input, so part of the cache key)."""
    cfg = GenerateConfig(backend=generator)
    if model:
        cfg.diffusers.model = model
    cfg.diffusers.steps = steps
    cfg.latency.seconds_per_call = seconds_per_call
    return cfg.model_dump_json()


def _batch_id(root: str, source_ids: list[str], config_json: str) -> str:
    """Content key: the same sources with the same settings in the same store are the same work."""
    return derive_id("generate-batch", root, sorted(source_ids), config_json)


def batch_locks(root: str, batches: list[list[str]], config_json: str) -> list[str]:
    """The batch locks (:func:`flows.limits.batch_lock`) these batches take, each once."""
    return sorted({batch_lock(_batch_id(root, b, config_json)) for b in batches})


def _batch_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    return _batch_id(parameters["root"], parameters["source_ids"], parameters["config_json"])


@task(
    name="generate",
    retries=1,
    retry_delay_seconds=5,
    retry_condition_fn=retryable,
    cache_key_fn=_batch_key,
    cache_expiration=timedelta(days=7),
    persist_result=True,
)
def generate_batch(
    root: str, source_ids: list[str], config_json: str, gold_share: float = 0.1
) -> dict[str, Any]:
    """Generate, dedupe and assemble items for one batch of sources, holding a GPU slot; of the items
    with a known answer, enough become gold that gold items make ``gold_share`` of all items."""
    store = DatasetStore(root)
    config = GenerateConfig.model_validate_json(config_json)
    log = get_run_logger()
    batch = _batch_id(root, source_ids, config_json)
    # the GPU slot and the batch's lock in one request: no other run generates this batch meanwhile,
    # and the ledger read inside skips what a run before it generated
    with hold_slots([GPU_LIMIT, batch_lock(batch)], log):
        # the hold, in the task run's own log records (its Running span also covers the wait)
        log.info("gpu slot held: batch %s", batch)
        outcome = "failed"
        try:
            report = generate_candidates(store, config, source_ids)  # reads the ledger in the slot
            outcome = f"generated {report.generated}, skipped {report.skipped} of {report.sources}"
        finally:
            log.info("gpu slot releasing: batch %s (%s)", batch, outcome)
    items = build_items(store, gold_share=gold_share, group_ids=report.finished_group_ids)
    return {
        "sources": report.sources,
        "generated": report.generated,
        "skipped": report.skipped,
        "candidates": report.candidates,
        "regenerations": report.regenerations,
        "incomplete": report.incomplete,
        "rejected": len(report.rejects) + len(items.rejects),
        "items": items.built,
        "gold_items": items.gold,
    }


def labelstudio_config(root: str, project: str, gold_share: float):
    """Label Studio settings: ``LABEL_STUDIO_URL``/``LABEL_STUDIO_API_KEY`` when set, else the embedded
    server started for this dataset (``aescot labelstudio start``). The key never leaves the process."""
    from aescot.labelstudio.config import resolve_config

    return resolve_config(DatasetStore(root), project_title=project, gold_share=gold_share)


@task(name="push", **NETWORK_RETRIES)
def push_items(root: str, project: str, gold_share: float) -> dict[str, Any]:
    """Push every item not yet in the project, in bulk chunks; idempotent by item id."""
    from aescot.labelstudio import push_items as push

    report = push(DatasetStore(root), labelstudio_config(root, project, gold_share))
    return {
        "project_id": report.project_id,
        "pushed": report.pushed,
        "already_pushed": report.already_pushed,
        "gold_pushed": report.gold_pushed,
        "gold_held_back": report.gold_held_back,
        "recovered": report.recovered,
        "rejected": report.rejected,
    }


@task(name="collect", **NETWORK_RETRIES)
def collect_labels(root: str, project: str, gold_share: float) -> dict[str, Any]:
    """Snapshot and parse what annotators changed since the last pull; refresh consensus labels."""
    from aescot.labelstudio import agreement_report, collect_annotations

    store = DatasetStore(root)
    report = collect_annotations(store, labelstudio_config(root, project, gold_share))
    out = {
        "tasks_changed": report.tasks_changed,
        "new": report.annotations_new,
        "updated": report.annotations_updated,
        "skipped": report.skipped,
        "rejected": report.rejected,
        "labels_written": report.labels_written,
        "needs_adjudication": len(report.needs_adjudication),
    }
    if store.count("labels"):
        alphas = {f.field: f.alpha for f in agreement_report(store).fields}
        out["krippendorff_alpha"] = {
            k: v for k, v in alphas.items() if v is not None
        } or "n/a (one annotator)"
    return out


@task(name="rationales", **NETWORK_RETRIES)
def write_rationales(root: str, samples: int) -> dict[str, Any]:
    from aescot.teacher.config import RationaleConfig
    from aescot.teacher.rationales import generate_rationales

    with hold_slots([TEACHER_LIMIT], get_run_logger()):
        report = generate_rationales(DatasetStore(root), RationaleConfig(samples=samples))
    return {
        "calls": report.calls,
        "ok": report.ok,
        "failed": report.failed,
        "cached": report.samples_cached,
        "format_failures": report.format_failures,
        "consistent": report.consistent,
        "cost_usd": round(report.cost_usd, 4),
    }


@task(name="filter")
def filter_items(root: str, min_consistency: float, samples: int) -> dict[str, Any]:
    from aescot.teacher.config import FilterConfig
    from aescot.teacher.filter import filter_rationales

    report = filter_rationales(
        DatasetStore(root), FilterConfig(min_consistency=min_consistency, samples=samples)
    )
    return {
        "decided": report.decided,
        "kept": report.kept,
        "dropped": dict(report.dropped),
        "pending": report.pending,
    }


@task(name="export")
def export(root: str, out: str) -> dict[str, Any]:
    from aescot.export.run import ExportConfig, export_dataset

    store = DatasetStore(root)
    if not store.count("labels"):
        return {"skipped": "no labelled items yet"}
    summary = export_dataset(store, ExportConfig(out=out))
    return {
        "out": summary.out,
        "unchanged": summary.skipped,
        "items": summary.items,
        "leak_ok": summary.leak_ok,
    }


def teacher_enabled(mode: str) -> bool:
    """``auto`` follows the environment: a teacher is used when its base URL is configured."""
    return mode == "on" or (mode == "auto" and bool(os.environ.get("AESCOT_TEACHER_BASE_URL")))


def merge_counts(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum the numeric fields of per-batch reports."""
    out: dict[str, Any] = {}
    for rep in reports:
        for k, v in rep.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[k] = out.get(k, 0) + v
    return out
