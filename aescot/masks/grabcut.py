"""GrabCut (OpenCV) seeded from the border model: the classical mask for photos without a plain backdrop.

The border band is clustered (k-means in Lab); clusters holding a real share of it are the background's
colours. Band pixels of those colours are certain background, the band's other pixels (a product
touching the edge) are probable background, inside pixels that have the colour the border predicts
there are probable background too, and the rest of the inside is probable product. GrabCut then learns a
colour model of both and cuts along edges. Needs no weights; ``cv2`` is imported here only.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

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

METHOD = "grabcut"
CLUSTERS = 4
COMMON_SHARE = 0.08  # a border cluster with less than this share is a product touching the edge
MIN_TOLERANCE = 12.0  # Lab distance within which a pixel has a border colour


def border_colours(lab: np.ndarray, band: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The band's common colours (Lab cluster centres) and every pixel's distance to the nearest one."""
    import cv2

    samples = lab[band].astype(np.float32)
    k = min(CLUSTERS, len(samples))
    cv2.setRNGSeed(0)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1.0)
    _, labels, centres = cv2.kmeans(samples, k, None, criteria, 3, cv2.KMEANS_PP_CENTERS)
    share = np.bincount(labels.ravel(), minlength=k) / len(labels)
    common = centres[share >= COMMON_SHARE]
    dist = np.sqrt(((lab[..., None, :] - common[None, None]) ** 2).sum(axis=-1)).min(axis=-1)
    return common, dist


def interpolated_border(lab: np.ndarray, band: np.ndarray) -> np.ndarray:
    """The band's colours spread over the image by normalised Gaussian smoothing (sigma: a fifth of the
    longer side): at each pixel, the background colour its nearby border suggests."""
    import cv2

    sigma = 0.2 * max(band.shape)
    weight = band.astype(np.float32)
    num = cv2.GaussianBlur(lab * weight[..., None], (0, 0), sigma)
    den = cv2.GaussianBlur(weight, (0, 0), sigma)
    return num / np.maximum(den, 1e-6)[..., None]


def grabcut_foreground(rgb: np.ndarray, cfg: MaskConfig) -> tuple[np.ndarray, int]:
    import cv2

    h, w, _ = rgb.shape
    band = ring((h, w), cfg.border_fraction)
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    _, dist = border_colours(lab, band)
    tolerance = max(MIN_TOLERANCE, 2.0 * float(np.percentile(dist[band], 75)))
    like = dist < tolerance
    seed = np.full((h, w), cv2.GC_PR_FGD, np.uint8)
    # inside, a pixel with the colour the border predicts there (a smooth interpolation of the band's
    # colours) that is also close to one of the border's own colours is probably background: keeps a
    # graded wall out of the product, which GrabCut's colour models alone do not
    predicted = np.sqrt(((lab - interpolated_border(lab, band)) ** 2).sum(axis=-1)) < MIN_TOLERANCE
    seed[predicted & (dist < tolerance / 2)] = cv2.GC_PR_BGD
    seed[band] = cv2.GC_PR_BGD
    seed[band & like] = cv2.GC_BGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(
            np.ascontiguousarray(rgb[..., ::-1]), seed, None, bgd, fgd, cfg.grabcut_iterations,
            cv2.GC_INIT_WITH_MASK,
        )  # fmt: skip
    except cv2.error as exc:  # e.g. a single-colour image: no GMM can be fitted
        raise MaskError("mask_coverage", f"{METHOD}: nothing to separate ({exc.msg.strip()})") from exc
    fg = (seed == cv2.GC_FGD) | (seed == cv2.GC_PR_FGD)
    return keep_main_parts(fg)


def segment_grabcut(img: Image.Image, cfg: MaskConfig) -> Mask:
    rgb = work_copy(img, cfg.grabcut_side)
    fg, parts = grabcut_foreground(rgb, cfg)
    check_coverage(fg, METHOD, cfg)
    check_parts(fg, parts, METHOD, cfg)
    check_separation(rgb, fg, METHOD, cfg)
    return finished(fg, img.size, METHOD, cfg)
