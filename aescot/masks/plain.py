"""The plain-background model: product = pixels far from a background fitted to the image border.

Works for product shots on plain (white, grey, coloured, mildly graded) backgrounds. The background is
a plane per colour channel fitted to the border band (so a studio gradient is not taken for product),
with pixels that do not fit it (a product touching the edge) left out of the fit. A pixel counts as
product when it is clearly off that plane; a weaker difference counts too where it is connected to
clear product pixels and the border is uniform enough to trust it (a grey blister pack on a grey
backdrop: its pills are clear, its foil is only a few levels off).
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

from aescot.masks.base import (
    Mask,
    MaskConfig,
    MaskError,
    check_coverage,
    check_parts,
    check_separation,
    finished,
    keep_main_parts,
    ring,
    work_copy,
)

METHOD = "segmented"


def fitted_background(rgb: np.ndarray, band: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Per-channel plane ``a + b*x + c*y`` fitted to the border band (two passes, the second without the
    band's outliers): the plane, every pixel's colour distance from it, the 95th percentile of that
    distance on the band's inliers, and the share of the band that are inliers."""
    h, w, _ = rgb.shape
    ys, xs = np.nonzero(band)
    design = np.stack([np.ones(len(ys)), xs / w, ys / h], axis=1)
    pix = rgb[ys, xs].astype(np.float64)
    use = np.ones(len(ys), bool)
    for _ in range(2):
        coef, *_ = np.linalg.lstsq(design[use], pix[use], rcond=None)
        resid = np.sqrt(((pix - design @ coef) ** 2).sum(axis=1))
        use = resid <= max(3.0, 3.0 * float(np.median(resid)))
    spread = float(np.percentile(resid[use], 95)) if use.any() else float("inf")
    yy = (np.arange(h, dtype=np.float32) / h)[:, None, None]
    xx = (np.arange(w, dtype=np.float32) / w)[None, :, None]
    c = coef.astype(np.float32)
    plane = c[0] + xx * c[1] + yy * c[2]
    dist = np.sqrt(((rgb - plane) ** 2).sum(axis=2))
    return plane, dist, spread, float(use.mean())


def shadow_like(rgb: np.ndarray, plane: np.ndarray, tolerance: float) -> np.ndarray:
    """For pixels ``rgb`` (n, 3) over background colours ``plane`` (n, 3): a darker copy of the background
    there (the same colour scaled down), as a cast shadow is."""
    p = rgb.astype(np.float32)
    k = (p * plane).sum(axis=1) / np.maximum((plane * plane).sum(axis=1), 1e-6)
    off = np.sqrt(((p - k[:, None] * plane) ** 2).sum(axis=1))
    return (k < 0.99) & (k > 0.3) & (off <= tolerance)


def plain_foreground(rgb: np.ndarray, cfg: MaskConfig) -> tuple[np.ndarray, int, float]:
    """The kept foreground at working size, how many parts it has, and the border's spread."""
    band = ring(rgb.shape[:2], cfg.border_fraction)
    plane, dist, spread, _ = fitted_background(rgb, band)
    strong = dist > max(cfg.min_distance, 2.5 * spread)
    weak_threshold = max(cfg.weak_distance, 2.5 * spread)
    fg = strong
    if weak_threshold < cfg.min_distance and strong.any():
        # grow into weakly different pixels connected to clear ones, but not into a cast shadow's tail
        weak = (dist > weak_threshold) & ~strong
        ys, xs = np.nonzero(weak)
        weak[ys, xs] = ~shadow_like(rgb[ys, xs], plane[ys, xs], max(3.0, 2.5 * spread))
        labels, _ = ndimage.label(weak | strong)
        fg = strong | np.isin(labels, np.unique(labels[strong & (labels > 0)]))
    fg = ndimage.binary_opening(fg, iterations=1)
    return (*keep_main_parts(fg), spread)


def segment_plain_background(img: Image.Image, cfg: MaskConfig) -> Mask:
    rgb = work_copy(img, cfg.work_side)
    fg, parts, spread = plain_foreground(rgb, cfg)
    if spread > cfg.max_plain_spread:
        if parts > cfg.max_parts:  # a page or a texture says so even on a busy border
            check_parts(fg, parts, METHOD, cfg)
        # on a busy border the threshold (2.5x its spread) only keeps the most striking parts of a product
        raise MaskError(
            "mask_background_not_plain",
            f"{METHOD}: the border's colours spread {spread:.0f} around a plane (more than "
            f"{cfg.max_plain_spread:.0f}): not a plain backdrop",
        )
    check_parts(fg, parts, METHOD, cfg)
    check_coverage(fg, METHOD, cfg)
    check_separation(rgb, fg, METHOD, cfg)
    return finished(fg, img.size, METHOD, cfg)
