"""Controlled-defect synthesis: candidates with *known* labels, composed from a source and its mask.

Every candidate is the product cut out by its mask and set on a new backdrop, standing on the
floor with a shadow cast away from the light (a *clean* composite), or the same with planted
defects in one or more dimensions, each *subtle* or *obvious*:

* ``appearance_deformation``: the product is warped (wave), melted (drip) or swirled;
* ``lighting_shadow``: the shadow is missing under a strong key light, falls towards the light,
  or is doubled in opposite directions;
* ``placement_layout``: the product floats, is cut off by the frame, is mis-scaled, or sits in a corner;
* ``extension_rationality``: the backdrop has a hard seam, repeats the product as a ghost, or
  the product's own edge is smeared out to the frame.

The default plan varies by source: 0 to 4 clean candidates, flawed ones with 1-3 dimensions,
about a third of them subtle. Each candidate's planted answer is in its ``params``: ``kind``,
``dimensions``, ``severity``, ``quality`` (a planted 1-5 score: the first clean slot is the
planted best with 5, other clean ones 4, subtle defects 3, obvious ones 2, several obvious 1)
and ``planted_best``. Every random choice comes from the plan (a hash of the source id) and the
candidate's seed, so the same seed gives the same pixels.
"""

from __future__ import annotations

import colorsys
import random
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter
from pydantic import BaseModel, Field, field_validator
from scipy import ndimage

from aescot.generate.base import GeneratedImage, GenerationError, Generator, SourceImage
from aescot.ids import derive_id
from aescot.vocab import DIMENSIONS

Kind = Literal[
    "clean", "appearance_deformation", "lighting_shadow", "placement_layout", "extension_rationality"
]
Severity = Literal["subtle", "obvious"]
VARIANTS: dict[str, tuple[str, ...]] = {
    "clean": ("composite",),
    "appearance_deformation": ("wave", "melt", "swirl"),
    "lighting_shadow": ("missing", "towards_light", "double"),
    "placement_layout": ("floating", "cut_off", "mis_scaled", "corner"),
    "extension_rationality": ("seam", "repeated", "stretched_product"),
}
# the default plan's mix: how many clean candidates an item has, how many dimensions a flawed one fails
CLEAN_WEIGHTS = {0: 15, 1: 35, 2: 25, 3: 15, 4: 10}
DIMENSION_COUNT_WEIGHTS = {1: 60, 2: 30, 3: 10}
SUBTLE_SHARE = 0.35


@dataclass(frozen=True)
class SlotSpec:
    """What one slot gets: no dimension (clean) or the dimensions it fails, and how visibly."""

    dimensions: tuple[str, ...] = ()
    severity: Severity = "obvious"

    @property
    def clean(self) -> bool:
        return not self.dimensions

    @property
    def kind(self) -> str:
        return "+".join(self.dimensions) if self.dimensions else "clean"

    def text(self) -> str:
        """The plan entry: ``clean``, ``<dim>[+<dim>...]`` or ``<dims>/subtle``."""
        return self.kind + ("/subtle" if self.dimensions and self.severity == "subtle" else "")

    @classmethod
    def parse(cls, entry: str) -> SlotSpec:
        kind, _, severity = entry.strip().partition("/")
        if kind == "clean":
            if severity:
                raise ValueError(f"plan entry {entry!r}: a clean slot has no severity")
            return cls()
        dims = kind.split("+")
        unknown = [d for d in dims if d not in DIMENSIONS]
        if unknown or len(set(dims)) != len(dims):
            raise ValueError(
                f"plan entry {entry!r}: use 'clean' or dimensions joined by '+' from {', '.join(DIMENSIONS)}"
                ", optionally '/subtle' or '/obvious'"
            )
        if severity not in ("", "subtle", "obvious"):
            raise ValueError(f"plan entry {entry!r}: severity must be 'subtle' or 'obvious'")
        return cls(tuple(d for d in DIMENSIONS if d in dims), severity or "obvious")  # type: ignore[arg-type]


def quality(spec: SlotSpec, planted_best: bool) -> int:
    """The planted 1-5 score of a slot (see the module docstring)."""
    if spec.clean:
        return 5 if planted_best else 4
    if spec.severity == "subtle":
        return 3
    return 2 if len(spec.dimensions) == 1 else 1


class SyntheticConfig(BaseModel):
    """Which candidates a source gets."""

    plan: list[str] | None = Field(
        None,
        description="one entry per slot (4): 'clean', a dimension, dimensions joined by '+', each "
        "optionally '/subtle'; None: a varied plan per source (0-4 clean, 1-3 dimensions per flawed one)",
    )

    @field_validator("plan")
    @classmethod
    def _check_plan(cls, plan: list[str] | None) -> list[str] | None:
        if plan is None:
            return plan
        if len(plan) != 4:
            raise ValueError(f"plan needs one entry per candidate slot (4), got {len(plan)}")
        for entry in plan:
            SlotSpec.parse(entry)
        return plan


