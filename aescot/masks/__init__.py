"""Product (foreground) masks: a user-supplied mask wins, then an informative alpha channel, then a
segmentation backend.

Backends (``MaskConfig.backend``), one module each:

* ``plain`` (:mod:`aescot.masks.plain`): product shots on plain, mildly graded backdrops. No weights.
* ``grabcut`` (:mod:`aescot.masks.grabcut`): OpenCV GrabCut seeded from the border, for photos whose
  background is not plain. No weights.
* ``auto`` (the default): ``plain``, and ``grabcut`` when the plain model fails its checks.
* ``model`` (:mod:`aescot.masks.model`): a SAM-family model loaded by id with ``from_pretrained``.

Every mask passes the same checks (:mod:`aescot.masks.base`); a failure is a :class:`MaskError` whose
``reason`` says why (``mask_coverage``, ``mask_fragmented``, ``mask_not_separable``): textures,
pages and star fields are rejected, not given a made-up product.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from aescot.masks.base import ADVICE, Mask, MaskConfig, MaskError, binary_image, check_coverage
from aescot.masks.grabcut import segment_grabcut
from aescot.masks.plain import segment_plain_background

__all__ = [
    "Mask",
    "MaskConfig",
    "MaskError",
    "alpha_mask",
    "product_mask",
    "segment",
    "segment_grabcut",
    "segment_model",
    "segment_plain_background",
    "user_mask",
]

# the more telling reason wins when every automatic backend failed
_REASON_RANK = {
    "mask_fragmented": 0,
    "mask_not_separable": 1,
    "mask_coverage": 2,
    "mask_background_not_plain": 3,
}


def user_mask(mask_img: Image.Image, size: tuple[int, int], cfg: MaskConfig) -> Mask:
    """A mask the user sent: any mode, resized (nearest) to the source, thresholded at 50%."""
    m = mask_img.convert("L")
    if m.size != size:
        m = m.resize(size, Image.Resampling.NEAREST)
    fg = np.asarray(m) > 127
    return Mask(binary_image(fg), "user", check_coverage(fg, "user", cfg))


def alpha_mask(img: Image.Image, cfg: MaskConfig) -> Mask:
    fg = np.asarray(img.getchannel("A")) > 127
    return Mask(binary_image(fg), "alpha", check_coverage(fg, "alpha", cfg))


def segment_model(img: Image.Image, cfg: MaskConfig) -> Mask:
    from aescot.masks.model import segment_model as run

    return run(img, cfg)


def _auto(img: Image.Image, cfg: MaskConfig) -> Mask:
    try:
        return segment_plain_background(img, cfg)
    except MaskError as plain:
        try:
            mask = segment_grabcut(img, cfg)
        except MaskError as cut:
            worst = min((plain, cut), key=lambda e: _REASON_RANK.get(e.reason, 9))
            raise MaskError(
                worst.reason,
                f"{_strip(plain.detail)}; then {_strip(cut.detail)}: {ADVICE}",
            ) from cut
        mask.notes.append(f"plain_background_failed:{plain.reason}")
        return mask


def _strip(detail: str) -> str:
    return detail.removesuffix(f": {ADVICE}")


_BACKENDS = {
    "auto": _auto,
    "plain": segment_plain_background,
    "grabcut": segment_grabcut,
    "model": segment_model,
}


def segment(img: Image.Image, cfg: MaskConfig) -> Mask:
    """The configured segmentation backend on ``img`` (its alpha channel, if any, is ignored)."""
    return _BACKENDS[cfg.backend](img, cfg)


def product_mask(img: Image.Image, cfg: MaskConfig | None = None, user: Image.Image | None = None) -> Mask:
    """The mask for a source: user-supplied, else alpha (RGBA), else segmentation.

    An alpha channel that keeps (nearly) every pixel says nothing about the product (a silhouette
    saved with an opaque alpha): the colours are segmented instead, on white where it is transparent.
    """
    cfg = cfg or MaskConfig()
    if user is not None:
        return user_mask(user, img.size, cfg)
    if img.mode == "RGBA":
        if (np.asarray(img.getchannel("A")) > 127).mean() <= cfg.max_coverage:
            return alpha_mask(img, cfg)  # too little coverage is an error: the alpha says nothing is there
        flat = Image.new("RGBA", img.size, (255, 255, 255, 255))
        flat.alpha_composite(img)
        mask = segment(flat.convert("RGB"), cfg)
        mask.notes.append("alpha_opaque")
        return mask
    return segment(img, cfg)
