"""What an annotator is shown of a mask: a thin outline on the source, or the outline alone."""

import numpy as np
from PIL import Image, ImageDraw

from aescot.masks.outline import OUTLINE_RGB, edge, outline_image, outlined, overlay


def _disc(size=200):
    img = Image.new("RGB", (size, size), (240, 240, 240))
    ImageDraw.Draw(img).ellipse([50, 40, 150, 160], fill=(30, 90, 160))
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).ellipse([50, 40, 150, 160], fill=255)
    return img, mask


def test_the_outline_is_thin_and_lies_on_the_mask_edge():
    img, mask = _disc()
    e = edge(mask)
    fg = np.asarray(mask) > 127
    assert e.any() and not (e & ~fg).any()  # inside the mask, on its border
    assert e.sum() < 0.1 * fg.sum()  # a line, not a fill
    out = np.asarray(outlined(img, mask))
    src = np.asarray(img)
    assert (out[e] == OUTLINE_RGB).all() and np.array_equal(out[~e], src[~e])  # nothing else changes


def test_the_outline_layer_is_transparent_off_the_edge_and_masks_of_another_size_are_fitted():
    img, mask = _disc()
    layer = np.asarray(outline_image(mask))
    assert layer.shape == (200, 200, 4) and (layer[..., 3] > 0).sum() == edge(mask).sum()
    small = mask.resize((100, 100), Image.Resampling.NEAREST)
    assert outlined(img, small).size == img.size
    dimmed = np.asarray(overlay(img, mask))
    assert dimmed[5, 5].sum() < np.asarray(img)[5, 5].sum() * 0.5  # the background is dimmed
    assert np.asarray(overlay(img, None)).max() < 240  # no mask: all dimmed
