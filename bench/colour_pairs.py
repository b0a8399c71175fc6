"""Colour-aware near-duplicates: the shipped decisions measured on labelled pairs, and the default chosen.

A grey perceptual hash cannot tell the same product in another colour (another source) from a
copy (one source). Ingest and candidate dedupe therefore call a pair near-duplicate when the grey
pHash is within its threshold *and* the colour signatures (:func:`aescot.neardup.colour_hash`, a
saturation-weighted soft hue histogram) are at most the colour threshold apart, in percent
(:func:`aescot.neardup.colour_match`). This measures exactly those functions, with each stage's
own hash settings, and beside them the library's ``imagehash.colorhash`` (4 bits per bin, Hamming
bits) in the same decision: the candidate the shipped signature was measured against.

Labelled pairs from rendered product shots (procedural, with their product masks):

* copies (one source: must be merged): JPEG q75, down/up-scaling to 70 %, a 2 % and a 4 % border crop;
* recolours (another source: must be kept): the product's hue turned by 90 and by 180 degrees
  inside its mask, for products with a saturated body only (a grey product has no other colour);
* distinct products (must be kept): every pair of two different rendered products.

For each decision (ingest: 256-bit pHash within ``IngestConfig.near_duplicate_distance``; dedupe:
``DedupeConfig`` 64-bit pHash within its ``threshold``), each signature and colour threshold T it
prints precision and recall for both kinds of pair:

* copies, positive = merged: recall = copies merged / copies, precision = copies merged / all pairs
  merged (copies + recolours + distinct);
* recolours, positive = kept apart: recall = recolours kept / recolours, precision = recolours kept
  / (recolours kept + copies kept apart, i.e. missed).

For the shipped signature the run's choice is the T (every whole percent 0-40) with the fewest errors (copies missed +
recolours and distinct products merged) summed over both image sizes (``--sizes``, default 256 and
128 px); on a tie, the middle of the tied thresholds (the widest margin both ways), rounded down. The
shipped defaults (``IngestConfig.colour_distance``, ``DedupeConfig.colour_threshold``) are this
choice; the run says whether they still are. Then, for the shipped ingest rule, what a wider grey radius would do for crops
(the 256-bit pHash does not reach them within 12 bits), and what the colour signatures cost beside
the pHash at two image sizes (ratios in the same run).

    .venv/bin/python bench/colour_pairs.py [--n 120] [--sizes 256,128]
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable
from dataclasses import dataclass

import imagehash
import numpy as np
from PIL import Image

from aescot.dedupe.hashing import DedupeConfig
from aescot.ingest import IngestConfig
from aescot.neardup import colour_difference, colour_hash, colour_match, get_hasher, hamming
from aescot.samples import render_product_shot

THRESHOLDS = (-1, 5, 10, 12, 14, 17, 18, 20, 22, 25, 30)  # percent; -1: the colour check off (grey alone)
LIB_THRESHOLDS = (2, 4, 5, 6)  # imagehash.colorhash, Hamming bits
CHOICES = range(41)  # every percent the default is chosen among (the table prints THRESHOLDS)


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


COPIES: dict[str, Callable[[Image.Image], Image.Image]] = {
    "jpeg q75": _jpeg,
    "resize 70%": lambda im: im.resize((im.width * 7 // 10, im.height * 7 // 10)).resize(im.size),
    "crop 2%": lambda im: _crop(im, 0.02),
    "crop 4%": lambda im: _crop(im, 0.04),
}
RECOLOURS = {"hue 90": 64, "hue 180": 128}


def _saturated(img: Image.Image, mask: Image.Image) -> bool:
    sat = np.array(img.convert("HSV"))[..., 1][np.asarray(mask) > 127]
    return sat.size > 0 and float(np.median(sat)) > 60


def _lib(img: Image.Image) -> str:
    return str(imagehash.colorhash(img.convert("RGB"), binbits=4))


@dataclass(frozen=True)
class Pair:
    label: str  # copy | recolour | distinct
    kind: str  # the perturbation, or "distinct"
    grey: int  # grey pHash bits apart
    a: str  # the shipped colour signatures
    b: str
    lib: int  # imagehash.colorhash bits apart


@dataclass
class Tally:
    copies: int
    copies_merged: int
    recolours: int
    recolours_merged: int
    distinct: int
    distinct_merged: int

    @property
    def errors(self) -> int:
        return self.copies - self.copies_merged + self.recolours_merged + self.distinct_merged


def _tally(pairs: list[Pair], radius: int, t: int, lib: bool = False) -> Tally:
    def merged(p: Pair) -> bool:  # the shipped decision: grey within radius and colours match
        if lib:
            return p.grey <= radius and p.lib <= t
        return p.grey <= radius and colour_match(p.a, p.b, t)

    by = {k: [p for p in pairs if p.label == k] for k in ("copy", "recolour", "distinct")}
    return Tally(
        len(by["copy"]),
        sum(map(merged, by["copy"])),
        len(by["recolour"]),
        sum(map(merged, by["recolour"])),
        len(by["distinct"]),
        sum(map(merged, by["distinct"])),
    )


def _ratio(a: int, b: int) -> str:
    return f"{a / b:.3f}" if b else "n/a"


def _pairs(n: int, hash_size: int, size: int) -> list[Pair]:
    phash = get_hasher("phash", hash_size)
    pairs: list[Pair] = []
    bases: list[tuple[str, str, str]] = []
    for seed in range(n):
        img, mask = render_product_shot(seed, size)
        base = (phash.hash(img), colour_hash(img), _lib(img))
        bases.append(base)
        others = [("copy", kind, make(img)) for kind, make in COPIES.items()]
        if _saturated(img, mask):
            others += [("recolour", kind, _recolour(img, mask, s)) for kind, s in RECOLOURS.items()]
        for label, kind, other in others:
            grey = hamming(base[0], phash.hash(other))
            pairs.append(Pair(label, kind, grey, base[1], colour_hash(other), hamming(base[2], _lib(other))))
    for i in range(n):
        for j in range(i + 1, n):
            (gi, ci, li), (gj, cj, lj) = bases[i], bases[j]
            pairs.append(Pair("distinct", "distinct", hamming(gi, gj), ci, cj, hamming(li, lj)))
    return pairs


def _row(name: str, r: Tally) -> str:
    merged = r.copies_merged + r.recolours_merged + r.distinct_merged
    kept = r.recolours - r.recolours_merged
    missed = r.copies - r.copies_merged
    return (
        f"{name:>14s} | {r.copies_merged:>6d}/{r.copies:<6d} {_ratio(r.copies_merged, merged):>9s} "
        f"{_ratio(r.copies_merged, r.copies):>7s} | {kept:>7d}/{r.recolours:<6d} "
        f"{_ratio(kept, kept + missed):>9s} {_ratio(kept, r.recolours):>7s} | "
        f"{r.distinct_merged:>7d}/{r.distinct:<7d} | {r.errors}"
    )


def _decision(title: str, pairs: list[Pair], radius: int, shipped: int) -> dict[int, int]:
    t0 = _tally(pairs, radius, -1)
    print(f"\n== {title}: grey pHash within {radius} bits ==")
    print(
        f"{t0.copies} copy pairs, {t0.recolours} recolour pairs (saturated products), "
        f"{t0.distinct} distinct-product pairs"
    )
    print(
        f"{'pair kind':12s} {'grey bits min/med/max':>22s} {'colour % min/med/max':>20s} "
        f"{'colorhash bits':>15s} {'grey-near':>10s}"
    )
    for kind in [*COPIES, *RECOLOURS, "distinct"]:
        rows = [p for p in pairs if p.kind == kind]
        g = [p.grey for p in rows]
        c = [colour_difference(p.a, p.b) or 0 for p in rows]
        lb = [p.lib for p in rows]
        print(
            f"{kind:12s} {min(g):>10d}/{int(np.median(g)):>3d}/{max(g):<8d}"
            f"{min(c):>10d}/{int(np.median(c)):>3d}/{max(c):<6d}"
            f"{min(lb):>6d}/{int(np.median(lb)):>3d}/{max(lb):<6d}"
            f"{sum(x <= radius for x in g):>5d}/{len(rows)}"
        )
    print(
        f"\n{'colour T':>14s} | {'copies merged':>13s} {'precision':>9s} {'recall':>7s} | "
        f"{'recolours kept':>14s} {'precision':>9s} {'recall':>7s} | {'distinct merged':>15s} | errors"
    )
    for t in THRESHOLDS:
        print(_row("off" if t < 0 else f"{t}%", _tally(pairs, radius, t)))
    errors = {t: _tally(pairs, radius, t).errors for t in CHOICES}
    for t in LIB_THRESHOLDS:
        print(_row(f"colorhash {t}b", _tally(pairs, radius, t, lib=True)))
    grey_only = [p for p in pairs if p.label == "copy" and p.grey <= radius]
    kept_copies = sum(colour_match(p.a, p.b, shipped) for p in grey_only)
    print(
        f"shipped default T = {shipped}%: of the {len(grey_only)} copies the grey rule merges, "
        f"{kept_copies} stay merged"
    )
    return errors


def _spans(ts: list[int]) -> str:
    """``[10, 11, 12, 20]`` as ``10-12%, 20%``."""
    out: list[str] = []
    for t in ts:
        if out and int(out[-1].split("-")[-1]) == t - 1:
            out[-1] = f"{out[-1].split('-')[0]}-{t}"
        else:
            out.append(str(t))
    return ", ".join(f"{x}%" for x in out)


def _choose(title: str, errors: list[dict[int, int]], shipped: int) -> int:
    """The T with the fewest errors summed over the sizes; on a tie, the middle of the tied range."""
    total = {t: sum(e[t] for e in errors) for t in errors[0]}
    fewest = min(total.values())
    tied = [t for t, e in total.items() if e == fewest]
    chosen = tied[(len(tied) - 1) // 2]
    print(
        f"{title}: errors summed over sizes "
        + ", ".join(f"{t}%: {total[t]}" for t in THRESHOLDS if t in total)
        + f"; fewest ({fewest}) at {_spans(tied)}; chosen T = {chosen}%; "
        + f"shipped default T = {shipped}% ({'the same' if chosen == shipped else 'DIFFERS: update it'})"
    )
    return chosen


def _wider(pairs: list[Pair], t: int) -> None:
    print(f"\n== ingest, what a wider grey radius would do (colour T = {t}%) ==")
    print(
        f"{'grey radius':>11s} | "
        + " ".join(f"{k:>11s}" for k in COPIES)
        + " | recolours merged | distinct merged"
    )
    for radius in (12, 24, 32, 48, 64):
        caught = [
            sum(p.grey <= radius and colour_match(p.a, p.b, t) for p in pairs if p.kind == k) for k in COPIES
        ]
        totals = [sum(p.kind == k for p in pairs) for k in COPIES]
        r = _tally(pairs, radius, t)
        print(
            f"{radius:>11d} | "
            + " ".join(f"{c:>5d}/{n:<5d}" for c, n in zip(caught, totals))
            + f" | {r.recolours_merged:>7d}/{r.recolours:<8d} | {r.distinct_merged:>6d}/{r.distinct}"
        )


def _cost() -> None:
    phash = get_hasher("phash", 16)
    print("\n== cost per image (median of 15): colour signatures beside the 256-bit pHash ==")
    for side in (256, 2048):
        img = render_product_shot(7, 256)[0].resize((side, side))
        times: dict[str, list[float]] = {"phash": [], "colour": [], "colorhash": []}
        for _ in range(15):
            for name, fn in (("phash", phash.hash), ("colour", colour_hash), ("colorhash", _lib)):
                t = time.perf_counter()
                fn(img)
                times[name].append(time.perf_counter() - t)
        p, c, lb = (float(np.median(times[k])) * 1e3 for k in ("phash", "colour", "colorhash"))
        print(
            f"  {side:>4d} px: pHash {p:6.2f} ms, colour signature {c:6.2f} ms ({c / p:.2f} x pHash), "
            f"colorhash {lb:6.2f} ms ({lb / p:.2f} x pHash)"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=120, help="rendered products")
    ap.add_argument(
        "--sizes", default="256,128", help="sides of the rendered shots (pixels), comma-separated"
    )
    args = ap.parse_args()
    ing, dd = IngestConfig(), DedupeConfig()
    sizes = [int(x) for x in args.sizes.split(",")]
    ingest_errors, dedupe_errors = [], []
    for size in sizes:
        print(f"\n######## {args.n} rendered products at {size} px ########")
        ingest_pairs = _pairs(args.n, ing.hash_size, size)
        ingest_errors.append(
            _decision(
                f"ingest at {size} px (IngestConfig: {ing.hash_size**2}-bit pHash)",
                ingest_pairs,
                ing.near_duplicate_distance,
                ing.colour_distance,
            )
        )
        dedupe_errors.append(
            _decision(
                f"candidate dedupe at {size} px (DedupeConfig: {dd.hash_size**2}-bit pHash)",
                _pairs(args.n, dd.hash_size, size),
                dd.threshold,
                dd.colour_threshold,
            )
        )
        _wider(ingest_pairs, ing.colour_distance)
    print(f"\n== the defaults, measured at {', '.join(f'{s} px' for s in sizes)} ==")
    _choose("ingest colour_distance", ingest_errors, ing.colour_distance)
    _choose("dedupe colour_threshold", dedupe_errors, dd.colour_threshold)
    _cost()


if __name__ == "__main__":
    main()
