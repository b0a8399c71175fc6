"""Product (foreground) masks: a user-supplied mask wins, then the alpha channel, then a
simple segmentation for product shots on plain backgrounds.

A mask is an 8-bit L image, 255 on the product and 0 elsewhere, the size of the source.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field
from scipy import ndimage

from aescot.errors import InputError


class MaskConfig(BaseModel):
    """Limits and knobs of mask extraction."""

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
    work_side: int = Field(
        384, ge=64, description="segment on a copy at most this large, then upsample the mask"
    )


class MaskError(InputError, ValueError):
    """No usable mask; ``reason`` is a stable code."""

    def __init__(self, reason: str, detail: str):
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}")


@dataclass
class Mask:
    image: Image.Image  # L, 0/255
    method: str  # user | alpha | segmented
    coverage: float


def _binary(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(np.where(arr, 255, 0).astype(np.uint8), mode="L")


def _checked(fg: np.ndarray, method: str, cfg: MaskConfig) -> Mask:
    coverage = float(fg.mean())
    if not cfg.min_coverage <= coverage <= cfg.max_coverage:
        raise MaskError(
            "mask_coverage",
            f"{method} mask covers {coverage:.1%} of the image, outside "
            f"[{cfg.min_coverage:.0%}, {cfg.max_coverage:.0%}]: supply a mask file for this source",
        )
    return Mask(_binary(fg), method, coverage)


def user_mask(mask_img: Image.Image, size: tuple[int, int], cfg: MaskConfig) -> Mask:
    """A mask the user sent: any mode, resized (nearest) to the source, thresholded at 50%."""
    m = mask_img.convert("L")
    if m.size != size:
        m = m.resize(size, Image.Resampling.NEAREST)
    return _checked(np.asarray(m) > 127, "user", cfg)


def alpha_mask(img: Image.Image, cfg: MaskConfig) -> Mask:
    return _checked(np.asarray(img.getchannel("A")) > 127, "alpha", cfg)


def segment_plain_background(img: Image.Image, cfg: MaskConfig) -> Mask:
    """Foreground = pixels far from the border's median colour, cleaned up morphologically.

    Works for product shots on plain (white, grey, coloured, mildly graded) backgrounds.
    """
    work = img.convert("RGB")
    if max(work.size) > cfg.work_side:
        work.thumbnail((cfg.work_side, cfg.work_side), Image.Resampling.BILINEAR)
    rgb = np.asarray(work, dtype=np.float32)
    h, w, _ = rgb.shape
    b = max(1, round(min(h, w) * cfg.border_fraction))
    border = np.concatenate(
        [
            rgb[:b].reshape(-1, 3),
            rgb[-b:].reshape(-1, 3),
            rgb[:, :b].reshape(-1, 3),
            rgb[:, -b:].reshape(-1, 3),
        ]
    )
    bg = np.median(border, axis=0)
    spread = float(np.percentile(np.sqrt(((border - bg) ** 2).sum(axis=1)), 95))
    threshold = max(cfg.min_distance, 2.5 * spread)
    fg = ((rgb - bg) ** 2).sum(axis=2) > threshold**2
    fg = ndimage.binary_opening(fg, iterations=1)
    fg = ndimage.binary_fill_holes(fg)
    labels, n = ndimage.label(fg)
    if n > 1:  # keep components of at least 10% of the largest one (drops specks, keeps multi-packs)
        sizes = ndimage.sum(fg, labels, index=np.arange(1, n + 1))
        keep = np.flatnonzero(sizes >= 0.1 * sizes.max()) + 1
        fg = np.isin(labels, keep)
    if work.size != img.size:
        up = _binary(fg).resize(img.size, Image.Resampling.BILINEAR)
        fg = np.asarray(up) > 127
    return _checked(fg, "segmented", cfg)


def product_mask(img: Image.Image, cfg: MaskConfig | None = None, user: Image.Image | None = None) -> Mask:
    """The mask for a source: user-supplied, else alpha (RGBA), else segmentation."""
    cfg = cfg or MaskConfig()
    if user is not None:
        return user_mask(user, img.size, cfg)
    if img.mode == "RGBA":
        return alpha_mask(img, cfg)
    return segment_plain_background(img, cfg)
