import random

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from aescot.generate.base import GenerationError, SourceImage
from aescot.generate.synthetic import DIMENSIONS, VARIANTS, SyntheticConfig, SyntheticGenerator
from aescot.samples import render_product_shot


@pytest.fixture
def source():
    img, mask = render_product_shot(7, 128)
    return SourceImage("ab" * 32, img, mask, "Calmora tablets")


def _seed_for(kind: str, variant: str) -> int:
    """A seed whose first draw picks ``variant`` (the generator draws the variant first)."""
    return next(s for s in range(1000) if random.Random(s).choice(VARIANTS[kind]) == variant)


def test_default_plan_is_one_clean_and_three_distinct_dimensions(source):
    gen = SyntheticGenerator()
    plan = gen.plan(source.source_id)
    assert plan[0] == "clean" and len(set(plan[1:])) == 3 and set(plan[1:]) <= set(DIMENSIONS)
    assert plan == gen.plan(source.source_id)
    plans = {tuple(gen.plan(f"{i:064x}")) for i in range(30)}
    assert len(plans) > 1  # which dimension is left out varies by source


def test_same_seed_same_pixels_and_known_labels(source):
    gen = SyntheticGenerator()
    a = gen.generate(source, [0, 1, 2, 3], [11, 12, 13, 14])
    b = gen.generate(source, [0, 1, 2, 3], [11, 12, 13, 14])
    assert all(np.array_equal(np.asarray(x.image), np.asarray(y.image)) for x, y in zip(a, b))
    assert [x.params for x in a] == [y.params for y in b]
    plan = gen.plan(source.source_id)
    assert a[0].known_acceptable is True and a[0].known_dimensions == []
    for g, kind in zip(a[1:], plan[1:]):
        assert g.known_acceptable is False and g.known_dimensions == [kind] and g.params["kind"] == kind
    assert all(g.image.size == source.image.size and g.image.mode == "RGB" for g in a)
    c = gen.generate(source, [0], [99])[0]
    assert not np.array_equal(np.asarray(c.image), np.asarray(a[0].image))


@pytest.mark.parametrize("kind,variant", [(k, v) for k in VARIANTS for v in VARIANTS[k]])
def test_every_variant_renders_and_differs_from_clean(source, kind, variant):
    gen = SyntheticGenerator(
        SyntheticConfig(
            plan=[
                "clean",
                kind if kind != "clean" else "lighting_shadow",
                "placement_layout",
                "appearance_deformation",
            ]
        )
    )
    seed = _seed_for(kind, variant)
    slot = 0 if kind == "clean" else 1
    out = gen.generate(source, [slot], [seed])[0]
    assert out.params["variant"] == variant
    if kind != "clean":
        clean = SyntheticGenerator(SyntheticConfig(plan=["clean"] * 1 + ["placement_layout"] * 3))
        ref = clean.generate(source, [0], [seed])[0]
        diff = np.abs(np.asarray(out.image, np.int16) - np.asarray(ref.image, np.int16)).mean()
        assert diff > 0.5, (
            f"{kind}/{variant} is indistinguishable from the clean composite with the same seed"
        )


def test_deformation_changes_the_product_shape(source):
    seed = _seed_for("appearance_deformation", "wave")
    gen = SyntheticGenerator(
        SyntheticConfig(plan=["clean", "appearance_deformation", "lighting_shadow", "placement_layout"])
    )
    warped = gen.generate(source, [1], [seed])[0]
    assert warped.params["warp"]["amplitude"] >= 0.06


def test_bad_plans_and_empty_masks_are_refused(source):
    with pytest.raises(ValidationError, match="at most one 'clean'"):
        SyntheticConfig(plan=["clean", "clean", "lighting_shadow", "placement_layout"])
    with pytest.raises(ValidationError, match="4"):
        SyntheticConfig(plan=["clean"])
    empty = SourceImage(source.source_id, source.image, Image.new("L", source.image.size, 0))
    with pytest.raises(GenerationError, match="empty_mask"):
        SyntheticGenerator().generate(empty, [0], [1])
