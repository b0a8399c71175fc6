import random

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from aescot.generate.base import GenerationError, SourceImage
from aescot.generate.synthetic import (
    DIMENSIONS,
    VARIANTS,
    SlotSpec,
    SyntheticConfig,
    SyntheticGenerator,
    default_plan,
)
from aescot.samples import render_product_shot


@pytest.fixture
def source():
    img, mask = render_product_shot(7, 128)
    return SourceImage("ab" * 32, img, mask, "Calmora tablets")


def _seed_for(kind: str, variant: str) -> int:
    """A seed whose first draw picks ``variant`` (the generator draws the variant first)."""
    return next(s for s in range(1000) if random.Random(s).choice(VARIANTS[kind]) == variant)


def test_default_plans_vary_acceptable_count_dimensions_and_severity(source):
    """Issue 17: 0-4 acceptable candidates per item, one or more dimensions per flawed one, subtle and
    obvious defects (the old plan was always one clean + three single-dimension defects)."""
    gen = SyntheticGenerator()
    assert gen.plan(source.source_id) == gen.plan(source.source_id)
    plans = [default_plan(f"{i:064x}") for i in range(200)]
    clean_counts = {sum(s.clean for s in p) for p in plans}
    assert clean_counts == {0, 1, 2, 3, 4}
    flawed = [s for p in plans for s in p if not s.clean]
    assert {len(s.dimensions) for s in flawed} >= {1, 2}
    assert {s.severity for s in flawed} == {"subtle", "obvious"}
    assert {d for s in flawed for d in s.dimensions} == set(DIMENSIONS)
    assert len({tuple(s.text() for s in p) for p in plans}) > 50
    for p in plans[:20]:  # the text form round-trips
        assert [SlotSpec.parse(s.text()) for s in p] == p


def test_same_seed_same_pixels_and_planted_labels(source):
    gen = SyntheticGenerator()
    a = gen.generate(source, [0, 1, 2, 3], [11, 12, 13, 14])
    b = gen.generate(source, [0, 1, 2, 3], [11, 12, 13, 14])
    assert all(np.array_equal(np.asarray(x.image), np.asarray(y.image)) for x, y in zip(a, b))
    assert [x.params for x in a] == [y.params for y in b]
    specs = gen.slot_specs(source.source_id)
    for g, spec in zip(a, specs):
        assert g.known_acceptable is spec.clean and g.known_dimensions == list(spec.dimensions)
        assert g.params["kind"] == spec.kind and g.params["dimensions"] == list(spec.dimensions)
        assert g.params["quality"] in range(1, 6)
    assert sum(g.params["planted_best"] for g in a) == (1 if any(s.clean for s in specs) else 0)
    assert all(g.image.size == source.image.size and g.image.mode == "RGB" for g in a)
    c = gen.generate(source, [0], [99])[0]
    assert not np.array_equal(np.asarray(c.image), np.asarray(a[0].image))


def test_several_dimensions_and_severity_are_planted_and_scored(source):
    plan = ["clean", "clean", "lighting_shadow+placement_layout", "appearance_deformation/subtle"]
    out = SyntheticGenerator(SyntheticConfig(plan=plan)).generate(source, [0, 1, 2, 3], [5, 6, 7, 8])
    assert [g.known_acceptable for g in out] == [True, True, False, False]
    assert out[2].known_dimensions == ["lighting_shadow", "placement_layout"]
    assert set(out[2].params["variants"]) == {"lighting_shadow", "placement_layout"}
    assert (out[3].params["severity"], out[2].params["severity"]) == ("subtle", "obvious")
    assert [g.params["quality"] for g in out] == [5, 4, 1, 3]
    assert [g.params["planted_best"] for g in out] == [True, False, False, False]


def test_subtle_defects_are_smaller_than_obvious_ones(source):
    seed = _seed_for("appearance_deformation", "wave")
    plan = ["clean", "appearance_deformation", "appearance_deformation/subtle", "clean"]
    gen = SyntheticGenerator(SyntheticConfig(plan=plan))
    obvious, subtle = gen.generate(source, [1, 2], [seed, seed])
    assert subtle.params["warp"]["amplitude"] < 0.04 and obvious.params["warp"]["amplitude"] >= 0.06
    assert subtle.params["severity"] == "subtle" and obvious.params["severity"] == "obvious"


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
    # several clean slots are now allowed (0-4 acceptable candidates); malformed entries are not
    SyntheticConfig(plan=["clean", "clean", "lighting_shadow", "placement_layout"])
    with pytest.raises(ValidationError, match="4"):
        SyntheticConfig(plan=["clean"])
    with pytest.raises(ValidationError, match="dimensions joined"):
        SyntheticConfig(plan=["clean", "glare", "clean", "clean"])
    with pytest.raises(ValidationError, match="severity"):
        SyntheticConfig(plan=["clean", "lighting_shadow/faint", "clean", "clean"])
    empty = SourceImage(source.source_id, source.image, Image.new("L", source.image.size, 0))
    with pytest.raises(GenerationError, match="empty_mask"):
        SyntheticGenerator().generate(empty, [0], [1])
