"""Masks on real photographs: scikit-image's bundled photos (tests/masks/photos.py labels them).

Overlays and the table go to ``$AESCOT_TEST_ARTEFACTS/masks/`` (kept by CI) so a person can check
what was taken to be the product; without the variable they go to the test's tmp dir.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.masks.photos import (
    FRAME_FILLING,
    MAIN_OBJECT,
    NO_MAIN_OBJECT,
    TOO_SMALL,
    export_photos,
    mask_photo,
    write_overlays,
)

pytestmark = pytest.mark.slow  # builds a small scikit-image venv once per machine (~10 s), then ~20 s


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    _, paths = export_photos(tmp_path_factory.mktemp("skimage-photos"))
    out = {p.stem: mask_photo(p) for p in paths}
    folder = Path(os.environ.get("AESCOT_TEST_ARTEFACTS") or tmp_path_factory.mktemp("artefacts")) / "masks"
    write_overlays(list(out.values()), folder)
    return out


def test_every_bundled_photo_is_labelled(rows):
    labelled = set(MAIN_OBJECT) | set(FRAME_FILLING) | set(NO_MAIN_OBJECT) | set(TOO_SMALL)
    assert set(rows) == labelled, "a scikit-image release added or dropped a photo: look at it and label it"


def test_nearly_every_photo_with_one_main_object_gets_a_mask_that_covers_it(rows):
    missed = {
        n: (r.reason, r.box_iou) for n, r in rows.items() if n in MAIN_OBJECT and not (r.box_iou or 0) >= 0.5
    }
    assert len(missed) <= 1, f"masks missing or off their object: {missed}"


def test_the_silhouette_and_the_logo_get_masks_despite_their_opaque_alpha(rows):
    # both are RGBA files whose alpha keeps (nearly) every pixel: the colours are segmented instead
    assert rows["horse"].accepted and "alpha_opaque" in rows["horse"].detail
    assert rows["logo"].accepted  # its alpha is all 255, so normalisation already dropped it
    assert rows["horse"].box_iou > 0.8 and rows["logo"].box_iou > 0.8


def test_textures_pages_and_crowds_are_rejected_with_their_reason(rows):
    for name, kind in NO_MAIN_OBJECT.items():
        r = rows[name]
        assert not r.accepted, f"{name} ({kind}) got a {r.reason} mask covering {r.coverage:.1%}"
        assert r.reason in {"mask_fragmented", "mask_not_separable", "mask_coverage"}
        assert "supply a mask file" in r.detail
    assert rows["page"].reason == rows["text"].reason == "mask_fragmented"
    assert rows["coins"].reason == "mask_fragmented" and "parts" in rows["coins"].detail
    assert rows["chessboard_GRAY"].reason == "mask_not_separable"
    for name in TOO_SMALL:
        assert rows[name].reason == "too_small"
