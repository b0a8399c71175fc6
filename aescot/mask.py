"""Product masks: kept as the import path of :mod:`aescot.masks` (one module per backend there)."""

from aescot.masks import (
    Mask,
    MaskConfig,
    MaskError,
    alpha_mask,
    product_mask,
    segment,
    segment_grabcut,
    segment_model,
    segment_plain_background,
    user_mask,
)

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
