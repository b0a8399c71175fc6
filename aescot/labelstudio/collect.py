"""Collect annotations incrementally. The first pull is one export of every annotated task; later
pulls ask the task list for what changed since the *cursor* and export only those tasks. The raw
export is written to ``snapshots/labelstudio/`` *before* it is parsed, and every annotation becomes
an ``annotations`` row (``labelstudio:<id>``; an edit replaces it with the next revision, the
earlier one stays in its raw snapshot). ``labels`` (consensus) are refreshed for the items touched.
An annotation that breaks the answer rules is kept whole in ``invalid_annotations`` with its reasons
and its task is sent back to the queue (:mod:`aescot.labelstudio.invalid`).

The cursor (``labelstudio_cursor``, one row per project) holds the newest task update seen and when,
by the server's clock, the last pull began. Label Studio stamps a task's ``updated_at`` whenever an
annotation of it is created, edited or deleted, so the next pull lists the tasks stamped at or after
``min(newest, began - cursor_overlap_s)`` (the Data Manager filter ``filter:tasks:updated_at``,
oldest first): ties at the newest stamp are listed again, and a write that was still in flight when
the last pull began is caught by the overlap. A listed task whose stamp equals the one recorded in
``labelstudio_task_state`` is dropped there; an annotation whose ``updated_at`` equals the stored
revision's is counted unchanged. A pull with nothing changed is one listing request that returns the
tied tasks only, and writes nothing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.compute as pc
from label_studio_sdk import LabelStudio

from aescot.contracts import ContractError, validate
from aescot.labelstudio import invalid
from aescot.labelstudio.client import call, get_json, get_response, http_client, make_client, server_time
from aescot.labelstudio.config import LabelStudioConfig
from aescot.labelstudio.consensus import consensus
from aescot.labelstudio.mapping import ITEM_FIELD, LETTERS, ResultError, result_to_answer
from aescot.labelstudio.project import Project, ProjectGone, ensure_project, forget_project, project_for
from aescot.rejects import Reject, record_rejects
from aescot.store import DatasetStore, TableSpec, register_table
from aescot.timeutil import now_iso

log = logging.getLogger(__name__)
STAGE = "labelstudio.collect"
SNAPSHOT_PREFIX = "snapshots/labelstudio"
FILTER_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # what the Data Manager parses a Datetime filter value with

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

CURSOR_TABLE = register_table(
    TableSpec(
        "labelstudio_cursor",
        ("project_uid",),
        schema=pa.schema(
            [
                pa.field("project_uid", pa.string()),
                pa.field("newest_task_update", pa.string()),  # the newest task updated_at pulled
                pa.field("pull_began", pa.string()),  # when the last pull began, by the server's clock
                pa.field("written_at", pa.string()),
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
    requests: int = 0  # task listing and export requests this pull made


@dataclass(frozen=True)
class Cursor:
    newest: datetime | None  # the newest task update pulled
    began: datetime | None  # when the pull that saw it began, by the server's clock

    def since(self, overlap_s: float) -> datetime:
        """List from here: ties at the newest stamp again, and writes in flight when the pull began."""
        overlap = timedelta(seconds=overlap_s)
        if self.began is None:
            assert self.newest is not None
            return self.newest - overlap
        late = self.began - overlap
        return late if self.newest is None or late < self.newest else self.newest

    def advanced(self, stamps: list[datetime], began: datetime | None) -> Cursor:
        newest = max([s for s in [self.newest, *stamps] if s is not None], default=None)
        return Cursor(newest, began)


def _dt(ts: str | None) -> datetime | None:
    if ts is None:
        return None
    t = datetime.fromisoformat(ts)
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _mine(project: Project) -> pc.Expression:
    return pc.field("project_uid") == project.uid


def read_cursor(store: DatasetStore, project: Project) -> Cursor | None:
    """The project's cursor; None before the first pull."""
    rows = store.read(CURSOR_TABLE.name, ["newest_task_update", "pull_began"], where=_mine(project))
    if rows:
        return Cursor(_dt(rows[0]["newest_task_update"]), _dt(rows[0]["pull_began"]))
    # pulled by a release that kept no cursor: the newest stamp in its task state, read once
    stamps = store.read_arrow(STATE_TABLE.name, ["task_updated_at"], where=_mine(project)).column(0)
    newest = pc.max(stamps).as_py() if len(stamps) else None
    return Cursor(_dt(newest), None) if newest else None


def _write_cursor(store: DatasetStore, project: Project, cursor: Cursor) -> None:
    iso = lambda t: None if t is None else t.isoformat(timespec="microseconds")
    row = {
        "project_uid": project.uid,
        "newest_task_update": iso(cursor.newest),
        "pull_began": iso(cursor.began),
        "written_at": now_iso(),
    }
    store.upsert(CURSOR_TABLE.name, [row])


