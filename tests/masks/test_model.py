"""The model mask backend through transformers' from_pretrained, on a tiny random SAM saved offline."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from aescot.errors import ConfigError
from aescot.mask import MaskConfig, MaskError, product_mask
from aescot.masks.model import MaskModelNotAvailable, load_model, model_masks, segment_model
from aescot.samples import render_product_shot
from tests.masks.tiny_sam import save_tiny_sam

# the random model's masks are noise: checks that would reject them are opened up where a mask must come out
ANY_MASK = {
    "min_coverage": 0,
    "max_coverage": 1,
    "max_parts": 10**6,
    "min_parts_fill": 0,
    "min_separation": 0,
}


@pytest.fixture(scope="module")
def tiny_sam(tmp_path_factory):
    return str(save_tiny_sam(tmp_path_factory.mktemp("tiny-sam")))


def test_heavy_libraries_are_imported_only_by_the_model_backend():
    code = "import sys, aescot.mask, aescot.masks; print(json.dumps([m for m in ('torch', 'transformers', 'cv2') if m in sys.modules]))"
    out = subprocess.run(
        [sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == []


def test_the_model_returns_candidate_masks_of_the_source_size(tiny_sam):
    img, _ = render_product_shot(0, 96)
    img = img.resize((120, 90))
    masks, scores = model_masks(img, MaskConfig(backend="model", model_id=tiny_sam, model_device="cpu"))
    assert masks.shape == (3, 90, 120) and masks.dtype == bool  # SAM's three granularities
    assert scores.shape == (3,) and np.isfinite(scores).all()
    again, _ = model_masks(img, MaskConfig(backend="model", model_id=tiny_sam, model_device="cpu"))
    assert np.array_equal(masks, again)  # eval mode, same weights: deterministic


def test_product_mask_with_the_model_backend_is_an_L_mask_of_the_source(tiny_sam):
    img, _ = render_product_shot(1, 80)
    cfg = MaskConfig(backend="model", model_id=tiny_sam, model_device="cpu", **ANY_MASK)
    before = load_model.cache_info().hits
    mask = product_mask(img, cfg)
    assert mask.method == "model" and mask.image.mode == "L" and mask.image.size == img.size
    assert set(np.unique(np.asarray(mask.image))) <= {0, 255}
    assert mask.coverage == pytest.approx((np.asarray(mask.image) > 127).mean())
    assert any(n.startswith("model_score_") for n in mask.notes)
    assert load_model.cache_info().hits > before  # loaded once per process, not per image


def test_model_masks_still_pass_the_checks(tiny_sam):
    # with the default checks a noise mask is refused like any other bad mask, with a reason
    img = Image.new("RGB", (96, 96), (128, 128, 128))
    cfg = MaskConfig(
        backend="model", model_id=tiny_sam, model_device="cpu", max_coverage=0.0001, min_coverage=0
    )
    with pytest.raises(MaskError) as info:
        segment_model(img, cfg)
    assert info.value.reason == "mask_coverage" and "none of the model's 3 masks" in info.value.detail


def test_a_missing_model_fails_fast_with_a_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    img = Image.new("RGB", (64, 64))
    t0 = time.perf_counter()
    with pytest.raises(MaskModelNotAvailable, match="HF_HUB_OFFLINE") as err:
        product_mask(img, MaskConfig(backend="model", model_id="someorg/not-a-real-sam"))
    assert time.perf_counter() - t0 < 1.0 and isinstance(err.value, ConfigError)  # not a per-file reject
    assert "save_pretrained" in str(err.value)
    with pytest.raises(MaskModelNotAvailable, match="needs model_id"):
        product_mask(img, MaskConfig(backend="model"))
    with pytest.raises(MaskModelNotAvailable, match="no mask model folder"):
        product_mask(img, MaskConfig(backend="model", model_id=str(tmp_path / "nowhere" / "sam")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(MaskModelNotAvailable, match="config.json"):
        product_mask(img, MaskConfig(backend="model", model_id=str(tmp_path / "empty")))


def test_a_model_that_is_not_promptable_segmentation_is_refused(tmp_path):
    from transformers import BertConfig, BertModel

    folder = tmp_path / "bert"
    BertModel(
        BertConfig(
            vocab_size=16, hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8
        )
    ).save_pretrained(folder)
    with pytest.raises(MaskModelNotAvailable, match="SAM-family"):
        product_mask(
            Image.new("RGB", (64, 64)), MaskConfig(backend="model", model_id=str(folder), model_device="cpu")
        )
