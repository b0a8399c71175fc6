"""Push screening items to Label Studio as tasks: bulk, chunked, idempotent by item id.

The internal table ``labelstudio_tasks`` maps (project uid, item id) to the task id; it is written
right after each chunk's import, from the task ids the import answers with. What to push is one key
anti-join per run (the items' ids and gold flags against this project's mapped ids); each chunk
reads its own items' rows only. A steady-state push makes no request but the imports: the project
comes from :func:`~aescot.labelstudio.project.project_for`.

Nothing is imported twice. Before each import a run writes the ids it is about to import to the
project's *import journal* (``snapshots/labelstudio/imports/``, one file per project, replaced by the
next chunk). If a run dies between the server's commit and the map's write (or the answer is lost), the
next run finds journal ids the map lacks and *reconciles*: it lists the project's tasks (each
carries its item id) and records them. Within a run, a failed import is reconciled before it is
retried. The first push to a project the map knows nothing of asks the server how many tasks it
holds (one request); ``reconcile_first=True`` (``aescot push --reconcile``) lists them anyway, for a
store restored from a backup older than its last push.

Each chunk's sources get their outlined copy (:mod:`aescot.labelstudio.outlines`) before the import:
drawn once per source, read from ``source_outlines`` afterwards.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.compute as pc
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from aescot.ids import derive_id, sha256_bytes
from aescot.labelstudio.client import (
    LabelStudioUnavailable,
    get_json,
    http_client,
    is_transient,
    list_tasks,
)
from aescot.labelstudio.config import LabelStudioConfig, LabelStudioConfigError
from aescot.labelstudio.mapping import ITEM_FIELD, answer_to_result, image_refs, item_data
from aescot.labelstudio.outlines import outline_keys
from aescot.labelstudio.project import (
    Project,
    ProjectGone,
    document_root,
    ensure_project,
    forget_project,
    project_for,
)
from aescot.rejects import Reject, record_rejects
from aescot.store import DatasetStore, TableSpec, register_table
from aescot.timeutil import now_iso

log = logging.getLogger(__name__)
STAGE = "labelstudio.push"
JOURNAL_PREFIX = "snapshots/labelstudio/imports"
ITEM_COLUMNS = ["item_id", "source_id", "source_image_key", "candidates", "gold", "known_answer", "generator"]

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
    outlines_drawn: int = 0  # sources whose outlined copy was drawn by this push (once per source)


def _mapped(
    store: DatasetStore, project: Project, columns: list[str], item_ids: Iterable[str] | None = None
) -> pa.Table:
    """This project's rows of ``labelstudio_tasks`` (only ``columns``; only ``item_ids`` when given)."""
    where = pc.field("project_uid") == project.uid
    if item_ids is not None:
        where = where & pc.field("item_id").isin(pa.array(list(item_ids), pa.string()))
    return store.read_arrow(TASKS_TABLE.name, columns, where)


def _journal_key(project: Project) -> str:
    return f"{JOURNAL_PREFIX}/{derive_id('labelstudio-import-journal', project.uid)[:24]}.json"


def _write_journal(store: DatasetStore, project: Project, item_ids: list[str]) -> None:
    store.write_json(
        _journal_key(project), {"project_uid": project.uid, "written_at": now_iso(), "item_ids": item_ids}
    )


def _unrecorded(store: DatasetStore, project: Project, mapped: pa.Table) -> int:
    """How many items of the journal (the last import of the last run) this project's mapped ids
    lack: imported or not, the server knows."""
    key = _journal_key(project)
    if not store.exists(key):
        return 0
    ids = pa.array(sorted(set(store.read_json(key).get("item_ids") or [])), pa.string())
    return int(pc.sum(pc.invert(pc.is_in(ids, value_set=mapped.column("item_id")))).as_py() or 0)


def reconcile(
    store: DatasetStore, config: LabelStudioConfig, project: Project, http: httpx.Client | None = None
) -> tuple[int, list[int]]:
    """Record tasks the project holds but the map lacks; returns (recovered, duplicate task ids)."""
    if http is None:
        with http_client(config) as own:
            return reconcile(store, config, project, own)
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
    known = _mapped(store, project, ["item_id", "task_id"])
    known_ids = dict(zip(known.column("item_id").to_pylist(), known.column("task_id").to_pylist()))
    missing = [iid for iid, tid in first.items() if known_ids.get(iid) != tid]
    gold = store.read_arrow("items", ["item_id", "gold"], keys=missing)
    gold_of = dict(zip(gold.column("item_id").to_pylist(), gold.column("gold").to_pylist()))
    now = now_iso()
    rows = [
        {
            "project_uid": project.uid,
            "item_id": iid,
            "project_id": project.id,
            "task_id": first[iid],
            "gold": bool(gold_of.get(iid)),
            "preannotated": False,
            "pushed_at": now,
            "recovered": True,
        }
        for iid in missing
    ]
    store.upsert(TASKS_TABLE.name, rows)
    if duplicates:
        log.warning(
            "project %s holds %d duplicate tasks for already-mapped items: %s",
            project.id,
            len(duplicates),
            duplicates[:20],
        )
    return len(rows), duplicates