def _stamp_filter(operator: str, at: datetime) -> dict[str, Any]:
    return {
        "filter": "filter:tasks:updated_at",
        "operator": operator,
        "type": "Datetime",
        "value": at.astimezone(UTC).strftime(FILTER_FORMAT),
    }


def _task_page(
    config: LabelStudioConfig, http: httpx.Client, project_id: int, item: dict, page: int, page_size: int
) -> tuple[list[dict], httpx.Response | None]:
    query = {"filters": {"conjunction": "and", "items": [item]}, "ordering": ["tasks:updated_at"]}
    params = {
        "project": project_id,
        "page": page,
        "page_size": page_size,
        "fields": "task_only",
        "query": json.dumps(query),
    }
    try:
        r = get_response(config, http, "/api/tasks", params, "list changed tasks")
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code != 404:
            raise
        if page == 1:
            raise ProjectGone(f"Label Studio has no project {project_id}") from None
        return [], None  # past the last page
    body = r.json()
    return (body["tasks"] if isinstance(body, dict) else body), r


def changed_tasks(
    config: LabelStudioConfig, http: httpx.Client, project_id: int, since: datetime
) -> tuple[list[dict], datetime | None, int]:
    """Tasks updated at or after ``since``, each once (its latest listing); when the server began the
    first listing; and the requests made.

    Pages by update stamp, oldest first: each request asks again for the oldest tasks at or after the
    last stamp seen, so tasks updated or deleted meanwhile shift nothing. A full page of one stamp
    (a bulk update) is read by offset, then listing goes on past that stamp.
    """
    size = config.list_page_size
    seen: dict[int, dict] = {}
    began: datetime | None = None
    requests = 0
    operator, at = "greater_or_equal", since
    while True:
        page, r = _task_page(config, http, project_id, _stamp_filter(operator, at), 1, size)
        requests += 1
        if began is None and r is not None:
            began = server_time(r)
        seen.update((t["id"], t) for t in page)
        if len(page) < size:
            break
        last = _dt(page[-1]["updated_at"])
        if last > at:
            operator, at = "greater_or_equal", last
            continue
        n = 1
        while True:  # every task stamped exactly ``at``
            tied, _ = _task_page(config, http, project_id, _stamp_filter("equal", at), n, size)
            requests += 1
            seen.update((t["id"], t) for t in tied)
            if len(tied) < size:
                break
            n += 1
        operator = "greater"
    return list(seen.values()), began, requests


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

    The first pull is one export of every annotated task; later pulls list the tasks updated since
    the cursor (see the module docs) and export only those whose update stamp moved, in chunks of
    ``export_chunk`` task ids. Nothing changed: one listing request, no export, no write.
    """
    client = client or make_client(config)
    try:
        return _collect(store, config, project_for(store, config, client))
    except ProjectGone:
        forget_project(store, config)
        return _collect(store, config, ensure_project(store, config, client))


def _task_state(store: DatasetStore, project: Project, task_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The recorded state of these tasks of the project (only their rows are read)."""
    if not task_ids:
        return {}
    where = _mine(project) & pc.field("task_id").isin(pa.array(sorted(set(task_ids)), pa.int64()))
    cols = ["task_id", "item_id", "task_updated_at", "annotation_ids", "snapshot_key"]
    return {r["task_id"]: r for r in store.read(STATE_TABLE.name, cols, where=where)}


