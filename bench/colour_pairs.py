"""Colour-aware near-duplicates: the shipped decisions measured on labelled pairs, and the default chosen.

A grey perceptual hash cannot tell the same product in another colour (another source) from a
copy (one source). Ingest and candidate dedupe therefore call a pair near-duplicate when the grey
pHash is within its threshold *and* the colour signatures (:func:`aescot.neardup.colour_hash`, a
saturation-weighted soft hue histogram) are at most the colour threshold apart, in percent
(:func:`aescot.neardup.colour_match`). This measures exactly those functions, with each stage's
own hash settings, and beside them the library's ``imagehash.colorhash`` (4 bits per bin, Hamming
bits) in the same decision: the candidate the shipped signature was measured against.

Labelled pairs from rendered product shots (procedural, with their product masks):

* copies (one source: must be merged): JPEG q75, down/up-scaling to 70 %, a 2 % and a 4 % border crop
  (resized back to the original size); shown per kind beside them, outside the totals: 1 %, 3 % and
  6 % crops and a 3 % crop off the top-left corner only;
* recolours (another source: must be kept): the product's hue turned by 90 and by 180 degrees
  inside its mask, for products with a saturated body only (a grey product has no other colour);
* distinct products (must be kept): every pair of two different rendered products.

For each decision (ingest: 256-bit pHash within ``IngestConfig.near_duplicate_distance``, or the
object hashes (:func:`aescot.neardup.object_hash`) within ``object_distance`` with colours within
``object_colour_distance``; dedupe: ``DedupeConfig`` 64-bit pHash within its ``threshold``), each
signature and colour threshold T it prints precision and recall for both kinds of pair:

* copies, positive = merged: recall = copies merged / copies, precision = copies merged / all pairs
  merged (copies + recolours + distinct);
* recolours, positive = kept apart: recall = recolours kept / recolours, precision = recolours kept
  / (recolours kept + copies kept apart, i.e. missed).

For the shipped signature the run's choice is the T (every whole percent 0-40) with the fewest errors (copies missed +
recolours and distinct products merged) summed over both image sizes (``--sizes``, default 256 and
128 px); on a tie, the middle of the tied thresholds (the widest margin both ways), rounded down. The
shipped defaults (``IngestConfig.colour_distance``, ``DedupeConfig.colour_threshold``) are this
choice; the run says whether they still are. Then ingest's rule per kind of pair without and with
the object hashes (and how many copies of each kind are within 4-12 object-hash bits), the object
rule on ``--distinct-n`` distinct products (every pair: the false matches the labelled set is too
small to show, at the shipped limits and looser ones, beside the plain rule's), what a wider plain
grey radius would do instead, and what the colour signatures and the object hash cost beside the
pHash at two image sizes (ratios in the same run).

    .venv/bin/python bench/colour_pairs.py [--n 120] [--sizes 256,128] [--distinct-n 3000]
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
from aescot.neardup import (
    colour_difference,
    colour_hash,
    colour_match,
    get_hasher,
    hamming,
    object_hash,
    radius_search,
)
from aescot.samples import render_product_shot

THRESHOLDS = (-1, 5, 10, 12, 14, 17, 18, 20, 22, 25, 30)  # percent; -1: the colour check off (grey alone)
LIB_THRESHOLDS = (2, 4, 5, 6)  # imagehash.colorhash, Hamming bits
SHIPPED = IngestConfig()  # the shipped ingest rule (built once: the tallies ask it per pair)
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


def _corner_crop(img: Image.Image, frac: float) -> Image.Image:
    """``frac`` of the width and height cut off the left and the top only (not resized back)."""
    w, h = img.size
    return img.crop((int(w * frac), int(h * frac), w, h))


# copies outside the labelled set, shown per kind only (not in the totals the thresholds are chosen on):
# crops between and beyond the labelled ones, and one off a corner (the crop hashes are central)
EXTRA_COPIES: dict[str, Callable[[Image.Image], Image.Image]] = {
    "crop 1%": lambda im: _crop(im, 0.01),
    "crop 3%": lambda im: _crop(im, 0.03),
    "crop 6%": lambda im: _crop(im, 0.06),
    "corner 3%": lambda im: _corner_crop(im, 0.03),
}


def _saturated(img: Image.Image, mask: Image.Image) -> bool:
    sat = np.array(img.convert("HSV"))[..., 1][np.asarray(mask) > 127]
    return sat.size > 0 and float(np.median(sat)) > 60


def _lib(img: Image.Image) -> str:
    return str(imagehash.colorhash(img.convert("RGB"), binbits=4))


@dataclass(frozen=True)
class Pair:
    label: str  # copy | recolour | distinct | extra (a copy outside the labelled set)
    kind: str  # the perturbation, or "distinct"
    grey: int  # grey pHash bits apart
    obj: int  # object hash bits apart (ingest's second way in; symmetric, so order does not matter)
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


def _merged(p: Pair, radius: int, t: int, objects: bool = True) -> bool:
    """Ingest's decision with colour threshold ``t``: the plain pHash within ``radius`` and colours
    within ``t``, or (``objects``) the object hashes within object_distance and colours within ``t``
    and object_colour_distance."""
    if p.grey <= radius and colour_match(p.a, p.b, t):
        return True
    object_t = t if t < 0 else min(t, SHIPPED.object_colour_distance)
    return objects and p.obj <= SHIPPED.object_distance and colour_match(p.a, p.b, object_t)


def _tally(pairs: list[Pair], radius: int, t: int, lib: bool = False, objects: bool = False) -> Tally:
    def merged(p: Pair) -> bool:  # the shipped decision: grey-near and colours match
        if lib:
            return (p.grey <= radius or (objects and p.obj <= SHIPPED.object_distance)) and p.lib <= t
        return _merged(p, radius, t, objects)

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


@dataclass(frozen=True)
class Hashes:
    grey: str  # plain pHash
    obj: str | None  # object hash (None: a blank image)
    colour: str
    lib: str

    @staticmethod
    def of(img: Image.Image, phash) -> Hashes:
        return Hashes(phash.hash(img), object_hash(img, phash), colour_hash(img), _lib(img))


def _obj_bits(a: Hashes, b: Hashes) -> int:
    return hamming(a.obj, b.obj) if a.obj and b.obj else 1 << 30


def _distinct_check(n: int, size: int, hash_size: int, cfg: IngestConfig) -> None:
    """The object rule on many more distinct products than the labelled set (every one of the
    ``n * (n - 1) / 2`` pairs, found by radius search): how many are object-near, and how many the
    rule merges with the colour check, at the shipped limits and looser ones; the plain rule's beside."""
    phash = get_hasher("phash", hash_size)
    hashes = [Hashes.of(render_product_shot(seed, size)[0], phash) for seed in range(n)]
    colours = [h.colour for h in hashes]
    print(f"\n== the object rule on {n} distinct products at {size} px ({n * (n - 1) // 2} pairs) ==")
    framed = [i for i, h in enumerate(hashes) if h.obj]
    obj = [
        (framed[i], framed[j], d)
        for i, j, d in radius_search([hashes[k].obj for k in framed], None, 12).as_tuples()
    ]
    limits = sorted(
        {(cfg.object_distance, cfg.object_colour_distance), (6, 12), (10, 12), (10, 17), (12, 17)}
    )
    for bits, colour in limits:
        near = [(i, j) for i, j, d in obj if d <= bits]
        merged = [
            1 for i, j in near if colour_match(colours[i], colours[j], min(colour, cfg.colour_distance))
        ]
        shipped = " (shipped)" if (bits, colour) == (cfg.object_distance, cfg.object_colour_distance) else ""
        print(
            f"  object hash within {bits:>2d} bits, colour within {colour}%{shipped}: {len(near)} object-near, {len(merged)} merged"
        )
    r, t = cfg.near_duplicate_distance, cfg.colour_distance
    plain = radius_search([h.grey for h in hashes], None, r).as_tuples()
    merged = sum(colour_match(colours[i], colours[j], t) for i, j, _ in plain)
    print(
        f"  beside it, the plain rule (pHash within {r} bits, colour within {t}%): {len(plain)} grey-near, {merged} merged"
    )


