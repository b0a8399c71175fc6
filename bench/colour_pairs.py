"""Near-duplicate *sources*: does a grey perceptual hash tell a recoloured product from a copy?

Labelled pairs from rendered product shots (procedural, with their product masks):

* copies (one source, must be caught): JPEG q75, down/up-scaling to 70 %, a 2 % and a 4 % border crop;
* recolours (another source, must not be caught): the product's hue turned by 90 and by 180 degrees
  inside its mask, only for products with a saturated body (a grey product has no other colour).

For each decision it prints precision and recall on the copies, and how many recolours it merges:
today's ingest rule (256-bit pHash within 12 bits) and that rule plus ``imagehash.colorhash`` (hue
histogram) within T bits. Measurement for issue 15 item 7; ingest is unchanged.

    .venv/bin/python bench/colour_pairs.py [--n 60]
"""

from __future__ import annotations

import argparse
import io

import imagehash
import numpy as np
from PIL import Image

from aescot.ingest import IngestConfig
from aescot.neardup import get_hasher, hamming
from aescot.samples import render_product_shot


def _recolour(img: Image.Image, mask: Image.Image, shift: int) -> Image.Image:
    hsv = np.array(img.convert("HSV"))
    inside = np.asarray(mask) > 127
    hsv[..., 0][inside] = (hsv[..., 0][inside].astype(int) + shift) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


def _jpeg(img: Image.Image) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=75)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _crop(img: Image.Image, frac: float) -> Image.Image:
    w, h = img.size
    return img.crop((int(w * frac), int(h * frac), int(w * (1 - frac)), int(h * (1 - frac)))).resize((w, h))


COPIES = {
    "jpeg q75": _jpeg,
    "resize 70%": lambda im: im.resize((im.width * 7 // 10, im.height * 7 // 10)).resize(im.size),
    "crop 2%": lambda im: _crop(im, 0.02),
    "crop 4%": lambda im: _crop(im, 0.04),
}


def _saturated(img: Image.Image, mask: Image.Image) -> bool:
    sat = np.array(img.convert("HSV"))[..., 1][np.asarray(mask) > 127]
    return sat.size > 0 and float(np.median(sat)) > 60


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=60, help="rendered products")
    n = ap.parse_args().n
    cfg = IngestConfig()
    phash = get_hasher(cfg.hash_method, cfg.hash_size)

    def colour(im: Image.Image) -> str:
        return str(imagehash.colorhash(im, binbits=4))

    copies: list[tuple[str, int, int]] = []  # (kind, phash bits, colour bits)
    recolours: list[tuple[str, int, int]] = []
    for seed in range(n):
        img, mask = render_product_shot(seed, 256)
        base_p, base_c = phash.hash(img), colour(img)
        for kind, make in COPIES.items():
            other = make(img)
            copies.append((kind, hamming(base_p, phash.hash(other)), hamming(base_c, colour(other))))
        if _saturated(img, mask):
            for shift in (64, 128):
                other = _recolour(img, mask, shift)
                recolours.append(
                    (
                        f"hue {shift * 360 // 256}",
                        hamming(base_p, phash.hash(other)),
                        hamming(base_c, colour(other)),
                    )
                )

    radius = cfg.near_duplicate_distance
    print(
        f"{n} products: {len(copies)} copy pairs, {len(recolours)} recolour pairs (saturated products only)"
    )
    print(f"\n{'pair kind':14s} {'pHash bits min/median/max':>27s} {'colour bits min/median/max':>28s}")
    for kind in [*COPIES, "hue 90", "hue 180"]:
        rows = [r for r in copies + recolours if r[0] == kind]
        p, c = [r[1] for r in rows], [r[2] for r in rows]
        print(
            f"{kind:14s} {min(p):>9d}/{int(np.median(p)):>3d}/{max(p):<13d} {min(c):>9d}/{int(np.median(c)):>3d}/{max(c)}"
        )

    print(f"\n{'decision':34s} {'copies caught':>14s} {'recolours merged':>17s} {'precision':>10s}")
    rules = [(f"pHash <= {radius} (today)", None)] + [
        (f"pHash <= {radius} and colour <= {t}", t) for t in (2, 4, 6)
    ]
    for name, t in rules:

        def same(r: tuple[str, int, int], t: int | None = t) -> bool:
            return r[1] <= radius and (t is None or r[2] <= t)

        caught = sum(same(r) for r in copies)
        merged = sum(same(r) for r in recolours)
        precision = caught / (caught + merged) if caught + merged else 1.0
        print(
            f"{name:34s} {caught:>6d}/{len(copies):<7d} {merged:>8d}/{len(recolours):<8d} {precision:>10.3f}"
        )
    print(f"\nrecall on copies by kind (pHash <= {radius}):")
    for kind in COPIES:
        rows = [r for r in copies if r[0] == kind]
        print(f"  {kind:12s} {sum(r[1] <= radius for r in rows)}/{len(rows)}")


if __name__ == "__main__":
    main()
