"""The source as the labeling page shows it: the photo with its mask outlined, drawn once per source,
the plain photo when there is no mask (no sources row, its mask file gone, an empty mask)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from aescot.labelstudio.labeling import OUTLINE_KEY, SOURCE_KEY, SOURCE_WIDTH_PX
from aescot.labelstudio.mapping import task_data
from aescot.labelstudio.outlines import OUTLINES_TABLE, draw, outline_keys, outline_width
from aescot.masks.outline import OUTLINE_RGB, edge
from tests.labelstudio.helpers import add_source, make_items, product_mask_png


def _image(store, key) -> np.ndarray:
    with Image.open(io.BytesIO(store.read_bytes(key))) as img:
        return np.asarray(img.convert("RGBA" if img.mode == "RGBA" else "RGB"))


def test_a_source_with_a_mask_is_shown_outlined_and_one_without_as_the_plain_photo(store):
    masked, plain = make_items(store, 2, image_pool=2, size=256)
    add_source(store, masked)
    keys, drawn = outline_keys(store, [masked, plain])
    assert drawn == 1 and set(keys) == {masked["source_id"]}
    shown = _image(store, keys[masked["source_id"]])
    photo = _image(store, masked["source_image_key"])
    line = edge(product_mask_png(256), outline_width(256))
    assert line.sum() > 100
    assert (shown[line] == OUTLINE_RGB).all()  # the outline, on the mask's edge
    assert np.array_equal(shown[~line], photo[~line])  # every other pixel is the photo's

    refs = f"local:{store.root}/images", store.local_path(".")
    with_outline = task_data(masked, store, *refs, keys.get(masked["source_id"]))
    without = task_data(plain, store, *refs, keys.get(plain["source_id"]))
    assert with_outline[OUTLINE_KEY].endswith(keys[masked["source_id"]])
    assert with_outline[SOURCE_KEY].endswith(masked["source_image_key"])
    assert without[OUTLINE_KEY] == without[SOURCE_KEY]  # never a missing or broken picture


def test_each_source_is_drawn_once_and_again_only_when_its_mask_or_copy_changes(store):
    first = make_items(store, 1, image_pool=1, size=256)[0]
    add_source(store, first)
    keys, drawn = outline_keys(store, [first])
    made = store.read(OUTLINES_TABLE.name)[0]["made_at"]
    # another item of the same source (other candidates), and the same item again: read, not drawn
    other = {**first, "item_id": "f" * 64}
    again, drawn_again = outline_keys(store, [first, other])
    assert (drawn, drawn_again, again) == (1, 0, keys)
    assert store.read(OUTLINES_TABLE.name)[0]["made_at"] == made
    # a new mask for the source: drawn again, on the new edge
    smaller = product_mask_png(256, (96, 96, 160, 160))
    add_source(store, first, smaller)
    redrawn, n = outline_keys(store, [first])
    assert n == 1 and redrawn != keys
    assert (
        _image(store, redrawn[first["source_id"]])[edge(smaller, outline_width(256))] == OUTLINE_RGB
    ).all()
    # the drawn copy deleted from the store: drawn again when images are checked
    store.fs.rm(store._full(redrawn[first["source_id"]]))
    assert outline_keys(store, [first], check=True) == (redrawn, 1)


def test_a_mask_file_gone_or_empty_falls_back_to_the_plain_photo(store):
    gone, empty = make_items(store, 2, image_pool=2, size=64)
    row = add_source(store, gone)
    store.fs.rm(store._full(row["mask_key"]))
    add_source(store, empty, Image.new("L", (64, 64), 0))
    keys, drawn = outline_keys(store, [gone, empty])
    assert keys == {} and drawn == 1  # the empty mask is recorded (nothing to draw), the lost one is not
    (rec,) = store.read(OUTLINES_TABLE.name)
    assert (rec["source_id"], rec["outline_key"]) == (empty["source_id"], None)


def test_the_outline_is_two_css_pixels_on_the_page_and_a_transparent_photo_stays_transparent():
    assert outline_width(SOURCE_WIDTH_PX) == 2 and outline_width(1800) == 20 and outline_width(60) == 1
    photo = Image.new("RGBA", (200, 200), (10, 20, 30, 0))
    mask = product_mask_png(200)
    out = np.asarray(draw(photo, mask))
    line = edge(mask, outline_width(200))
    assert out.shape == (200, 200, 4)
    assert (out[line] == (*OUTLINE_RGB, 255)).all() and (out[~line][:, 3] == 0).all()
    assert draw(photo.convert("RGB"), mask.resize((50, 50))).size == (200, 200)  # a mask of another size fits
