"""Push screening items to Label Studio as tasks: bulk, chunked, idempotent by item id.

The internal table ``labelstudio_tasks`` maps (project uid, item id) to the task id. It is
written right after each chunk's import. If a run dies between the server's commit and that
write (or the answer is lost), the next run notices that the project holds more tasks than
the map knows and *reconciles*: it lists the project's tasks (each carries its item id) and
records them, so nothing is imported twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from label_studio_sdk import LabelStudio

from aescot.ids import derive_id
from aescot.labelstudio.client import (
    LabelStudioUnavailable,
    call,
    http_client,
    is_transient,
    list_tasks,
    make_client,
)
from aescot.labelstudio.config import LabelStudioConfig
from aescot.labelstudio.mapping import ITEM_FIELD, answer_to_result, task_data
from aescot.labelstudio.project import Project, document_root, ensure_project
from aescot.rejects import Reject, record_rejects
from aescot.store import DatasetStore, TableSpec, register_table
from aescot.timeutil import now_iso

log = logging.getLogger(__name__)
STAGE = "labelstudio.push"

TASKS_TABLE = register_table(
    TableSpec(
        "labelstudio_tasks",
        ("project_uid", "item_id"),
        schema=pa.schema(
            [
                pa.field("project_uid", pa.string()),
                pa.field("item_id", pa.string()),
                pa.field("project_id", pa.int64()),
                pa.field("task_id", pa.int64()),
                pa.field("gold", pa.bool_()),
                pa.field("preannotated", pa.bool_()),
                pa.field("pushed_at", pa.string()),
                pa.field("recovered", pa.bool_()),
            ]
        ),
    )
)


@dataclass(frozen=True)
class Prediction:
    """A pre-annotation shown to annotators: an answer dict, the model version and a 0-1 score."""

    answer: dict[str, Any]
    model_version: str
    score: float | None = None


@dataclass
class PushReport:
    project_id: int
    considered: int = 0
    already_pushed: int = 0
    pushed: int = 0
    gold_pushed: int = 0
    gold_held_back: int = 0
    recovered: int = 0
    duplicates_in_project: list[int] = field(default_factory=list)
    rejected: int = 0
    chunks: int = 0


def task_map(store: DatasetStore, project: Project) -> dict[str, dict[str, Any]]:
    """item id -> row of ``labelstudio_tasks`` for this project."""
    rows = store.read_arrow(TASKS_TABLE.name)
    if rows.num_rows == 0:
        return {}
    return {r["item_id"]: r for r in rows.to_pylist() if r["project_uid"] == project.uid}


def reconcile(
    store: DatasetStore,
    config: LabelStudioConfig,
    project: Project,
    items_by_id: Mapping[str, dict[str, Any]],
    known: dict[str, dict[str, Any]],
) -> tuple[int, list[int]]:
    """Record tasks the project holds but the map lacks; returns (recovered, duplicate task ids)."""
    with http_client(config) as http:
        tasks = list_tasks(config, http, project.id)
    first: dict[str, int] = {}
    duplicates: list[int] = []
    for t in sorted(tasks, key=lambda t: t["id"]):
        iid = (t.get("data") or {}).get(ITEM_FIELD)
        if not iid:
            continue
        if iid in first:
            duplicates.append(t["id"])
        else:
            first[iid] = t["id"]
    now = now_iso()
    rows = []
    for iid, tid in first.items():
        if iid not in known or known[iid]["task_id"] != tid:
            item = items_by_id.get(iid, {})
            rows.append(
                {
                    "project_uid": project.uid,
                    "item_id": iid,
                    "project_id": project.id,
                    "task_id": tid,
                    "gold": bool(item.get("gold")),
                    "preannotated": False,
                    "pushed_at": now,
                    "recovered": True,
                }
            )
    store.upsert(TASKS_TABLE.name, rows)
    for r in rows:
        known[r["item_id"]] = r
    if duplicates:
        log.warning(
            "project %s holds %d duplicate tasks for already-mapped items: %s",
            project.id,
            len(duplicates),
            duplicates[:20],
        )
    return len(rows), duplicates


def _order_key(item_id: str) -> str:
    """A stable pseudo-random order so gold tasks are interleaved, not clustered at the end."""
    return derive_id("labelstudio-order", item_id)


def _select(
    items: list[dict],
    known: Mapping[str, Any],
    config: LabelStudioConfig,
    explicit: bool,
    all_items_gold: bool,
) -> tuple[list[dict], int]:
    todo = [i for i in items if i["item_id"] not in known]
    if explicit or all_items_gold:
        return sorted(todo, key=lambda i: _order_key(i["item_id"])), 0
    regular = [i for i in todo if not i["gold"]]
    gold = sorted((i for i in todo if i["gold"]), key=lambda i: i["item_id"])
    mapped_regular = sum(1 for r in known.values() if not r["gold"])
    mapped_gold = len(known) - mapped_regular
    share = config.gold_share
    target = int(share / (1.0 - share) * (mapped_regular + len(regular)) + 0.5)
    n_gold = max(0, min(len(gold), target - mapped_gold))
    chosen = regular + gold[:n_gold]
    return sorted(chosen, key=lambda i: _order_key(i["item_id"])), len(gold) - n_gold


def _image_problems(store: DatasetStore, item: dict[str, Any], check: bool, seen: set[str]) -> str | None:
    keys = [item["source_image_key"], *(c["image_key"] for c in item["candidates"])]
    outside = [k for k in keys if not k.startswith("images/")]
    if outside:
        return f"image keys outside the store's images/ folder cannot be served: {outside}"
    if check:
        missing = [k for k in keys if k not in seen and not store.exists(k)]
        seen.update(k for k in keys if k not in missing)
        if missing:
            return f"images missing from the store: {missing}"
    return None


def _payload(
    item: dict[str, Any],
    store: DatasetStore,
    project: Project,
    config: LabelStudioConfig,
    prediction: Prediction | None,
) -> dict[str, Any]:
    root = document_root(store, config) if project.storage.startswith("local:") else None
    task: dict[str, Any] = {"data": task_data(item, store, project.storage, root)}
    if prediction is not None:
        pred: dict[str, Any] = {
            "model_version": prediction.model_version,
            "result": answer_to_result(prediction.answer),
        }
        if prediction.score is not None:
            pred["score"] = float(prediction.score)
        task["predictions"] = [pred]
    return task


def _chunks(seq: list, n: int) -> Iterable[list]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def push_items(
    store: DatasetStore,
    config: LabelStudioConfig,
    item_ids: Iterable[str] | None = None,
    predictions: Mapping[str, Prediction] | None = None,
    client: LabelStudio | None = None,
) -> PushReport:
    """Push items not yet in the project as tasks, in bulk chunks; idempotent by item id.

    ``item_ids`` restricts (and forces) what is pushed; otherwise every item is considered and
    gold items are mixed in at ``config.gold_share`` of the pushed tasks (the rest are held back
    for later pushes). ``predictions`` (item id -> :class:`Prediction`) become pre-annotations;
    with ``config.prefill_known_answers`` the known answers of gold items do (those are then not
    scored as gold). Raises :class:`LabelStudioUnavailable` when the server stays unreachable;
    every chunk imported before that is recorded, so a re-run resumes.
    """
    client = client or make_client(config)
    project = ensure_project(store, config, client)
    report = PushReport(project_id=project.id)
    all_items = store.read("items")
    by_id = {i["item_id"]: i for i in all_items}
    explicit = item_ids is not None
    wanted = [by_id[i] for i in dict.fromkeys(item_ids) if i in by_id] if explicit else all_items
    if explicit:
        unknown = [i for i in dict.fromkeys(item_ids) if i not in by_id]
        rejects = [Reject(STAGE, i, "unknown_item", "no such item in the items table") for i in unknown]
    else:
        rejects = []
    report.considered = len(wanted)

    known = task_map(store, project)
    task_number = call(config, lambda: client.projects.get(project.id), "get project").task_number or 0
    if task_number != len(known):
        report.recovered, report.duplicates_in_project = reconcile(store, config, project, by_id, known)
    report.already_pushed = sum(1 for i in wanted if i["item_id"] in known)

    all_gold = bool(all_items) and all(i["gold"] for i in all_items)
    selected, report.gold_held_back = _select(wanted, known, config, explicit, all_gold)
    ready, seen = [], set()
    for item in selected:
        problem = _image_problems(store, item, config.check_images, seen)
        if problem:
            rejects.append(Reject(STAGE, item["item_id"], "image_unavailable", problem, item["source_id"]))
        else:
            ready.append(item)
    report.rejected = len(rejects)
    record_rejects(store, rejects)

    preds = dict(predictions or {})
    for chunk in _chunks(ready, config.chunk_size):
        _import_chunk(store, config, client, project, chunk, preds, known, by_id, report)
    return report


def _prediction_for(
    item: dict[str, Any], preds: Mapping[str, Prediction], config: LabelStudioConfig
) -> Prediction | None:
    if item["item_id"] in preds:
        return preds[item["item_id"]]
    if config.prefill_known_answers and item.get("known_answer"):
        return Prediction(
            item["known_answer"],
            model_version=f"known-answer:{item.get('generator', 'synthetic')}",
            score=1.0,
        )
    return None


def _import_chunk(
    store: DatasetStore,
    config: LabelStudioConfig,
    client: LabelStudio,
    project: Project,
    chunk: list[dict],
    preds: Mapping[str, Prediction],
    known: dict[str, dict[str, Any]],
    by_id: Mapping[str, dict[str, Any]],
    report: PushReport,
) -> None:
    """Import one chunk. A transient failure is never blindly retried: first reconcile with what the
    server actually committed, then import only the rest."""
    for attempt in range(config.retry_attempts):
        todo = [i for i in chunk if i["item_id"] not in known]
        if not todo:
            return
        pending = [(i, _prediction_for(i, preds, config)) for i in todo]
        payload = [_payload(i, store, project, config, p) for i, p in pending]
        try:
            resp = client.projects.import_tasks(
                project.id, request=payload, return_task_ids=True, request_options={"max_retries": 0}
            )
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning(
                "import of %d tasks failed (%s); reconciling before retry %d",
                len(todo),
                type(exc).__name__,
                attempt + 1,
            )
            try:
                recovered, dups = reconcile(store, config, project, by_id, known)
            except LabelStudioUnavailable:
                if attempt == config.retry_attempts - 1:
                    raise
                continue
            report.recovered += recovered
            report.duplicates_in_project = sorted(set(report.duplicates_in_project) | set(dups))
            continue
        ids = list(resp.task_ids or [])
        if len(ids) != len(todo):
            # cannot pair ids with items safely: ask the server which task holds which item
            recovered, _ = reconcile(store, config, project, by_id, known)
            report.pushed += recovered
            continue
        now = now_iso()
        rows = [
            {
                "project_uid": project.uid,
                "item_id": i["item_id"],
                "project_id": project.id,
                "task_id": tid,
                "gold": bool(i["gold"]),
                "preannotated": p is not None,
                "pushed_at": now,
                "recovered": False,
            }
            for (i, p), tid in zip(pending, ids)
        ]
        store.upsert(TASKS_TABLE.name, rows)
        for r in rows:
            known[r["item_id"]] = r
        report.pushed += len(rows)
        report.gold_pushed += sum(1 for r in rows if r["gold"])
        report.chunks += 1
        return
    raise LabelStudioUnavailable(
        f"import into project {project.id} at {config.url} kept failing after "
        f"{config.retry_attempts} attempts; progress is saved, re-run to resume"
    )
