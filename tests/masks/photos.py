"""scikit-image's bundled photographs as a mask test corpus, with what a person sees in each.

The photos are the image files inside the scikit-image wheel (``skimage.data.data_dir``; nothing is
downloaded). scikit-image lives in its own small venv (tests/venvs.py), which exports each file's first
frame as a PNG; aescot's own venv then masks them exactly as ingest does (normalise, then
:func:`aescot.mask.product_mask`).

The labels below were written by looking at every photo and at its mask overlay (the artefacts
written by tests/masks/test_photos.py and bench/mask_photos.py). ``MAIN_OBJECT`` holds the photos
with one clear main object and a rough box around it, as fractions of width and height
``(x0, y0, x1, y1)``; a mask "covers the object" when its bounding box overlaps that box with
IoU >= 0.5 (the PASCAL VOC detection criterion: the boxes are by eye, not pixel-exact).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from aescot.images import ImageRejected, normalise_image
from aescot.mask import MaskConfig, MaskError, product_mask
from aescot.masks.outline import overlay
from tests.venvs import cached_venv

SKIMAGE = [["scikit-image==0.26.0", "pillow>=11", "numpy>=2"]]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".gif")

MAIN_OBJECT: dict[str, tuple[tuple[float, float, float, float], str]] = {
    "astronaut": (
        (0.03, 0.03, 0.72, 1.0),
        "a person in a space suit, in front of a flag and a model shuttle",
    ),
    "camera": ((0.0, 0.12, 0.65, 1.0), "a man with a camera on a tripod, on grass under a sky"),
    "cell": (
        (0.58, 0.4, 0.97, 0.74),
        "one round cell with its dark (phase-contrast) halo, on a noisy grey field",
    ),
    "clock_motion": ((0.36, 0.3, 0.7, 0.7), "a motion-blurred clock on grey"),
    "coffee": ((0.12, 0.02, 0.88, 0.93), "a cup and saucer on a wooden table"),
    "color": ((0.02, 0.02, 0.98, 0.98), "a colour-wheel disc on black"),
    "horse": (
        (0.05, 0.02, 0.98, 0.95),
        "a black horse silhouette on white (alpha channel nearly all opaque)",
    ),
    "logo": (
        (0.01, 0.01, 0.99, 0.99),
        "a round logo on white that touches all four edges (alpha all opaque)",
    ),
    "motorcycle_left": ((0.12, 0.15, 0.92, 0.92), "a motorcycle in a cluttered garage"),
    "motorcycle_right": ((0.08, 0.15, 0.87, 0.92), "the same motorcycle, the other stereo view"),
    "phantom": ((0.15, 0.03, 0.85, 0.97), "the Shepp-Logan head phantom on black"),
    "retina": ((0.0, 0.0, 1.0, 1.0), "a fundus photo: the retina disc on black, touching the edges"),
    "rocket": ((0.45, 0.3, 0.55, 1.0), "a lit rocket on its pad at night, between two towers"),
}
# The subject fills the whole frame: there is no background to separate, any mask is partial.
FRAME_FILLING = {"chelsea": "a cat's face filling the frame"}
# No single main object: these must be rejected, and say why.
NO_MAIN_OBJECT = {
    "brick": "texture (a brick wall)",
    "chessboard_GRAY": "pattern filling the frame",
    "chessboard_RGB": "pattern filling the frame",
    "coins": "many objects (24 coins)",
    "grass": "texture",
    "gravel": "texture",
    "hubble_deep_field": "star field (hundreds of galaxies)",
    "ihc": "tissue texture (microscopy)",
    "microaneurysms": "texture (a retina close-up)",
    "moon": "texture (a crater field)",
    "page": "page of text",
    "text": "text on a textured surface",
}
# Below ingest's minimum side (64 px): rejected before any mask is tried.
TOO_SMALL = {"multipage": "10x15 px", "multipage_rgb": "10x10 px", "no_time_for_that_tiny": "14x25 px"}

_EXPORT = """
import json, pathlib, sys
import numpy as np
import skimage, skimage.data, skimage.io
from PIL import Image
out = pathlib.Path(sys.argv[1])
names = []
for p in sorted(pathlib.Path(skimage.data.data_dir).iterdir()):
    if p.suffix.lower() not in json.loads(sys.argv[2]):
        continue
    a = skimage.io.imread(p)
    if a.ndim == 4 or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
        a = a[0]  # a multi-page or animated file: its first frame
    if a.dtype != np.uint8:
        a = np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8)
    Image.fromarray(a).save(out / (p.stem + ".png"))
    names.append(p.stem)