def _collect(store: DatasetStore, config: LabelStudioConfig, project: Project) -> CollectReport:
    report = CollectReport(project_id=project.id)
    with http_client(config) as http:
        # invalid annotations recorded by a pull that died before sending them back
        report.requeued += invalid.send_back(store, http, invalid.pending(store, project.uid))
        cursor = read_cursor(store, project)
        changed: list[dict] = []
        state: dict[int, dict[str, Any]] = {}
        began: datetime | None = None
        if cursor is None:
            # first pull: one export of every task with any annotation (skips included), no listing
            requests = [[("exportType", "JSON"), ("download_all_tasks", "false")]]
            cursor = Cursor(None, None)
        else:
            listed, began, report.requests = changed_tasks(
                config, http, project.id, cursor.since(config.cursor_overlap_s)
            )
            state = _task_state(store, project, [t["id"] for t in listed])
            # ties and the overlap list tasks already pulled: keep those whose update stamp moved
            changed = [
                t for t in listed if state.get(t["id"], {}).get("task_updated_at") != _iso(t["updated_at"])
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
                _advance(
                    store, project, cursor, cursor.advanced(_stamps(listed), began), config.cursor_overlap_s
                )
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
        exported_stamps: list[datetime] = []
        for n, params in enumerate(requests):
            raw, r = _export(config, http, project.id, params)
            report.requests += 1
            if began is None:
                began = server_time(r)
            if raw.strip() == b"[]":
                continue
            key = f"{SNAPSHOT_PREFIX}/{project.id}/{stamp}-{n:04d}.json"
            store.write_bytes(key, raw)  # the raw pull is safe on disk before anything parses it
            report.snapshots.append(key)
            tasks = json.loads(raw)
            if not changed:
                report.tasks_changed += len(tasks)
            # the stored revisions of this export's annotations only
            ann_keys = [f"labelstudio:{a['id']}" for t in tasks for a in t.get("annotations") or []]
            stored = {
                r["annotation_id"]: r
                for r in store.read("annotations", ["annotation_id", "revision", "updated_at"], keys=ann_keys)
            }
            for task in tasks:
                exported_stamps.append(_dt(_iso(task["updated_at"])))
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
        store.upsert("annotations", new_rows, validate=False)  # each validated by parse_annotation
        record_rejects(store, rejects)
        store.upsert(invalid.TABLE.name, invalid_rows)  # kept whole before Label Studio forgets them
        report.invalid = len(invalid_rows)
        report.rejected = len(rejects) + len(invalid_rows)
        # listed tasks that lost every annotation but were not exported (deleted meanwhile): empty now
        exported = {r["task_id"] for r in state_rows}
        state_rows += _emptied_rows(project, [t for t in changed if t["id"] not in exported], state)
        # labels before the task state: if we die in between, the next pull re-reads these tasks
        written, pending = refresh_labels(store, config, touched, pending_state=state_rows)
        report.labels_written, report.needs_adjudication = written, pending
        store.upsert(STATE_TABLE.name, state_rows)
        # the cursor last: dying before it only makes the next pull list these tasks again
        new = cursor.advanced(_stamps(changed) + exported_stamps, began)
        _advance(store, project, cursor, new, config.cursor_overlap_s)
        # last: send the invalid ones back (their tasks' update stamps move; the next pull sees them gone)
        report.requeued += invalid.send_back(store, http, invalid_rows)
    return report


def _stamps(tasks: list[dict]) -> list[datetime]:
    return [_dt(_iso(t["updated_at"])) for t in tasks]


def _advance(store: DatasetStore, project: Project, old: Cursor, new: Cursor, overlap_s: float) -> None:
    """Write the cursor when the next pull would list from elsewhere (a quiet pull writes nothing)."""
    if new.newest is None and new.began is None:
        return  # nothing learnt: no stamp pulled, no server clock read
    first = old.newest is None and old.began is None
    if first or new.newest != old.newest or new.since(overlap_s) != old.since(overlap_s):
        _write_cursor(store, project, new)


def _export(
    config: LabelStudioConfig, http: httpx.Client, project_id: int, params
) -> tuple[bytes, httpx.Response]:
    def once() -> httpx.Response:
        r = http.get(f"/api/projects/{project_id}/export", params=params)
        if r.status_code == 404:
            raise ProjectGone(f"Label Studio has no project {project_id}")
        r.raise_for_status()
        return r

    r = call(config, once, "export annotations")
    return r.content, r


def _emptied_rows(project: Project, tasks: list[dict], state: dict[int, dict]) -> list[dict]:
    """State rows for listed tasks that had annotations and now have none (not worth an export)."""
    rows = []
    for t in tasks:
        prev = state.get(t["id"])
        if not prev or not prev.get("annotation_ids"):
            continue  # never annotated: the cursor passing it is enough
        rows.append(
            {
                "project_uid": project.uid,
                "task_id": t["id"],
                "item_id": (t.get("data") or {}).get(ITEM_FIELD) or prev.get("item_id") or "",
                "task_updated_at": _iso(t["updated_at"]),
                "annotation_ids": [],
                "snapshot_key": prev.get("snapshot_key") or "",
                "pulled_at": now_iso(),
            }
        )
    return rows


ANNOTATION_COLUMNS = [
    "annotation_id",
    "item_id",
    "annotator",
    "status",
    "acceptable",
    "best",
    "dimensions",
    "scores",
    "lead_time_s",
]


def live_annotations(
    store: DatasetStore, item_ids: set[str] | None = None, pending_state: list[dict[str, Any]] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """item id -> its annotations still present in Label Studio at the last pull (latest revision each).

    With ``item_ids`` only those items' task state and annotations are read; without, every item's
    (the agreement report). ``pending_state`` are task-state rows of the pull in progress, not yet
    written; they take precedence.
    """
    where = None
    if item_ids is not None:
        if not item_ids:
            return {}
        where = pc.field("item_id").isin(pa.array(sorted(item_ids), pa.string()))
    state = store.read_arrow(STATE_TABLE.name, ["project_uid", "task_id", "item_id", "annotation_ids"], where)
    per_task: dict[tuple[str, int], list[str]] = {}
    for r in [*state.to_pylist(), *(pending_state or [])]:
        if item_ids is None or r["item_id"] in item_ids:
            per_task[(r["project_uid"], r["task_id"])] = r["annotation_ids"] or []
    live = sorted({a for ids in per_task.values() for a in ids})
    out: dict[str, list[dict[str, Any]]] = {}
    for a in store.read("annotations", ANNOTATION_COLUMNS, keys=live):
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
    current = {r["item_id"]: r for r in store.read("labels", keys=sorted(item_ids))}
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
