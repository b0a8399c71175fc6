import json
import shutil
import time

import numpy as np
import pytest
from PIL import Image

from aescot.generate.base import SourceImage
from aescot.generate.diffusion import (
    DiffusersConfig,
    DiffusersGenerator,
    ModelNotAvailable,
    check_model_available,
    load_inpaint_pipeline,
)
from aescot.samples import render_product_shot


@pytest.fixture
def source():
    img, mask = render_product_shot(3, 128)
    return SourceImage("cd" * 32, img, mask, "Dolvex syrup")


def _gen(folder, **kw) -> DiffusersGenerator:
    return DiffusersGenerator(DiffusersConfig(model=str(folder), size=64, steps=2, **kw))


def _px(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.int16)


def test_four_candidates_reproducible_by_seed_with_the_product_kept(tiny_pipeline_dir, source):
    gen = _gen(tiny_pipeline_dir)
    a = gen.generate(source, [0, 1, 2, 3], [1, 2, 3, 4])
    assert (
        type(gen.pipe).__name__ == "StableDiffusionInpaintPipeline"
    )  # loaded through AutoPipelineForInpainting
    assert len(a) == 4 and all(g.image.size == (64, 64) for g in a)
    b = gen.generate(source, [0, 1, 2, 3], [1, 2, 3, 4])
    assert all(np.array_equal(_px(x.image), _px(y.image)) for x, y in zip(a, b))  # same seeds: same pixels
    c = gen.generate(source, [0, 1, 2, 3], [5, 6, 7, 8])
    assert all(np.abs(_px(x.image) - _px(y.image)).mean() > 1 for x, y in zip(a, c))  # new seeds: new images
    # the product region is the source's, unchanged; the background is regenerated
    init, _, keep = gen._inputs(source)
    product = np.asarray(keep) > 127
    for g in a:
        assert np.array_equal(_px(g.image)[product], _px(init)[product])
        assert np.abs(_px(g.image)[~product] - _px(init)[~product]).mean() > 5
        assert (
            g.params["steps"] == 2
            and g.params["batch_seeds"] == [1, 2, 3, 4]
            and g.params["dtype"] == "float32"
        )
    assert json.dumps(a[0].params)  # params are plain JSON


def test_outpaint_extends_the_canvas_and_keeps_the_source(tiny_pipeline_dir, source):
    gen = _gen(tiny_pipeline_dir, mode="outpaint", outpaint_aspect=1.5)
    out = gen.generate(source, [0, 1], [1, 2])
    w, h = out[0].image.size
    assert w > h and w % 8 == 0 and h % 8 == 0
    init, _repaint, keep = gen._inputs(source)
    kept = np.asarray(keep) > 127
    assert 0.4 < kept.mean() < 0.9
    assert all(np.array_equal(_px(g.image)[kept], _px(init)[kept]) for g in out)


def test_missing_model_offline_fails_fast_with_a_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    t0 = time.perf_counter()
    with pytest.raises(ModelNotAvailable, match="HF_HUB_OFFLINE") as err:
        _gen("someorg/not-a-real-inpainting-model").generate(
            SourceImage("ef" * 32, Image.new("RGB", (64, 64)), Image.new("L", (64, 64), 255)), [0], [1]
        )
    assert time.perf_counter() - t0 < 1.0
    assert "local folder" in str(err.value)
    with pytest.raises(ModelNotAvailable, match="no model folder"):
        check_model_available(str(tmp_path / "nowhere" / "model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotAvailable, match="model_index.json"):
        check_model_available(str(tmp_path / "empty"))


def test_broken_tiny_tokenizer_is_refused(tiny_pipeline_dir, tmp_path):
    """The offline trap: a tokenizer that loads with a couple of tokens and no error."""
    broken = tmp_path / "broken"
    shutil.copytree(tiny_pipeline_dir, broken)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    (broken / "tokenizer" / "vocab.json").write_text(json.dumps(vocab))
    (broken / "tokenizer" / "merges.txt").write_text("#version: 0.2\n")
    for extra in ("tokenizer.json",):
        (broken / "tokenizer" / extra).unlink(missing_ok=True)
    with pytest.raises(ModelNotAvailable, match="loaded with only 2 tokens"):
        load_inpaint_pipeline(str(broken), "cpu", "float32")