print(json.dumps({"version": skimage.__version__, "photos": names}))
"""


def export_photos(folder: Path) -> tuple[str, list[Path]]:
    """Every photo bundled in the scikit-image wheel as ``folder/<name>.png``; (skimage version, paths)."""
    python = cached_venv("scikit-image", SKIMAGE)
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [str(python), "-c", _EXPORT, str(folder), json.dumps(IMAGE_SUFFIXES)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, f"exporting scikit-image's photos failed:\n{done.stderr[-3000:]}"
    info = json.loads(done.stdout.strip().splitlines()[-1])
    return info["version"], [folder / f"{n}.png" for n in info["photos"]]


@dataclass
class Row:
    name: str
    accepted: bool
    reason: str  # the mask method when accepted, the reject reason otherwise
    coverage: float | None
    box_iou: float | None  # against MAIN_OBJECT's box, when labelled
    detail: str
    mask: Image.Image | None
    image: Image.Image | None


def mask_box_iou(mask: Image.Image, box: tuple[float, float, float, float]) -> float:
    fg = np.asarray(mask) > 127
    h, w = fg.shape
    ys, xs = np.nonzero(fg)
    if not len(ys):
        return 0.0
    a = (xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h)
    ix = max(0.0, min(a[2], box[2]) - max(a[0], box[0]))
    iy = max(0.0, min(a[3], box[3]) - max(a[1], box[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (box[2] - box[0]) * (box[3] - box[1]) - inter
    return inter / union


def mask_photo(path: Path, cfg: MaskConfig | None = None, segment=None) -> Row:
    """Normalise and mask one photo as ingest does; ``segment`` replaces product_mask (the bench's 'before')."""
    try:
        img = normalise_image(path.read_bytes()).image
    except ImageRejected as exc:
        return Row(path.stem, False, exc.reason, None, None, exc.detail, None, None)
    try:
        mask = (segment or product_mask)(img, cfg or MaskConfig())
    except MaskError as exc:
        return Row(path.stem, False, exc.reason, None, None, exc.detail, None, img)
    box = MAIN_OBJECT.get(path.stem)
    iou = mask_box_iou(mask.image, box[0]) if box else None
    return Row(path.stem, True, mask.method, mask.coverage, iou, ",".join(mask.notes), mask.image, img)


def write_overlays(rows: list[Row], folder: Path) -> None:
    """``<name>.png``: the photo dimmed outside its mask with the mask's outline (rejected: dimmed all over),
    plus ``table.tsv`` with every row."""
    folder.mkdir(parents=True, exist_ok=True)
    for r in rows:
        if r.image is not None:
            overlay(r.image, r.mask).save(folder / f"{r.name}.png")
    (folder / "table.tsv").write_text(table(rows))


def label(name: str) -> str:
    if name in MAIN_OBJECT:
        return "main object"
    for group, kind in (
        (FRAME_FILLING, "fills frame"),
        (NO_MAIN_OBJECT, "no main object"),
        (TOO_SMALL, "tiny"),
    ):
        if name in group:
            return kind
    return "unlabelled"


def table(rows: list[Row]) -> str:
    lines = ["photo\tlabel\tresult\treason_or_method\tcoverage\tbox_iou\tdetail"]
    for r in rows:
        cov = "" if r.coverage is None else f"{r.coverage:.3f}"
        iou = "" if r.box_iou is None else f"{r.box_iou:.2f}"
        result = "accepted" if r.accepted else "rejected"
        lines.append(f"{r.name}\t{label(r.name)}\t{result}\t{r.reason}\t{cov}\t{iou}\t{r.detail}")
    return "\n".join(lines) + "\n"