def _order_key(item_id: str) -> str:
    """A stable pseudo-random order so gold tasks are interleaved, not clustered at the end:
    ``derive_id("labelstudio-order", item_id)``, with the canonical JSON of a hex id written out (nothing
    to escape; the JSON encoder per item was 3 % of a 1k-task push)."""
    if not item_id.isalnum():
        return derive_id("labelstudio-order", item_id)
    return sha256_bytes(f'["labelstudio-order","{item_id}"]'.encode())


def _select(
    todo: pa.Table, mapped: pa.Table, config: LabelStudioConfig, explicit: bool, all_items_gold: bool
) -> tuple[list[str], int]:
    """Which of the unpushed items (ids + gold flags) to push now, in task order; and gold held back."""
    ids = todo.column("item_id").to_pylist()
    if explicit or all_items_gold:
        return sorted(ids, key=_order_key), 0
    is_gold = todo.column("gold").to_pylist()
    regular = [i for i, g in zip(ids, is_gold) if not g]
    gold = sorted(i for i, g in zip(ids, is_gold) if g)
    mapped_gold = int(pc.sum(mapped.column("gold")).as_py() or 0)
    mapped_regular = mapped.num_rows - mapped_gold
    share = config.gold_share
    target = int(share / (1.0 - share) * (mapped_regular + len(regular)) + 0.5)
    n_gold = max(0, min(len(gold), target - mapped_gold))
    return sorted(regular + gold[:n_gold], key=_order_key), len(gold) - n_gold


def _exists(store: DatasetStore, key: str) -> bool:
    local = store.local_path(key)
    return os.path.exists(local) if local is not None else store.exists(key)


def _image_problems(store: DatasetStore, item: dict[str, Any], check: bool, seen: set[str]) -> str | None:
    keys = [item["source_image_key"], *(c["image_key"] for c in item["candidates"])]
    outside = [k for k in keys if not k.startswith("images/")]
    if outside:
        return f"image keys outside the store's images/ folder cannot be served: {outside}"
    if check:
        missing = [k for k in keys if k not in seen and not _exists(store, k)]
        seen.update(k for k in keys if k not in missing)
        if missing:
            return f"images missing from the store: {missing}"
    return None


def _payload(
    item: dict[str, Any],
    refs: Callable[[str], str],
    prediction: Prediction | None,
    outlines: Mapping[str, str],
) -> dict[str, Any]:
    task: dict[str, Any] = {"data": item_data(item, refs, outlines.get(item["source_id"]))}
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
    reconcile_first: bool = False,
) -> PushReport:
    """Push items not yet in the project as tasks, in bulk chunks; idempotent by item id.

    ``item_ids`` restricts (and forces) what is pushed; otherwise every item is considered and
    gold items are mixed in at ``config.gold_share`` of the pushed tasks (the rest are held back
    for later pushes). ``predictions`` (item id -> :class:`Prediction`) become pre-annotations;
    with ``config.prefill_known_answers`` the known answers of gold items do (those are then not
    scored as gold). ``reconcile_first`` lists the project's tasks before anything is pushed.
    Raises :class:`LabelStudioUnavailable` when the server stays unreachable; every chunk imported
    before that is recorded, so a re-run resumes.
    """
    wanted = None if item_ids is None else list(dict.fromkeys(item_ids))
    with http_client(config) as http:
        try:
            project = project_for(store, config, client)
            return _push(store, config, http, project, wanted, predictions or {}, reconcile_first)
        except ProjectGone:
            forget_project(store, config)
            project = ensure_project(store, config, client)
            return _push(store, config, http, project, wanted, predictions or {}, reconcile_first)


