"""Invalid annotations: submitted answers that break the rules the labeling page cannot enforce
(the best not among the acceptable, "none acceptable" with acceptable candidates, an answer sent
through the API without a verdict or a defect).

Each is kept whole (the exported annotation verbatim, its reasons, the raw pull it came in) in the
``invalid_annotations`` table, then *sent back*: the annotation is deleted from its task in Label
Studio, so the task counts as unlabelled again and the label stream offers it to the annotators
(the one who made the mistake included). The record is written before the delete; a delete that
fails is retried by the next collect.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.compute as pc

from aescot.store import DatasetStore, TableSpec, register_table
from aescot.timeutil import now_iso

log = logging.getLogger(__name__)

TABLE = register_table(TableSpec("invalid_annotations", ("annotation_id",), "invalid_annotation"))


def invalid_record(
    ann: dict[str, Any],
    *,
    project_uid: str,
    task_id: int,
    item_id: str,
    annotator: str,
    problems: list[str],
    snapshot_key: str,
    annotated_at: str,
) -> dict[str, Any]:
    """The ``invalid_annotation`` row of one exported annotation (not yet sent back)."""
    return {
        "annotation_id": f"labelstudio:{ann['id']}",
        "project_uid": project_uid,
        "task_id": task_id,
        "item_id": item_id,
        "annotator": annotator,
        "problems": problems,
        "annotation_json": json.dumps(ann, sort_keys=True, default=str),
        "snapshot_key": snapshot_key,
        "annotated_at": annotated_at,
        "recorded_at": now_iso(),
        "requeued": False,
        "requeue_error": None,
    }


def pending(store: DatasetStore, project_uid: str) -> list[dict[str, Any]]:
    """Recorded invalid annotations of this project not yet sent back (only those rows are read)."""
    where = (pc.field("project_uid") == project_uid) & (pc.field("requeued") == pa.scalar(False))
    return store.read(TABLE.name, where=where)


def send_back(store: DatasetStore, http: httpx.Client, rows: list[dict[str, Any]]) -> int:
    """Delete each recorded annotation from Label Studio (its task goes back to the queue); returns
    how many went back. Already gone (HTTP 404) counts as sent back."""
    done, updates = 0, []
    for row in rows:
        ls_id = row["annotation_id"].removeprefix("labelstudio:")
        try:
            r = http.delete(f"/api/annotations/{ls_id}")
            if r.status_code not in (200, 204, 404):
                r.raise_for_status()
            updates.append({**row, "requeued": True, "requeue_error": None})
            done += 1
        except httpx.HTTPError as exc:
            log.warning("could not send invalid annotation %s back: %s", row["annotation_id"], exc)
            updates.append({**row, "requeue_error": f"{type(exc).__name__}: {exc}"[:500]})
    store.upsert(TABLE.name, updates)
    return done


def counts(store: DatasetStore) -> tuple[int, int]:
    """(invalid annotations recorded, of which sent back to the queue): one projected column."""
    requeued = store.column(TABLE.name, "requeued")
    return len(requeued), int(pc.sum(requeued).as_py() or 0)