def _pairs(n: int, hash_size: int, size: int) -> list[Pair]:
    phash = get_hasher("phash", hash_size)
    pairs: list[Pair] = []
    bases: list[Hashes] = []
    for seed in range(n):
        img, mask = render_product_shot(seed, size)
        base = Hashes.of(img, phash)
        bases.append(base)
        others = [("copy", kind, make(img)) for kind, make in COPIES.items()]
        others += [("extra", kind, make(img)) for kind, make in EXTRA_COPIES.items()]
        if _saturated(img, mask):
            others += [("recolour", kind, _recolour(img, mask, s)) for kind, s in RECOLOURS.items()]
        for label, kind, other in others:
            o = Hashes.of(other, phash)
            pairs.append(
                Pair(label, kind, hamming(base.grey, o.grey), _obj_bits(base, o), base.colour, o.colour,
                     hamming(base.lib, o.lib))
            )  # fmt: skip
    for i in range(n):
        for j in range(i + 1, n):
            a, b = bases[i], bases[j]
            pairs.append(
                Pair("distinct", "distinct", hamming(a.grey, b.grey), _obj_bits(a, b), a.colour, b.colour,
                     hamming(a.lib, b.lib))
            )  # fmt: skip
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


def _decision(
    title: str, pairs: list[Pair], radius: int, shipped: int, objects: bool = False
) -> dict[int, int]:
    t0 = _tally(pairs, radius, -1, objects=objects)
    how = f", or the object hashes within {SHIPPED.object_distance}" if objects else ""
    print(f"\n== {title}: grey pHash within {radius} bits{how} ==")
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
            f"{sum(x <= radius or (objects and p.obj <= SHIPPED.object_distance) for x, p in zip(g, rows)):>5d}/{len(rows)}"
            + (
                f"   object hash bits {min(p.obj for p in rows)}/{int(np.median([p.obj for p in rows]))}"
                f"/{max(p.obj for p in rows)}"
                if objects
                else ""
            )
        )
    print(
        f"\n{'colour T':>14s} | {'copies merged':>13s} {'precision':>9s} {'recall':>7s} | "
        f"{'recolours kept':>14s} {'precision':>9s} {'recall':>7s} | {'distinct merged':>15s} | errors"
    )
    for t in THRESHOLDS:
        print(_row("off" if t < 0 else f"{t}%", _tally(pairs, radius, t, objects=objects)))
    errors = {t: _tally(pairs, radius, t, objects=objects).errors for t in CHOICES}
    for t in LIB_THRESHOLDS:
        print(_row(f"colorhash {t}b", _tally(pairs, radius, t, lib=True, objects=objects)))
    near = SHIPPED.object_distance
    grey_only = [p for p in pairs if p.label == "copy" and (p.grey <= radius or (objects and p.obj <= near))]
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