def _push(
    store: DatasetStore,
    config: LabelStudioConfig,
    http: httpx.Client,
    project: Project,
    wanted: list[str] | None,
    preds: Mapping[str, Prediction],
    reconcile_first: bool,
) -> PushReport:
    report = PushReport(project_id=project.id)
    mapped = _mapped(store, project, ["item_id", "gold"])
    check = reconcile_first or _unrecorded(store, project, mapped) > 0
    if not check and mapped.num_rows == 0 and not project.created:
        # a project the map knows nothing of: adopt what it already holds (one request)
        try:
            got = get_json(config, http, f"/api/projects/{project.id}/", None, "get project")
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code == 404:
                raise ProjectGone(f"Label Studio has no project {project.id}") from None
            raise
        check = (got.get("task_number") or 0) > 0
    if check:
        report.recovered, report.duplicates_in_project = reconcile(store, config, project, http)
        mapped = _mapped(store, project, ["item_id", "gold"])

    # the backlog: one anti-join of the items' ids and gold flags against this project's mapped ids
    rejects: list[Reject] = []
    if wanted is not None:
        candidates = store.read_arrow("items", ["item_id", "gold"], keys=wanted)
        present = set(candidates.column("item_id").to_pylist())
        rejects += [
            Reject(STAGE, i, "unknown_item", "no such item in the items table")
            for i in wanted
            if i not in present
        ]
    else:
        candidates = store.read_arrow("items", ["item_id", "gold"])
    report.considered = candidates.num_rows
    todo = candidates.join(
        mapped.select(["item_id"]), keys="item_id", join_type="left anti", use_threads=False
    )
    report.already_pushed = report.considered - todo.num_rows
    all_gold = wanted is None and candidates.num_rows > 0 and bool(pc.all(candidates.column("gold")).as_py())
    selected, report.gold_held_back = _select(todo, mapped, config, wanted is not None, all_gold)
    if rejects:
        record_rejects(store, rejects)
        report.rejected += len(rejects)
    if not selected:
        return report

    root = document_root(store, config) if project.storage.startswith("local:") else None
    refs = image_refs(store, project.storage, root)
    seen: set[str] = set()
    for chunk_ids in _chunks(selected, config.chunk_size):
        rows = {r["item_id"]: r for r in store.read("items", ITEM_COLUMNS, keys=chunk_ids)}
        ready, bad = [], []
        for iid in chunk_ids:
            item = rows[iid]
            problem = _image_problems(store, item, config.check_images, seen)
            if problem:
                bad.append(Reject(STAGE, iid, "image_unavailable", problem, item["source_id"]))
            else:
                ready.append(item)
        if bad:
            record_rejects(store, bad)
            report.rejected += len(bad)
        if ready:
            outlines, drawn = outline_keys(
                store, ready, config.check_images
            )  # what the page shows as each source
            report.outlines_drawn += drawn
            _write_journal(store, project, [i["item_id"] for i in ready])  # before the import: module docs
            _import_chunk(store, config, http, project, refs, ready, preds, report, outlines)
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
    http: httpx.Client,
    project: Project,
    refs: Callable[[str], str],
    chunk: list[dict],
    preds: Mapping[str, Prediction],
    report: PushReport,
    outlines: Mapping[str, str],
) -> None:
    """Import one chunk. A transient failure is never blindly retried: first reconcile with what the
    server actually committed, then import only the rest."""
    todo = chunk
    for attempt in range(config.retry_attempts):
        if attempt:  # after a reconcile: only what the server does not hold yet
            done = set(
                _mapped(store, project, ["item_id"], [i["item_id"] for i in chunk]).column(0).to_pylist()
            )
            todo = [i for i in chunk if i["item_id"] not in done]
        if not todo:
            return
        pending = [(i, _prediction_for(i, preds, config)) for i in todo]
        payload = [_payload(i, refs, p, outlines) for i, p in pending]
        try:
            ids = _import(config, http, project.id, payload)
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
                recovered, dups = reconcile(store, config, project, http)
            except LabelStudioUnavailable:
                if attempt == config.retry_attempts - 1:
                    raise
                continue
            report.recovered += recovered
            report.duplicates_in_project = sorted(set(report.duplicates_in_project) | set(dups))
            continue
        if len(ids) != len(todo):
            # cannot pair ids with items safely: ask the server which task holds which item
            recovered, _ = reconcile(store, config, project, http)
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
        report.pushed += len(rows)
        report.gold_pushed += sum(1 for r in rows if r["gold"])
        report.chunks += 1
        return
    raise LabelStudioUnavailable(
        f"import into project {project.id} at {config.url} kept failing after "
        f"{config.retry_attempts} attempts; progress is saved, re-run to resume"
    )


def _import(config: LabelStudioConfig, http: httpx.Client, project_id: int, payload: list[dict]) -> list[int]:
    """One bulk import, one attempt (a failure is reconciled before any retry); the new task ids.

    Plain HTTP with the JSON written once: the SDK's ``projects.import_tasks`` walks every value of
    the payload through its encoder first (~40 ms per thousand tasks)."""
    r = http.post(
        f"/api/projects/{project_id}/import",
        params={"return_task_ids": "true"},
        content=json.dumps(payload, separators=(",", ":")).encode("utf-8"),
        headers={"Content-Type": "application/json"},
    )
    if r.status_code == 404:
        raise ProjectGone(f"Label Studio has no project {project_id}")
    if r.status_code in (429, 502, 503, 504):
        raise ApiError(status_code=r.status_code, body=r.text[:500])
    if r.status_code >= 500:
        raise LabelStudioUnavailable(_server_failure(config, project_id, r))
    if r.status_code == 401:
        raise LabelStudioConfigError(
            f"Label Studio at {config.url} rejected the token (HTTP 401) during import; check "
            "LABEL_STUDIO_API_KEY (legacy tokens must be enabled on the server)"
        )
    r.raise_for_status()
    return list(r.json().get("task_ids") or [])


def _server_failure(config: LabelStudioConfig, project_id: int, r: httpx.Response) -> str:
    """One line for an import the server failed on its side (HTTP 500): most often its database is down
    (PostgreSQL stopped), which Label Studio answers as an error, not as unavailability."""
    try:
        detail = str(r.json().get("detail") or "")
    except ValueError:
        detail = r.text
    detail = " ".join(detail.split())[:200] or "no detail"
    return (
        f"import into project {project_id} at {config.url} failed on the server (HTTP {r.status_code}: "
        f"{detail}); its database may be down or unreachable. Progress is saved: restore the server "
        "and its database, then re-run to resume (no task is imported twice)"
    )