def default_plan(source_id: str) -> list[SlotSpec]:
    """The varied plan of one source: deterministic in its id."""
    rng = random.Random(derive_id("synthetic-plan", 2, source_id))
    n_clean = rng.choices(list(CLEAN_WEIGHTS), weights=list(CLEAN_WEIGHTS.values()))[0]
    specs = [SlotSpec() for _ in range(n_clean)]
    for _ in range(4 - n_clean):
        k = rng.choices(list(DIMENSION_COUNT_WEIGHTS), weights=list(DIMENSION_COUNT_WEIGHTS.values()))[0]
        dims = rng.sample(DIMENSIONS, k)
        severity = "subtle" if rng.random() < SUBTLE_SHARE else "obvious"
        specs.append(SlotSpec(tuple(d for d in DIMENSIONS if d in dims), severity))  # type: ignore[arg-type]
    rng.shuffle(specs)
    return specs


# --- image helpers ------------------------------------------------------------------------------


def _rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    return tuple(round(c * 255) for c in colorsys.hsv_to_rgb(h % 1.0, s, v))  # type: ignore[return-value]


def _backdrop(w: int, h: int, rng: random.Random, light: int, contrast: float) -> tuple[Image.Image, dict]:
    """A wall and a floor meeting at a horizon; brighter on the ``light`` side (-1 left, +1 right)."""
    hue = rng.random()
    wall = np.array(_rgb(hue, rng.uniform(0.05, 0.35), rng.uniform(0.55, 0.9)), np.float32)
    floor = np.array(
        _rgb(hue + rng.uniform(-0.15, 0.15), rng.uniform(0.1, 0.45), rng.uniform(0.35, 0.75)), np.float32
    )
    horizon = rng.uniform(0.55, 0.72)
    ys = (np.arange(h, dtype=np.float32) / max(1, h - 1))[:, None]
    xs = (np.arange(w, dtype=np.float32) / max(1, w - 1))[None, :]
    side = xs if light > 0 else 1.0 - xs
    shade = (1.0 - contrast) + contrast * side  # 1 on the lit side
    is_floor = ys >= horizon
    base = np.where(is_floor[..., None], floor, wall)
    depth = np.where(is_floor, 0.85 + 0.15 * (ys - horizon) / (1 - horizon), 1.0 - 0.1 * ys)
    arr = base * (shade * depth)[..., None]
    noise = ndimage.gaussian_filter(np.random.default_rng(rng.randrange(2**32)).normal(0, 6, (h, w)), 1.2)
    arr = np.clip(arr + noise[..., None], 0, 255).astype(np.uint8)
    meta = {
        "hue": round(hue, 4),
        "horizon": round(horizon, 4),
        "light": light,
        "contrast": round(contrast, 3),
    }
    return Image.fromarray(arr, "RGB"), meta


def _cutout(source: SourceImage) -> Image.Image:
    """The product as RGBA cropped to its mask's bounding box."""
    mask = source.mask.convert("L").resize(source.image.size, Image.Resampling.NEAREST)
    box = mask.getbbox()
    if box is None:
        raise GenerationError("empty_mask", "the source's product mask is empty: nothing to compose")
    rgba = source.image.convert("RGB").convert("RGBA")
    rgba.putalpha(mask)
    return rgba.crop(box)


def _resize(img: Image.Image, scale: float) -> Image.Image:
    w, h = img.size
    return img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)


