"""Collect annotations incrementally: only tasks updated since the last pull are exported,
the raw export is written to ``snapshots/labelstudio/`` *before* it is parsed, and every
annotation becomes an ``annotations`` row (``labelstudio:<id>``; an edit appends a new
revision, earlier parts keep the history). ``labels`` (consensus) are refreshed for the
items touched. An annotation that breaks the answer rules is kept whole in
``invalid_annotations`` with its reasons and its task is sent back to the queue
(:mod:`aescot.labelstudio.invalid`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
from label_studio_sdk import LabelStudio

from aescot.contracts import ContractError, validate
from aescot.labelstudio import invalid
from aescot.labelstudio.client import get_json, http_client, list_tasks, make_client
from aescot.labelstudio.config import LabelStudioConfig
from aescot.labelstudio.consensus import consensus
from aescot.labelstudio.mapping import ITEM_FIELD, LETTERS, ResultError, result_to_answer
from aescot.labelstudio.project import Project, ensure_project
from aescot.rejects import Reject, record_rejects
from aescot.store import DatasetStore, TableSpec, register_table
from aescot.timeutil import now_iso

log = logging.getLogger(__name__)
STAGE = "labelstudio.collect"
SNAPSHOT_PREFIX = "snapshots/labelstudio"

STATE_TABLE = register_table(
    TableSpec(
        "labelstudio_task_state",
        ("project_uid", "task_id"),
        schema=pa.schema(
            [
                pa.field("project_uid", pa.string()),
                pa.field("task_id", pa.int64()),
                pa.field("item_id", pa.string()),
                pa.field("task_updated_at", pa.string()),
                pa.field("annotation_ids", pa.list_(pa.string())),
                pa.field("snapshot_key", pa.string()),
                pa.field("pulled_at", pa.string()),
            ]
        ),
    )
)


@dataclass
class CollectReport:
    project_id: int
    tasks_changed: int = 0
    snapshots: list[str] = field(default_factory=list)
    annotations_new: int = 0
    annotations_updated: int = 0
    annotations_unchanged: int = 0
    skipped: int = 0
    rejected: int = 0  # tasks aescot did not push, plus invalid annotations
    invalid: int = 0  # annotations breaking the answer rules, recorded in invalid_annotations
    requeued: int = 0  # invalid annotations removed from their task, so Label Studio offers it again
    labels_written: int = 0
    needs_adjudication: list[str] = field(default_factory=list)


def _cursor(store: DatasetStore, project: Project) -> str | None:
    state = store.read_arrow(STATE_TABLE.name, columns=["project_uid", "task_updated_at"])
    stamps = [r["task_updated_at"] for r in state.to_pylist() if r["project_uid"] == project.uid]
    return max(stamps) if stamps else None


def _since(cursor: str, overlap_s: float) -> str:
    t = datetime.fromisoformat(cursor) - timedelta(seconds=overlap_s)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def changed_tasks(config: LabelStudioConfig, http, project: Project, cursor: str | None) -> list[dict]:
    """Tasks updated at or after the cursor (minus a small overlap); all tasks on the first pull."""
    query = None
    if cursor:
        query = {
            "filters": {
                "conjunction": "and",
                "items": [
                    {
                        "filter": "filter:tasks:updated_at",
                        "operator": "greater",
                        "type": "Datetime",
                        "value": _since(cursor, config.cursor_overlap_s),
                    }
                ],
            }
        }
    return list_tasks(config, http, project.id, query)


def _iso(ts: str | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromisoformat(ts).isoformat(timespec="microseconds")


def _annotators(config: LabelStudioConfig, http) -> dict[int, str]:
    users = get_json(config, http, "/api/users", None, "list users")
    return {u["id"]: u.get("email") or u.get("username") or f"user-{u['id']}" for u in users}


def parse_annotation(
    ann: dict[str, Any], item_id: str, task_id: int, annotator: str, revision: int
) -> dict[str, Any]:
    """One exported Label Studio annotation as an ``annotation`` record (validated)."""
    base = {
        "annotation_id": f"labelstudio:{ann['id']}",
        "revision": revision,
        "item_id": item_id,
        "task_id": task_id,
        "annotator": annotator,
        "lead_time_s": ann.get("lead_time"),
        "created_at": _iso(ann["created_at"]),
        "updated_at": _iso(ann.get("updated_at") or ann["created_at"]),
    }
    if ann.get("was_cancelled"):
        answer = {
            "acceptable": [],
            "best": None,
            "dimensions": {L: [] for L in LETTERS},
            "scores": {L: None for L in LETTERS},
        }
        status = "skipped"
    else:
        answer = result_to_answer(ann.get("result") or [])
        status = "submitted"
    return validate("annotation", {**base, "status": status, **answer})


def collect_annotations(
    store: DatasetStore, config: LabelStudioConfig, client: LabelStudio | None = None
) -> CollectReport:
    """Pull what changed since the last pull, snapshot it raw, parse it, refresh consensus labels.

    The first pull is one export of every annotated task; later pulls list tasks updated since the
    cursor (the newest task update seen, minus ``cursor_overlap_s``) and export only those whose
    update time moved, in chunks of ``export_chunk`` task ids.
    """
    client = client or make_client(config)
    project = ensure_project(store, config, client)
    report = CollectReport(project_id=project.id)
    stored = {
        r["annotation_id"]: r
        for r in store.read("annotations", columns=["annotation_id", "revision", "updated_at"])
    }
    with http_client(config) as http:
        # invalid annotations recorded by a pull that died before sending them back
        report.requeued += invalid.send_back(store, http, invalid.pending(store, project.uid))
        state = {r["task_id"]: r for r in store.read(STATE_TABLE.name) if r["project_uid"] == project.uid}
        cursor = _cursor(store, project)
        if cursor is None:
            # first pull: one export of every task with any annotation (skips included), no listing
            changed, requests = [], [[("exportType", "JSON"), ("download_all_tasks", "false")]]
        else:
            changed = changed_tasks(config, http, project, cursor)
            # the overlap window re-lists tasks already pulled: keep those whose update time moved
            changed = [
                t for t in changed if state.get(t["id"], {}).get("task_updated_at") != _iso(t["updated_at"])
            ]
            # a task matters if it has annotations now, or had some last time (they may have been deleted)
            wanted = [
                t["id"]
                for t in changed
                if (t.get("total_annotations") or 0) + (t.get("cancelled_annotations") or 0) > 0
                or state.get(t["id"], {}).get("annotation_ids")
            ]
            report.tasks_changed = len(wanted)
            if not wanted:
                _advance_cursor(store, project, changed, state)
                return report
            requests = [
                [
                    ("exportType", "JSON"),
                    ("download_all_tasks", "true"),
                    *(("ids[]", i) for i in wanted[start : start + config.export_chunk]),
                ]
                for start in range(0, len(wanted), config.export_chunk)
            ]
        users = _annotators(config, http)
        stamp = datetime.now().strftime("%Y%m%dT%H%M%S%f")
        new_rows, state_rows, rejects, invalid_rows, touched = [], [], [], [], set()
        for n, params in enumerate(requests):
            raw = _export(config, http, project.id, params)
            if raw.strip() == b"[]":
                continue
            key = f"{SNAPSHOT_PREFIX}/{project.id}/{stamp}-{n:04d}.json"
            store.write_bytes(key, raw)  # the raw pull is safe on disk before anything parses it
            report.snapshots.append(key)
            tasks = json.loads(raw)
            if cursor is None:
                report.tasks_changed += len(tasks)
            for task in tasks:
                item_id = (task.get("data") or {}).get(ITEM_FIELD)
                if not item_id:
                    rejects.append(
                        Reject(
                            STAGE,
                            f"task:{task['id']}",
                            "task_without_item",
                            f"task {task['id']} has no data.{ITEM_FIELD}; not pushed by aescot",
                        )
                    )
                    continue
                ann_ids = []
                for ann in task.get("annotations") or []:
                    aid = f"labelstudio:{ann['id']}"
                    prev = stored.get(aid)
                    updated = _iso(ann.get("updated_at") or ann["created_at"])
                    if prev is not None and prev["updated_at"] == updated:
                        report.annotations_unchanged += 1
                        ann_ids.append(aid)
                        continue
                    revision = 0 if prev is None else prev["revision"] + 1
                    annotator = users.get(ann.get("completed_by"), f"user-{ann.get('completed_by')}")
                    try:
                        rec = parse_annotation(ann, item_id, task["id"], annotator, revision)
                    except (ResultError, ContractError) as exc:
                        problems = exc.problems if isinstance(exc, ContractError) else str(exc).split("; ")
                        invalid_rows.append(
                            invalid.invalid_record(
                                ann,
                                project_uid=project.uid,
                                task_id=task["id"],
                                item_id=item_id,
                                annotator=annotator,
                                problems=problems,
                                snapshot_key=key,
                                annotated_at=updated,
                            )
                        )
                        continue
                    ann_ids.append(aid)
                    new_rows.append(rec)
                    report.skipped += rec["status"] == "skipped"
                    if prev is None:
                        report.annotations_new += 1
                    else:
                        report.annotations_updated += 1
                touched.add(item_id)
                state_rows.append(
                    {
                        "project_uid": project.uid,
                        "task_id": task["id"],
                        "item_id": item_id,
                        "task_updated_at": _iso(task["updated_at"]),
                        "annotation_ids": ann_ids,
                        "snapshot_key": key,
                        "pulled_at": now_iso(),
                    }
                )
        store.upsert("annotations", new_rows)
        record_rejects(store, rejects)
        store.upsert(invalid.TABLE.name, invalid_rows)  # kept whole before Label Studio forgets them
        report.invalid = len(invalid_rows)
        report.rejected = len(rejects) + len(invalid_rows)
        # tasks listed as changed but without annotations still advance the cursor
        exported = {r["task_id"] for r in state_rows}
        state_rows += _cursor_rows(project, [t for t in changed if t["id"] not in exported], state)
        # labels before the task state: if we die in between, the next pull re-reads these tasks
        written, pending = refresh_labels(store, config, touched, pending_state=state_rows)
        report.labels_written, report.needs_adjudication = written, pending
        store.upsert(STATE_TABLE.name, state_rows)
        # last: send the invalid ones back (their tasks' update stamps move; the next pull sees them gone)
        report.requeued += invalid.send_back(store, http, invalid_rows)
    return report


def _export(config: LabelStudioConfig, http, project_id: int, params) -> bytes:
    from aescot.labelstudio.client import call

    def once() -> bytes:
        r = http.get(f"/api/projects/{project_id}/export", params=params)
        r.raise_for_status()
        return r.content

    return call(config, once, "export annotations")


def _cursor_rows(project: Project, tasks: list[dict], state: dict[int, dict]) -> list[dict]:
    rows = []
    for t in tasks:
        prev = state.get(t["id"], {})
        rows.append(
            {
                "project_uid": project.uid,
                "task_id": t["id"],
                "item_id": (t.get("data") or {}).get(ITEM_FIELD) or prev.get("item_id") or "",
                "task_updated_at": _iso(t["updated_at"]),
                "annotation_ids": prev.get("annotation_ids") or [],
                "snapshot_key": prev.get("snapshot_key") or "",
                "pulled_at": now_iso(),
            }
        )
    return rows


def _advance_cursor(
    store: DatasetStore, project: Project, changed: list[dict], state: dict[int, dict]
) -> None:
    store.upsert(STATE_TABLE.name, _cursor_rows(project, changed, state))


def live_annotations(
    store: DatasetStore, item_ids: set[str] | None = None, pending_state: list[dict[str, Any]] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """item id -> its annotations still present in Label Studio at the last pull (latest revision each).

    ``pending_state`` are task-state rows of the pull in progress, not yet written; they take precedence.
    """
    per_task: dict[tuple[str, int], list[str]] = {}
    for r in [*store.read(STATE_TABLE.name), *(pending_state or [])]:
        if item_ids is None or r["item_id"] in item_ids:
            per_task[(r["project_uid"], r["task_id"])] = r["annotation_ids"] or []
    live = {a for ids in per_task.values() for a in ids}
    out: dict[str, list[dict[str, Any]]] = {}
    for a in store.read("annotations"):
        if a["annotation_id"] in live:
            out.setdefault(a["item_id"], []).append(a)
    return out


def refresh_labels(
    store: DatasetStore,
    config: LabelStudioConfig,
    item_ids: set[str],
    pending_state: list[dict[str, Any]] | None = None,
) -> tuple[int, list[str]]:
    """Recompute consensus labels of ``item_ids``; returns (labels written, items waiting for adjudication)."""
    if not item_ids:
        return 0, []
    by_item = live_annotations(store, item_ids, pending_state)
    current = {r["item_id"]: r for r in store.read("labels")}
    rows, pending = [], []
    for item_id in sorted(item_ids):
        anns = by_item.get(item_id, [])
        label = consensus(item_id, anns, config.adjudicators)
        if label is None:
            if any(a["status"] == "submitted" for a in anns):
                pending.append(item_id)
            continue
        old = current.get(item_id)
        same = old is not None and all(old[k] == label[k] for k in label if k != "updated_at")
        if not same:
            rows.append(label)
    store.upsert("labels", rows)
    return len(rows), pending