def _by_kind(pairs: list[Pair], radius: int, t: int) -> None:
    """Ingest's rule without and with the object hashes, per kind of pair (colour T = ``t``), and how
    many copies of each kind are within 4-12 bits of their original's object hash."""
    print(f"\n== ingest per kind of pair: grey within {radius} bits, colour within {t}% ==")
    kinds = [*COPIES, *EXTRA_COPIES]
    print(
        f"{'rule':>30s} | "
        + " ".join(f"{k:>10s}" for k in kinds)
        + " | copies precision recall | recolours kept | distinct merged"
    )
    rules = (
        ("plain pHash (before)", lambda p: _merged(p, radius, t, objects=False)),
        ("plain + object hash (shipped)", lambda p: _merged(p, radius, t)),
    )
    for name, merged in rules:
        caught = [sum(map(merged, (p for p in pairs if p.kind == k))) for k in kinds]
        totals = [sum(p.kind == k for p in pairs) for k in kinds]
        copies = sum(c for c, k in zip(caught, kinds) if k in COPIES)
        n_copies = sum(n for n, k in zip(totals, kinds) if k in COPIES)
        rec = [p for p in pairs if p.label == "recolour"]
        dis = [p for p in pairs if p.label == "distinct"]
        rec_merged = sum(map(merged, rec))
        dis_merged = sum(map(merged, dis))
        print(
            f"{name:>30s} | "
            + " ".join(f"{c:>4d}/{n:<5d}" for c, n in zip(caught, totals))
            + f" | {_ratio(copies, copies + rec_merged + dis_merged):>16s} {_ratio(copies, n_copies):>6s} | "
            f"{len(rec) - rec_merged:>6d}/{len(rec):<7d} | {dis_merged:>6d}/{len(dis)}"
        )
    for bits in (4, 6, 8, 10, 12):
        within = [sum(p.obj <= bits for p in pairs if p.kind == k) for k in kinds]
        totals = [sum(p.kind == k for p in pairs) for k in kinds]
        print(
            f"{f'object hash within {bits} bits':>30s} | "
            + " ".join(f"{c:>4d}/{n:<5d}" for c, n in zip(within, totals))
        )
    print(
        f"  (copies precision and recall over {', '.join(COPIES)}; "
        f"{', '.join(EXTRA_COPIES)} are outside the labelled set)"
    )


def _wider(pairs: list[Pair], t: int) -> None:
    print(f"\n== ingest without object hashes, what a wider plain-pHash radius would do (colour T = {t}%) ==")
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
    print(
        "\n== cost per image (median of 15): colour signatures and the object hash beside the 256-bit pHash =="
    )
    fns = (
        ("phash", phash.hash),
        ("colour", colour_hash),
        ("colorhash", _lib),
        ("object", lambda im: object_hash(im, phash)),
    )
    for side in (256, 2048):
        img = render_product_shot(7, 256)[0].resize((side, side))
        times: dict[str, list[float]] = {name: [] for name, _ in fns}
        for _ in range(15):
            for name, fn in fns:
                t = time.perf_counter()
                fn(img)
                times[name].append(time.perf_counter() - t)
        p, c, lb, cr = (float(np.median(times[k])) * 1e3 for k, _ in fns)
        print(
            f"  {side:>4d} px: pHash {p:6.2f} ms, colour signature {c:6.2f} ms ({c / p:.2f} x pHash), "
            f"colorhash {lb:6.2f} ms ({lb / p:.2f} x pHash), object hash {cr:6.2f} ms ({cr / p:.2f} x pHash)"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=120, help="rendered products")
    ap.add_argument(
        "--sizes", default="256,128", help="sides of the rendered shots (pixels), comma-separated"
    )
    ap.add_argument(
        "--distinct-n", type=int, default=3000, help="distinct products for the object rule's false merges"
    )
    args = ap.parse_args()
    ing, dd = SHIPPED, DedupeConfig()
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
                objects=ing.object_distance >= 0,
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
        _by_kind(ingest_pairs, ing.near_duplicate_distance, ing.colour_distance)
        _distinct_check(args.distinct_n, size, ing.hash_size, ing)
        _wider(ingest_pairs, ing.colour_distance)
    print(f"\n== the defaults, measured at {', '.join(f'{s} px' for s in sizes)} ==")
    _choose("ingest colour_distance", ingest_errors, ing.colour_distance)
    _choose("dedupe colour_threshold", dedupe_errors, dd.colour_threshold)
    _cost()


if __name__ == "__main__":
    main()