def _shadow(
    product: Image.Image, direction: float, strength: float, size: tuple[int, int], base: tuple[int, int]
) -> Image.Image:
    """A cast shadow layer: the silhouette flattened and sheared towards ``direction`` from ``base``
    (the product's bottom-left corner on the floor)."""
    w, h = product.size
    sh = max(2, round(h * 0.35))
    flat = (
        product.getchannel("A")
        .resize((w, sh), Image.Resampling.BILINEAR)
        .transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    )
    shear = 1.4 * direction
    pad = round(abs(shear) * sh) + 2
    canvas = Image.new("L", (w + 2 * pad, sh), 0)
    canvas.paste(flat, (pad, 0))
    # y' = y; x' = x - shear * (sh - y): the far end of the shadow leans away from the light
    sheared = canvas.transform(
        canvas.size, Image.Transform.AFFINE, (1, shear, -shear * sh, 0, 1, 0), Image.Resampling.BILINEAR
    )
    sheared = sheared.point(lambda v: int(v * strength))
    layer = Image.new("L", size, 0)
    layer.paste(sheared, (base[0] - pad, base[1] - sh // 2 - sh // 4))
    return layer.filter(ImageFilter.GaussianBlur(max(1.0, h / 40)))


def _darken(img: Image.Image, shadow: Image.Image) -> Image.Image:
    black = Image.new("RGB", img.size, (15, 15, 20))
    return Image.composite(black, img, shadow)


def _warp(product: Image.Image, variant: str, rng: random.Random, subtle: bool) -> tuple[Image.Image, dict]:
    """Geometric distortion of the RGBA cutout (colour and alpha together); ``subtle`` is about a third."""
    arr = np.asarray(product, dtype=np.float32)
    h, w = arr.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if variant == "wave":
        amp = (rng.uniform(0.02, 0.035) if subtle else rng.uniform(0.06, 0.12)) * w
        periods = rng.uniform(1.0, 2.5)
        src_y, src_x = yy, xx + amp * np.sin(2 * np.pi * periods * yy / h)
        meta = {"amplitude": round(amp / w, 4), "periods": round(periods, 3)}
    elif variant == "melt":
        strength = rng.uniform(0.08, 0.14) if subtle else rng.uniform(0.25, 0.45)
        drip = ndimage.gaussian_filter1d(np.random.default_rng(rng.randrange(2**32)).random(w), w / 12)
        drip = (drip - drip.min()) / (np.ptp(drip) + 1e-6)
        sag = strength * h * (yy / h) ** 2 * (0.4 + 0.6 * drip[None, :])
        src_y, src_x = yy - sag, xx
        meta = {"strength": round(strength, 4)}
    else:  # swirl
        angle = (rng.uniform(0.4, 0.7) if subtle else rng.uniform(1.2, 2.2)) * rng.choice((-1, 1))
        cy, cx, radius = h / 2, w / 2, 0.6 * max(h, w)
        dy, dx = yy - cy, xx - cx
        r = np.hypot(dy, dx)
        theta = np.arctan2(dy, dx) + angle * np.clip(1 - r / radius, 0, 1) ** 2
        src_y, src_x = cy + r * np.sin(theta), cx + r * np.cos(theta)
        meta = {"angle": round(angle, 4)}
    out = np.stack(
        [
            ndimage.map_coordinates(arr[..., c], [src_y, src_x], order=1, mode="constant", cval=0)
            for c in range(4)
        ],
        axis=-1,
    )
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), "RGBA"), meta


# --- the generator ------------------------------------------------------------------------------


class SyntheticGenerator(Generator):
    """Known-answer candidates: clean composites and planted defects in one or more dimensions."""

    name = "synthetic"
    model = None

    def __init__(self, config: SyntheticConfig | None = None):
        self.config = config or SyntheticConfig()

    def fingerprint(self) -> dict[str, Any]:
        return {"plan": self.config.plan, "version": 2}

    def slot_specs(self, source_id: str) -> list[SlotSpec]:
        """What each of the 4 slots of this source gets (deterministic)."""
        if self.config.plan is not None:
            return [SlotSpec.parse(e) for e in self.config.plan]
        return default_plan(source_id)

    def plan(self, source_id: str) -> list[str]:
        """The plan entries of this source's 4 slots (see :meth:`SlotSpec.text`)."""
        return [spec.text() for spec in self.slot_specs(source_id)]

    def generate(self, source: SourceImage, slots: list[int], seeds: list[int]) -> list[GeneratedImage]:
        specs = self.slot_specs(source.source_id)
        best_slot = next((k for k, spec in enumerate(specs) if spec.clean), None)
        product = _cutout(source)
        return [
            self._compose(source, product, specs[slot % 4], slot % 4 == best_slot, seed)
            for slot, seed in zip(slots, seeds)
        ]

    def _compose(
        self, source: SourceImage, product: Image.Image, spec: SlotSpec, planted_best: bool, seed: int
    ) -> GeneratedImage:
        rng = random.Random(seed)
        w, h = source.image.size
        dims = set(spec.dimensions)
        subtle = spec.severity == "subtle"
        # the first draw is the (first) variant: tests pick seeds by it
        variants = {d: rng.choice(VARIANTS[d]) for d in spec.dimensions} or {
            "clean": rng.choice(VARIANTS["clean"])
        }
        light = rng.choice((-1, 1))
        lit = "lighting_shadow" in dims
        contrast = (
            (rng.uniform(0.25, 0.35) if subtle else rng.uniform(0.35, 0.5)) if lit else rng.uniform(0.1, 0.3)
        )
        scene, scene_meta = _backdrop(w, h, rng, light, contrast)
        horizon_y = scene_meta["horizon"] * h
        pw, ph = product.size
        fit = min(0.8 * w / pw, 0.8 * h / ph, 1.0)  # the product must fit comfortably
        scale = fit * rng.uniform(0.75, 1.0)
        p: dict[str, Any] = {
            "kind": spec.kind,
            "variant": "+".join(variants.values()),
            "variants": {d: v for d, v in variants.items() if d != "clean"},
            "dimensions": list(spec.dimensions),
            "severity": None if spec.clean else spec.severity,
            "quality": quality(spec, planted_best),
            "planted_best": planted_best,
            "scene": scene_meta,
        }
        obj = _resize(product, scale)
        if "appearance_deformation" in dims:
            obj, p["warp"] = _warp(obj, variants["appearance_deformation"], rng, subtle)
        placement = variants.get("placement_layout")
        if placement == "mis_scaled":
            if subtle:
                factor = rng.choice((rng.uniform(0.55, 0.7), rng.uniform(1.35, 1.5)))
            else:
                factor = rng.choice((rng.uniform(0.22, 0.35), rng.uniform(1.7, 2.2)))
            obj = _resize(obj, factor)
            p["scale_factor"] = round(factor, 3)
        ow, oh = obj.size
        floor_y = round(horizon_y + rng.uniform(0.45, 0.85) * (h - horizon_y))  # where it stands
        x = round(rng.uniform(0.3, 0.7) * w - ow / 2)
        y = floor_y - oh
        shadow_at = (x, floor_y)
        if placement == "floating":
            lift = round((rng.uniform(0.07, 0.1) if subtle else rng.uniform(0.18, 0.3)) * h)
            y = max(0, y - lift)
            p["lift"] = lift
        elif placement == "cut_off":
            side = rng.choice(("left", "right", "bottom"))
            hidden = rng.uniform(0.12, 0.2) if subtle else rng.uniform(0.35, 0.55)
            if side == "left":
                x = -round(hidden * ow)
            elif side == "right":
                x = w - round((1 - hidden) * ow)
            else:
                y = h - round((1 - hidden) * oh)
            shadow_at = (x, min(h - 1, y + oh))
            p.update(side=side, hidden=round(hidden, 3))
        elif placement == "corner":
            x = rng.choice((0, w - ow))
            if not subtle:  # obvious: up in a top corner; subtle: standing hard against a side edge
                y = max(0, round(rng.uniform(0.0, 0.05) * h))
            shadow_at = (x, y + oh)
        p["placement"] = {"x": x, "y": y, "scale": round(scale, 4)}

        img = scene
        extension = variants.get("extension_rationality")
        if extension == "seam":
            at = round(rng.uniform(0.3, 0.7) * w)
            if subtle:  # the same backdrop, a little darker past a hard vertical edge
                factor = rng.uniform(0.82, 0.9)
                other = ImageEnhance.Brightness(scene).enhance(factor)
                p["seam"] = {"x": at, "brightness": round(factor, 3)}
            else:
                other, other_meta = _backdrop(w, h, random.Random(rng.randrange(2**32)), -light, 0.3)
                p["seam"] = {"x": at, "other": other_meta}
            img = scene.copy()
            img.paste(other.crop((at, 0, w, h)), (at, 0))
        away = float(light * -1)  # shadows fall away from the light
        lighting = variants.get("lighting_shadow")
        if lighting == "towards_light":
            away = -away
        shadows: list[float] = [] if lighting == "missing" else [away]
        if lighting == "double":
            shadows.append(-away)
        for k, direction in enumerate(shadows):
            strength = 0.3 if (subtle and k == 1) else 0.55
            img = _darken(img, _shadow(obj, direction, strength, (w, h), shadow_at))
        p["shadows"] = shadows
        img = img.convert("RGBA")
        if extension == "repeated":
            ghost = obj.copy()
            opacity = 0.35 if subtle else 0.8
            ghost.putalpha(ghost.getchannel("A").point(lambda v: int(v * opacity)))
            step = ow + max(2, round(0.05 * w))
            for k in (-1, 1) if subtle else (-2, -1, 1, 2):
                _paste(img, ghost, x + k * step, y)
            p["repeat_step"] = step
        if extension == "stretched_product":
            side = rng.choice(("left", "right"))
            strip = obj.crop((0, 0, 2, oh) if side == "left" else (ow - 2, 0, ow, oh))
            room = max(1, x if side == "left" else w - (x + ow))
            span = max(1, round(room * 0.35)) if subtle else room
            smear = strip.resize((span + 2, oh), Image.Resampling.NEAREST)
            _paste(img, smear, x - span if side == "left" else x + ow - 2, y)
            p["smear"] = {"side": side, "span": span}
        _paste(img, obj, x, y)
        return GeneratedImage(img.convert("RGB"), seed, p, spec.clean, list(spec.dimensions))


def _paste(canvas: Image.Image, layer: Image.Image, x: int, y: int) -> None:
    """Alpha-composite ``layer`` at ``(x, y)``; parts outside the canvas are cut off."""
    canvas.paste(layer, (x, y), layer)
