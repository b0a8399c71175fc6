"""Regenerate what annotators see from the code: ``annotation/screening.xml`` (the labeling page,
from ``aescot.vocab``) and ``annotation/examples/<dimension>.png`` (one worked example per defect
dimension: the source photo, an acceptable candidate and a flawed one, rendered by the synthetic
generator with that defect planted).

    .venv/bin/python scripts/render_annotation.py

Deterministic: the same code gives the same files (a test checks the XML and the pictures' list).
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from aescot.generate.base import SourceImage
from aescot.generate.synthetic import SyntheticConfig, SyntheticGenerator
from aescot.labelstudio.labeling import screening_config
from aescot.samples import render_product_shot
from aescot.vocab import DIMENSION_INFO

ROOT = Path(__file__).resolve().parents[1] / "annotation"
SIZE = 224  # each panel; a picture is three panels wide, fits Label Studio's instructions window
SOURCE_SEED = 11
# the variant that shows the dimension most plainly (any variant is used if the generator lacks it)
PREFERRED = {
    "appearance_deformation": "wave",
    "lighting_shadow": "towards_light",
    "placement_layout": "floating",
    "extension_rationality": "repeated",
}


def _example(generator: SyntheticGenerator, source: SourceImage, slot: int, variant: str | None):
    """The first seed (of 200) whose candidate uses ``variant``; else seed 0."""
    for seed in range(200):
        (out,) = generator.generate(source, [slot], [seed])
        if variant is None or out.params.get("variant") == variant:
            return out
    return generator.generate(source, [slot], [0])[0]


def render_examples(folder: Path) -> list[Path]:
    image, mask = render_product_shot(SOURCE_SEED, SIZE)
    source = SourceImage("guideline-example", image, mask, "example product")
    font = ImageFont.load_default(size=15)
    written = []
    for dim in DIMENSION_INFO:
        generator = SyntheticGenerator(SyntheticConfig(plan=["clean", dim.id, dim.id, dim.id]))
        clean = _example(generator, source, 0, None)
        flawed = _example(generator, source, 1, PREFERRED.get(dim.id))
        panels = [
            (image, "source photo", "#444"),
            (clean.image, "acceptable", "#1a7f37"),
            (flawed.image, "flawed", "#b42318"),
        ]
        pad, caption = 6, 24
        sheet = Image.new("RGB", (3 * SIZE + 4 * pad, SIZE + caption + 2 * pad), "white")
        draw = ImageDraw.Draw(sheet)
        for n, (panel, text, colour) in enumerate(panels):
            x = pad + n * (SIZE + pad)
            sheet.paste(panel.convert("RGB").resize((SIZE, SIZE)), (x, pad))
            draw.text((x + 2, pad + SIZE + 4), text, fill=colour, font=font)
        path = folder / f"{dim.id}.png"
        sheet.save(path, optimize=True)
        written.append(path)
    return written


def main() -> int:
    (ROOT / "screening.xml").write_text(screening_config(), encoding="utf-8")
    folder = ROOT / "examples"
    folder.mkdir(exist_ok=True)
    for path in render_examples(folder):
        print(f"wrote {path.relative_to(ROOT.parent)} ({path.stat().st_size // 1024} KiB)")
    print(f"wrote {(ROOT / 'screening.xml').relative_to(ROOT.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
