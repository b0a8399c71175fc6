"""Procedurally rendered product shots (boxes, bottles, blister packs) on plain backgrounds.

The bundled demo sources and the test corpus come from here: no third-party images.
Each shot comes with its exact product mask.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

KINDS = ("box", "bottle", "blister", "tube")
_BRANDS = (
    "Calmora",
    "Dolvex",
    "Fenrix",
    "Immuna",
    "Lactiva",
    "Nasoclar",
    "Ostera",
    "Pedalix",
    "Quenta",
    "Vitabel",
)
_FORMS = ("tablets 20 x 500 mg", "capsules 30", "syrup 100 ml", "drops 10 ml", "cream 50 g", "spray 20 ml")


def _colour(rng: random.Random, lo: int, hi: int) -> tuple[int, int, int]:
    return (rng.randint(lo, hi), rng.randint(lo, hi), rng.randint(lo, hi))


def _draw_label_lines(
    d: ImageDraw.ImageDraw, box: tuple[int, int, int, int], rng: random.Random, ink
) -> None:
    """Text-like bars (a brand line, then smaller lines), deterministic per rng."""
    x0, y0, x1, y1 = box
    h = y1 - y0
    y = y0 + h * 0.15
    widths = [0.8, 0.55, 0.65, 0.4]
    for i, frac in enumerate(widths):
        th = max(1, int(h * (0.12 if i == 0 else 0.06)))
        d.rectangle(
            [x0 + (x1 - x0) * 0.1, y, x0 + (x1 - x0) * (0.1 + frac * rng.uniform(0.8, 1.0)), y + th], fill=ink
        )
        y += th + h * 0.08


def render_product_shot(
    seed: int, size: int = 256, kind: str | None = None
) -> tuple[Image.Image, Image.Image]:
    """An RGB product shot of ``size``x``size`` and its L mask (255 = product), from ``seed``."""
    rng = random.Random(seed)
    kind = kind or KINDS[seed % len(KINDS)]
    bg = _colour(rng, 215, 250)
    img = Image.new("RGB", (size, size), bg)
    # a gentle vertical gradient, as studio backdrops have
    grad = Image.linear_gradient("L").resize((size, size))
    img = Image.composite(
        img,
        Image.new("RGB", (size, size), tuple(max(0, c - 18) for c in bg)),
        grad.point(lambda v: 255 - v // 3),
    )

    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    body = _colour(rng, 30, 220)
    accent = _colour(rng, 20, 240)
    ink = (20, 20, 30, 255) if sum(body) > 360 else (245, 245, 245, 255)
    cx = size * rng.uniform(0.42, 0.58)
    if kind == "box":
        w, h = size * rng.uniform(0.35, 0.55), size * rng.uniform(0.35, 0.6)
        x0, y0 = cx - w / 2, size * 0.88 - h
        d.rectangle([x0, y0, x0 + w, y0 + h], fill=(*body, 255))
        d.rectangle([x0, y0 + h * 0.62, x0 + w, y0 + h * 0.8], fill=(*accent, 255))
        d.polygon(
            [(x0 + w, y0), (x0 + w * 1.12, y0 - h * 0.06), (x0 + w * 1.12, y0 + h * 0.94), (x0 + w, y0 + h)],
            fill=tuple(int(c * 0.7) for c in body) + (255,),
        )
        _draw_label_lines(d, (int(x0), int(y0), int(x0 + w), int(y0 + h * 0.6)), rng, ink)
    elif kind == "bottle":
        w, h = size * rng.uniform(0.22, 0.32), size * rng.uniform(0.45, 0.65)
        x0, y0 = cx - w / 2, size * 0.88 - h
        d.rounded_rectangle([x0, y0 + h * 0.18, x0 + w, y0 + h], radius=w * 0.2, fill=(*body, 255))
        d.rectangle([x0 + w * 0.3, y0 + h * 0.06, x0 + w * 0.7, y0 + h * 0.2], fill=(*body, 255))
        d.rectangle([x0 + w * 0.25, y0, x0 + w * 0.75, y0 + h * 0.08], fill=(*accent, 255))
        d.rectangle([x0, y0 + h * 0.45, x0 + w, y0 + h * 0.8], fill=(250, 250, 245, 255))
        _draw_label_lines(
            d, (int(x0), int(y0 + h * 0.45), int(x0 + w), int(y0 + h * 0.8)), rng, (30, 30, 40, 255)
        )
    elif kind == "blister":
        w, h = size * rng.uniform(0.5, 0.7), size * rng.uniform(0.3, 0.42)
        x0, y0 = cx - w / 2, size * 0.5 - h / 2
        d.rounded_rectangle([x0, y0, x0 + w, y0 + h], radius=size * 0.02, fill=(205, 208, 215, 255))
        rows, cols = 2, rng.choice((4, 5))
        r = min(w / cols, h / rows) * 0.3
        for i in range(rows):
            for j in range(cols):
                px, py = x0 + w * (j + 0.5) / cols, y0 + h * (i + 0.5) / rows
                d.ellipse([px - r, py - r, px + r, py + r], fill=(*accent, 255), outline=(150, 150, 160, 255))
    else:  # tube
        w, h = size * rng.uniform(0.55, 0.7), size * rng.uniform(0.14, 0.2)
        x0, y0 = cx - w / 2, size * 0.62 - h / 2
        d.polygon(
            [(x0, y0 + h * 0.1), (x0 + w * 0.85, y0), (x0 + w * 0.85, y0 + h), (x0, y0 + h * 0.9)],
            fill=(*body, 255),
        )
        d.rectangle([x0 + w * 0.85, y0 + h * 0.25, x0 + w, y0 + h * 0.75], fill=(*accent, 255))
        _draw_label_lines(d, (int(x0 + w * 0.1), int(y0), int(x0 + w * 0.75), int(y0 + h)), rng, ink)

    alpha = layer.getchannel("A")
    mask = alpha.point(lambda v: 255 if v > 127 else 0)
    shadow = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    shadow.paste((0, 0, 0, 70), (int(size * 0.02), int(size * 0.02)), alpha)
    shadow = shadow.filter(ImageFilter.GaussianBlur(size / 60))
    out = img.convert("RGBA")
    out.alpha_composite(shadow)
    out.alpha_composite(layer)
    return out.convert("RGB"), mask


def product_name(seed: int) -> str:
    rng = random.Random(seed * 7919 + 1)
    return f"{rng.choice(_BRANDS)} {rng.choice(_FORMS)}"


def write_sample_sources(folder: str | Path, n: int = 8, size: int = 256, seed: int = 0) -> Path:
    """Write ``n`` shots as ``sample-XX.png`` with ``sample-XX.mask.png`` and a ``manifest.csv``.

    Returns the manifest path; ``aescot ingest <manifest>`` reads images, masks and product names.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        s = seed * 100_003 + i
        img, mask = render_product_shot(s, size)
        name = f"sample-{i:02d}"
        img.save(folder / f"{name}.png")
        mask.save(folder / f"{name}.mask.png")
        rows.append({"path": f"{name}.png", "mask": f"{name}.mask.png", "product": product_name(s)})
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "mask", "product"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest
