"""What every mask backend shares: the config, the error, the result, the border model and the checks.

A mask is an 8-bit L image, 255 on the product and 0 elsewhere, the size of the source. A backend
returns a boolean foreground at its working size; :func:`checked` upsamples it and decides whether it
is a mask of *one main object* or a failure with a stable ``reason``:

``mask_coverage``      the foreground is too small or too large (nothing found / no background left)
``mask_fragmented``    it falls apart into many pieces of similar size (textures, pages, star fields)
``mask_not_separable`` the region taken as the product has the colours of the border (a texture or
                       pattern filling the frame, not an object on a background)
``mask_background_not_plain`` (plain model only) the border varies too much for a plain backdrop
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field
from scipy import ndimage

from aescot.errors import InputError

Backend = Literal["auto", "plain", "grabcut", "model"]


class MaskConfig(BaseModel):
    """Limits and knobs of mask extraction."""

    backend: Backend = Field(
        "auto",
        description="auto: the plain-background model, then GrabCut when it fails its checks; "
        "plain / grabcut: only that one; model: a segmentation model loaded by model_id",
    )
    model_id: str | None = Field(
        None, description="hub id or local folder of a SAM-family model (backend='model')"
    )
    model_device: str = Field("auto", description="torch device of the model backend (auto: cuda, mps, cpu)")
    min_coverage: float = Field(
        0.01, ge=0, le=1, description="a smaller foreground means segmentation failed"
    )
    max_coverage: float = Field(
        0.95, ge=0, le=1, description="a larger one means the background is not plain"
    )
    border_fraction: float = Field(
        0.04, gt=0, lt=0.5, description="ring of the image used as background sample"
    )
    min_distance: float = Field(
        18.0, gt=0, description="RGB distance from the background colour that counts as product"
    )
    max_plain_spread: float = Field(
        25.0,
        gt=0,
        description="border colour spread (95th percentile RGB distance from its fitted plane) above which "
        "the background is not plain: the plain model declines (auto moves on to GrabCut)",
    )
    weak_distance: float = Field(
        6.0,
        gt=0,
        description="a weaker difference still counts where it is connected to clear product pixels "
        "and the border is this uniform (hysteresis)",
    )
    work_side: int = Field(
        384, ge=64, description="segment on a copy at most this large, then upsample the mask"
    )
    max_parts: int = Field(
        8, ge=1, description="a foreground of more kept parts is a texture or a page, not one object"
    )
    min_parts_fill: float = Field(
        0.2, ge=0, le=1, description="parts filling less of their bounding box are scattered, not one object"
    )
    min_separation: float = Field(
        0.35,
        ge=0,
        le=1,
        description="1 - overlap of the colour histograms of product and border; less is a texture",
    )
    grabcut_side: int = Field(256, ge=64, description="GrabCut works on a copy at most this large")
    grabcut_iterations: int = Field(
        3, ge=1, le=20, description="GrabCut rounds (3 did as well as 5 on the photos)"
    )


class MaskError(InputError, ValueError):
    """No usable mask; ``reason`` is a stable code."""

    def __init__(self, reason: str, detail: str):
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}")


@dataclass
class Mask:
    image: Image.Image  # L, 0/255
    method: str  # user | alpha | segmented | grabcut | model
    coverage: float
    notes: list[str] = field(default_factory=list)  # e.g. why an earlier backend was passed over


ADVICE = "supply a mask file for this source"


def binary_image(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(np.where(arr, 255, 0).astype(np.uint8), mode="L")


def work_copy(img: Image.Image, side: int) -> np.ndarray:
    """RGB uint8 array of ``img`` shrunk to at most ``side`` (an alpha channel is dropped)."""
    work = img.convert("RGB")
    if max(work.size) > side:
        work.thumbnail((side, side), Image.Resampling.BILINEAR)
    return np.asarray(work)


def ring(shape: tuple[int, int], fraction: float) -> np.ndarray:
    """The border band of an image of ``shape`` (h, w): ``fraction`` of the shorter side, at least 1 px."""
    h, w = shape
    b = max(1, round(min(h, w) * fraction))
    out = np.zeros((h, w), bool)
    out[:b] = out[-b:] = True
    out[:, :b] = out[:, -b:] = True
    return out


def upsample(fg: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (fg.shape[1], fg.shape[0]) == size:
        return fg
    return np.asarray(binary_image(fg).resize(size, Image.Resampling.BILINEAR)) > 127


def keep_main_parts(fg: np.ndarray, share: float = 0.1) -> tuple[np.ndarray, int]:
    """Components of at least ``share`` of the largest one (drops specks, keeps multi-packs), holes
    filled; and how many were kept."""
    labels, n = ndimage.label(fg)
    if n > 1:
        sizes = ndimage.sum(fg, labels, index=np.arange(1, n + 1))
        keep = np.flatnonzero(sizes >= share * sizes.max()) + 1
        fg, n = np.isin(labels, keep), len(keep)
    return ndimage.binary_fill_holes(fg), n


def separation(rgb: np.ndarray, fg: np.ndarray, band: np.ndarray) -> float:
    """1 - intersection of the 16x16x16 colour histograms of the foreground and the border band's
    background pixels: 0 when the product has exactly the border's colours, 1 when none of them.

    16 levels a channel (not 8) keep a product a dozen levels off its backdrop separable."""
    bg = band & ~fg
    if not fg.any() or not bg.any():
        return 0.0
    q = (rgb // 16).astype(np.int32)
    code = (q[..., 0] * 16 + q[..., 1]) * 16 + q[..., 2]
    hf = np.bincount(code[fg], minlength=4096) / fg.sum()
    hb = np.bincount(code[bg], minlength=4096) / bg.sum()
    return float(1.0 - np.minimum(hf, hb).sum())


def box_fill(fg: np.ndarray) -> float:
    """The share of the foreground's bounding box that it covers."""
    ys, xs = np.nonzero(fg)
    if not len(ys):
        return 0.0
    return float(fg.sum() / ((ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)))


