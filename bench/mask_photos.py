"""Masks on real photos: scikit-image's bundled photographs, before (the plain-background model only)
vs after (aescot.masks' auto backend: plain, then GrabCut), and the cost of the change.

    nice -n 10 python bench/mask_photos.py [--out DIR] [--sizes 1000 16000] [--render-side 192]

1. Every photo in the scikit-image wheel (exported by a small venv, tests/masks/photos.py; nothing is
   downloaded), normalised as ingest does and masked by both: accepted or rejected, the reason, the
   coverage, and for the photos labelled by eye as "one clear main object" the IoU of the mask's
   bounding box with the labelled box (>= 0.5 counts as covering the object). Overlays of the "after"
   masks go to ``--out`` (default: a temp dir) with ``table.tsv``.
2. Cost: both masking N rendered product shots (aescot.samples, plain backdrops: where both use the
   plain model; each shot masked by both in turn, so they share the machine's noise) and the photos
   (where "after" adds GrabCut); the ratio after/before, measured in the same run. These machines
   are noisy: read the ratios, not the seconds.

"Before" is ``aescot/mask.py`` as of commit BASELINE (the release before aescot/masks), loaded from git.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the photo corpus and its labels live in tests/

from aescot.mask import MaskConfig, MaskError, product_mask
from aescot.samples import render_product_shot
from tests.masks.photos import (
    MAIN_OBJECT,
    NO_MAIN_OBJECT,
    export_photos,
    label,
    mask_photo,
    write_overlays,
)

BASELINE = "0fef6fe"  # "Store: stage tables in Lance ...": aescot/mask.py before the masks package


def baseline_module(folder: Path) -> types.ModuleType:
    src = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{BASELINE}:aescot/mask.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = folder / "aescot_mask_before.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("aescot_mask_before", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def counts(rows) -> dict[str, int]:
    main = [r for r in rows if r.name in MAIN_OBJECT]
    none = [r for r in rows if r.name in NO_MAIN_OBJECT]
    return {
        "photos": len(rows),
        "accepted": sum(r.accepted for r in rows),
        "rejected for the mask": sum(not r.accepted and r.reason.startswith("mask_") for r in rows),
        f"main object covered (of {len(main)})": sum((r.box_iou or 0) >= 0.5 for r in main),
        f"no main object rejected (of {len(none)})": sum(not r.accepted for r in none),
    }


def timed(fn, items, rejected: tuple[type[Exception], ...]) -> float:
    t0 = time.perf_counter()
    for img in items:
        with contextlib.suppress(*rejected):  # a rejection costs what it costs
            fn(img)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="overlays and table.tsv of the 'after' masks")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 16000], help="rendered shots to time")
    ap.add_argument("--render-side", type=int, default=192)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="aescot-mask-photos-"))
    before = baseline_module(work)
    rejected = (before.MaskError, MaskError)
    version, paths = export_photos(work / "photos")
    old_cfg = before.MaskConfig()

    def old(img, _cfg):
        try:
            m = before.product_mask(img, old_cfg)
        except before.MaskError as exc:
            raise MaskError(exc.reason, exc.detail) from exc
        m.notes = []
        return m

    rows_before = [mask_photo(p, segment=old) for p in paths]
    rows_after = [mask_photo(p, MaskConfig()) for p in paths]
    out = args.out or work / "overlays"
    write_overlays(rows_after, out)

    print(f"scikit-image {version}: {len(paths)} bundled photos (overlays: {out})\n")
    print(f"{'photo':22s} {'label':15s} {'before':28s} {'after':28s} {'cov':>6s} {'boxIoU':>6s}")
    for b, a in zip(rows_before, rows_after, strict=True):

        def cell(r):
            return ("ok " if r.accepted else "rej ") + r.reason

        cov = "" if a.coverage is None else f"{a.coverage:.3f}"
        iou = "" if a.box_iou is None else f"{a.box_iou:.2f}"
        print(f"{a.name:22s} {label(a.name):15s} {cell(b):28s} {cell(a):28s} {cov:>6s} {iou:>6s}")
    cb, ca = counts(rows_before), counts(rows_after)
    print(f"\n{'':44s} {'before':>8s} {'after':>8s}")
    for k in cb:
        print(f"{k:44s} {cb[k]:8d} {ca[k]:8d}")

    print("\ncost (after / before, same run)")
    photos = [r.image for r in rows_after if r.image is not None]
    tb = timed(lambda i: before.product_mask(i, old_cfg), photos, rejected)
    ta = timed(product_mask, photos, rejected)
    print(f"  {len(photos)} photos: before {tb:.2f} s, after {ta:.2f} s, ratio {ta / tb:.2f}")
    for n in args.sizes:
        tb = ta = 0.0
        for seed in range(n):  # rendered one at a time (16k shots held at once are ~1.8 GB), timed in turn
            shot = [render_product_shot(seed, args.render_side)[0]]
            tb += timed(lambda i: before.product_mask(i, old_cfg), shot, rejected)
            ta += timed(product_mask, shot, rejected)
        print(
            f"  {n} renders at {args.render_side}px: before {tb:.2f} s, after {ta:.2f} s, ratio {ta / tb:.2f}"
        )


if __name__ == "__main__":
    main()
