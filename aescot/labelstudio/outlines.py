"""The source photo as the labeling page shows it: with a thin outline of its product mask, so an
annotator sees what "the product" was taken to be (what generation kept, and what the candidates are
judged against).

At push, each new item's source gets an outlined copy (:func:`aescot.masks.outline.outlined`: the mask's
edge drawn in magenta, every other pixel the photo's own), stored content-addressed in the dataset's
images so Label Studio serves it like any image; task data carries its reference under
:data:`~aescot.labelstudio.labeling.OUTLINE_KEY`. A source is drawn once: ``source_outlines`` records
(source id -> photo, mask, drawing style, outlined copy), and a later push, of the same item or of
another item of that source, reads the record instead of drawing again. A source without a mask (no
``sources`` row, or its mask file is gone) is shown as the plain photo, never as a broken image.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image

from aescot.labelstudio.labeling import SOURCE_WIDTH_PX
from aescot.masks.outline import OUTLINE_RGB, edge
from aescot.store import DatasetStore, TableSpec, register_table
from aescot.timeutil import now_iso

log = logging.getLogger(__name__)

OUTLINE_CSS_PX = 2
"""How thick the outline looks on the labeling page (the source is shown :data:`SOURCE_WIDTH_PX` wide)."""

STYLE = f"outline-v1:rgb={bytes(OUTLINE_RGB).hex()}:css={OUTLINE_CSS_PX}@{SOURCE_WIDTH_PX}"
"""What a drawn copy depends on besides its photo and mask: a change draws every source again."""

OUTLINES_TABLE = register_table(
    TableSpec(
        "source_outlines",
        ("source_id",),
        schema=pa.schema(
            [
                pa.field("source_id", pa.string()),
                pa.field("image_key", pa.string()),  # the photo drawn on
                pa.field("mask_key", pa.string()),
                pa.field("style", pa.string()),
                pa.field("outline_key", pa.string()),  # null: the mask has no edge, the plain photo is shown
                pa.field("made_at", pa.string()),
            ]
        ),
    )
)


def outline_width(photo_width: int) -> int:
    """Outline thickness in photo pixels that is :data:`OUTLINE_CSS_PX` on the page."""
    return max(1, round(OUTLINE_CSS_PX * photo_width / SOURCE_WIDTH_PX))


def draw(photo: Image.Image, mask: Image.Image) -> Image.Image | None:
    """``photo`` with the mask's edge drawn (an RGBA photo keeps its transparency); None when the mask
    has no edge (empty)."""
    if mask.size != photo.size:
        mask = mask.resize(photo.size, Image.Resampling.NEAREST)
    line = edge(mask, outline_width(photo.width))
    if not line.any():
        return None
    keep_alpha = photo.mode in ("RGBA", "LA", "PA") or "transparency" in photo.info
    arr = np.asarray(photo.convert("RGBA" if keep_alpha else "RGB")).copy()
    arr[line] = (*OUTLINE_RGB, 255) if keep_alpha else OUTLINE_RGB
    return Image.fromarray(arr)


def _render(store: DatasetStore, image_key: str, mask_key: str) -> str | None:
    with (
        Image.open(io.BytesIO(store.read_bytes(image_key))) as photo,
        Image.open(io.BytesIO(store.read_bytes(mask_key))) as mask,
    ):
        out = draw(photo, mask)
    if out is None:
        return None
    buf = io.BytesIO()
    out.save(buf, format="PNG", compress_level=1)  # written once, read by a few browsers: speed over size
    return store.put_image(buf.getvalue())[1]


def outline_keys(
    store: DatasetStore, items: Iterable[dict[str, Any]], check: bool = True
) -> tuple[dict[str, str], int]:
    """For ``items`` (``source_id``, ``source_image_key``): source id -> key of its outlined copy (sources
    without a usable mask are left out), and how many copies were drawn now.

    Two keyed reads (the sources' masks, the recorded copies); drawing only for sources not recorded
    with this photo, mask and :data:`STYLE` (or, with ``check``, whose recorded copy is gone from the
    store), in threads (decoding and encoding release the GIL)."""
    photo_of = {i["source_id"]: i["source_image_key"] for i in items}
    if not photo_of:
        return {}, 0
    ids = sorted(photo_of)
    masks = {
        r["source_id"]: r["mask_key"]
        for r in store.read("sources", ["source_id", "mask_key"], keys=ids)
        if r["mask_key"]
    }
    if not masks:
        return {}, 0
    known = {r["source_id"]: r for r in store.read(OUTLINES_TABLE.name, keys=sorted(masks))}
    out: dict[str, str] = {}
    todo = []
    for sid, mask_key in masks.items():
        rec = known.get(sid)
        same = rec and (rec["image_key"], rec["mask_key"], rec["style"]) == (photo_of[sid], mask_key, STYLE)
        if same and not (check and rec["outline_key"] and not store.exists(rec["outline_key"])):
            if rec["outline_key"]:
                out[sid] = rec["outline_key"]
        else:
            todo.append(sid)
    if not todo:
        return out, 0

    def one(sid: str) -> tuple[str, str | None, bool]:
        try:
            return sid, _render(store, photo_of[sid], masks[sid]), True
        except (FileNotFoundError, OSError, ValueError) as exc:  # a mask or photo gone or unreadable
            log.warning("source %s: no outline drawn (%s); the plain photo is shown", sid, exc)
            return sid, None, False

    with ThreadPoolExecutor(max_workers=min(8, len(todo))) as pool:
        drawn = list(pool.map(one, todo))
    now = now_iso()
    rows = []
    for sid, key, ok in drawn:
        if key:
            out[sid] = key
        if ok:  # a failed drawing is not recorded: the next push tries again
            rows.append(
                {
                    "source_id": sid,
                    "image_key": photo_of[sid],
                    "mask_key": masks[sid],
                    "style": STYLE,
                    "outline_key": key,
                    "made_at": now,
                }
            )
    store.upsert(OUTLINES_TABLE.name, rows)
    return out, len(rows)
