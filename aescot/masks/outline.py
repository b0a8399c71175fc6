"""Drawing a mask so a person can see what "the product" was taken to be.

:func:`outlined` is the source with a thin outline of the mask drawn on it and nothing else changed
(for the labeling page's source photo); :func:`outline_image` is that outline alone on a transparent
RGBA layer (to lay over the source, e.g. on hover); :func:`overlay` is the source with the background
dimmed and the outline drawn (test artefacts, the photo bench).
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

OUTLINE_RGB = (255, 0, 255)  # magenta: rare in product photos, visible on white and on black


def edge(mask: Image.Image, width: int | None = None) -> np.ndarray:
    """The inner edge of the mask, ``width`` px thick (default: about 0.4% of the longer side, >= 1)."""
    fg = np.asarray(mask.convert("L")) > 127
    width = width or max(1, round(max(fg.shape) / 250))
    return fg & ~ndimage.binary_erosion(fg, iterations=width, border_value=0)


def outline_image(mask: Image.Image, width: int | None = None, rgb=OUTLINE_RGB) -> Image.Image:
    """A transparent RGBA image the size of ``mask`` with the mask's edge drawn in ``rgb``."""
    e = edge(mask, width)
    out = np.zeros((*e.shape, 4), np.uint8)
    out[e] = (*rgb, 255)
    return Image.fromarray(out, mode="RGBA")


def outlined(img: Image.Image, mask: Image.Image, width: int | None = None, rgb=OUTLINE_RGB) -> Image.Image:
    """``img`` (RGB) with the mask's edge drawn in ``rgb``; every other pixel is the source's own."""
    arr = np.asarray(img.convert("RGB")).copy()
    mask = mask if mask.size == img.size else mask.resize(img.size, Image.Resampling.NEAREST)
    arr[edge(mask, width)] = rgb
    return Image.fromarray(arr)


def overlay(img: Image.Image, mask: Image.Image | None, dim: float = 0.45) -> Image.Image:
    """``img`` with everything outside ``mask`` dimmed and the mask's edge drawn; no mask: dimmed all over."""
    arr = np.asarray(img.convert("RGB")).copy()
    if mask is None:
        return Image.fromarray((arr * dim).astype(np.uint8))
    mask = mask if mask.size == img.size else mask.resize(img.size, Image.Resampling.NEAREST)
    fg = np.asarray(mask.convert("L")) > 127
    arr[~fg] = (arr[~fg] * dim).astype(np.uint8)
    arr[edge(mask)] = OUTLINE_RGB
    return Image.fromarray(arr)
