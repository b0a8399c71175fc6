"""The rows of one batch of exported items, read by key from the (pinned) store with only the columns
the export rows and the card are built from."""

from __future__ import annotations

from dataclasses import dataclass

from aescot.store import DatasetStore

LABEL_COLUMNS = [
    "item_id",
    "acceptable",
    "best",
    "dimensions",
    "scores",
    "agreement",
    "n_annotations",
    "annotation_ids",
]
ITEM_COLUMNS = ["item_id", "source_id", "source_image_key", "candidates", "gold"]
SELECTION_COLUMNS = [
    "item_id",
    "kept",
    "reason",
    "consistency",
    "min_consistency",
    "rationale_id",
    "teacher_model",
    "prompt_version",
]
ANNOTATION_COLUMNS = ["annotation_id", "status", "scores", "updated_at"]


@dataclass
class BatchRows:
    """The rows of one batch of items, read by key with only the columns the rows are built from."""

    labels: dict[str, dict]
    items: dict[str, dict]
    selections: dict[str, dict]
    rationales: dict[str, dict]
    annotations: dict[str, dict]


def _by(rows: list[dict], key: str) -> dict[str, dict]:
    return {r[key]: r for r in rows}


def read_batch(store: DatasetStore, batch: list[str], want_scores: bool) -> BatchRows:
    labels = _by(store.read("labels", LABEL_COLUMNS, keys=batch), "item_id")
    items = _by(store.read("items", ITEM_COLUMNS, keys=batch), "item_id")
    selections = _by(store.read("selections", SELECTION_COLUMNS, keys=batch), "item_id")
    wanted_r = [s["rationale_id"] for s in selections.values() if s["kept"] and s["rationale_id"]]
    rationales = _by(
        store.read("rationales", ["rationale_id", "item_id", "text"], keys=wanted_r), "rationale_id"
    )
    annotations: dict[str, dict] = {}
    if want_scores:  # only the rows of this batch's labels
        wanted_a = [a for label in labels.values() for a in label["annotation_ids"]]
        annotations = _by(store.read("annotations", ANNOTATION_COLUMNS, keys=wanted_a), "annotation_id")
    return BatchRows(labels, items, selections, rationales, annotations)