def check_coverage(fg: np.ndarray, method: str, cfg: MaskConfig) -> float:
    coverage = float(fg.mean())
    if not cfg.min_coverage <= coverage <= cfg.max_coverage:
        why = (
            "nothing stands apart from the border" if coverage < cfg.min_coverage else "no background is left"
        )
        raise MaskError(
            "mask_coverage",
            f"{method} mask covers {coverage:.1%} of the image, outside "
            f"[{cfg.min_coverage:.0%}, {cfg.max_coverage:.0%}] ({why}): {ADVICE}",
        )
    return coverage


def check_parts(fg: np.ndarray, parts: int, method: str, cfg: MaskConfig) -> None:
    """Many parts, or a few scattered over the frame (they fill little of their bounding box), are a
    texture, a page or a star field; a multi-pack is a few parts close together."""
    if parts > cfg.max_parts:
        raise MaskError(
            "mask_fragmented",
            f"{method} mask falls into {parts} parts of similar size (more than {cfg.max_parts}): a texture, "
            f"a page or many objects, not one product: {ADVICE}",
        )
    fill = box_fill(fg)
    if parts > 1 and fill < cfg.min_parts_fill:
        raise MaskError(
            "mask_fragmented",
            f"{method} mask is {parts} parts scattered over the frame (they fill {fill:.0%} of their bounding "
            f"box, less than {cfg.min_parts_fill:.0%}): a texture, not one product: {ADVICE}",
        )


def check_separation(rgb: np.ndarray, fg: np.ndarray, method: str, cfg: MaskConfig) -> None:
    sep = separation(rgb, fg, ring(fg.shape, cfg.border_fraction))
    if sep < cfg.min_separation:
        raise MaskError(
            "mask_not_separable",
            f"{method} mask has the colours of the border (separation {sep:.2f} < {cfg.min_separation:.2f}): "
            f"a texture or pattern filling the frame, not an object on a background: {ADVICE}",
        )


def finished(fg: np.ndarray, size: tuple[int, int], method: str, cfg: MaskConfig) -> Mask:
    """The full-size mask of a working-size foreground that passed its backend's checks."""
    full = upsample(fg, size)
    return Mask(binary_image(full), method, check_coverage(full, method, cfg))
