import numpy as np
import pytest
from PIL import Image, ImageDraw

from aescot.mask import MaskConfig, MaskError, product_mask
from aescot.samples import KINDS, render_product_shot


def iou(a: Image.Image, b: Image.Image) -> float:
    x, y = np.asarray(a) > 127, np.asarray(b) > 127
    return float((x & y).sum() / (x | y).sum())


@pytest.mark.parametrize("seed", [0, 1, 3, 4, 5])  # box, bottle, tube... on plain backgrounds
def test_segmentation_finds_the_product_on_a_plain_background(seed):
    img, truth = render_product_shot(seed, 192)
    mask = product_mask(img)
    assert mask.method == "segmented"
    assert iou(mask.image, truth) > 0.7  # the soft shadow is the main difference


def test_segmentation_finds_the_blister_pack_too():
    # a grey blister on a grey backdrop: the foil is ~12 RGB levels off the backdrop, below the 18 that
    # count as product on their own; it is grown from its clear pills (hysteresis), not from the shadow
    img, truth = render_product_shot(2, 192)
    mask = product_mask(img)
    assert mask.method == "segmented" and iou(mask.image, truth) >= 0.8


def test_every_render_kind_gets_its_mask_over_many_seeds():
    scores = {k: [] for k in KINDS}
    for seed in range(24):
        img, truth = render_product_shot(seed, 160)
        scores[KINDS[seed % len(KINDS)]].append(iou(product_mask(img).image, truth))
    assert min(min(v) for v in scores.values()) > 0.72, {k: round(min(v), 2) for k, v in scores.items()}


def cluttered_scene(seed: int, size: int = 192) -> tuple[Image.Image, Image.Image]:
    """A rendered product on a busy background: a graded wall, boxes on a shelf along the top edge,
    a noisy wooden floor along the bottom: no plain backdrop."""
    img, truth = render_product_shot(seed, size)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    wall = np.stack([90 + 60 * xx / size, 120 + 0 * xx, 160 - 40 * yy / size], -1)
    floor = np.array([120.0, 85.0, 55.0]) + rng.normal(0, 12, (size, size, 1))
    bg = np.where((yy > size * 0.7)[..., None], floor, wall)
    for _ in range(4):
        x0 = int(rng.uniform(0, size - 40))
        bg[: int(size * 0.15), x0 : x0 + 30] = rng.uniform(40, 220, 3)
    out = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    out.paste(img, (0, 0), truth)
    return out, truth


def test_a_product_on_a_busy_background_falls_back_to_grabcut():
    scores = []
    for seed in range(8):
        img, truth = cluttered_scene(seed)
        mask = product_mask(img)
        assert mask.method == "grabcut" and mask.notes[0].startswith("plain_background_failed:")
        scores.append(iou(mask.image, truth))
    assert sorted(scores)[1] > 0.7, [round(s, 2) for s in scores]  # all but the worst one
    with pytest.raises(MaskError) as info:  # the plain model alone declines instead of guessing
        product_mask(cluttered_scene(0)[0], MaskConfig(backend="plain"))
    assert info.value.reason == "mask_background_not_plain"


def test_grabcut_alone_also_handles_plain_backgrounds():
    img, truth = render_product_shot(0, 192)
    mask = product_mask(img, MaskConfig(backend="grabcut"))
    assert mask.method == "grabcut" and iou(mask.image, truth) > 0.7


def test_alpha_channel_wins_over_segmentation_and_user_mask_wins_over_both():
    img, truth = render_product_shot(0, 128)
    rgba = img.convert("RGBA")
    rgba.putalpha(truth)
    assert product_mask(rgba).method == "alpha" and iou(product_mask(rgba).image, truth) == 1.0
    user = Image.new("L", (64, 64), 0)
    user.paste(255, (10, 10, 40, 40))
    got = product_mask(rgba, user=user)
    assert got.method == "user" and got.image.size == (128, 128)


def test_an_opaque_alpha_channel_is_passed_over_for_the_colours():
    # a black silhouette on white saved with an alpha that keeps every pixel but a few
    img = Image.new("RGB", (160, 160), (255, 255, 255))
    ImageDraw.Draw(img).ellipse([40, 30, 120, 140], fill=(0, 0, 0))
    rgba = img.convert("RGBA")
    rgba.putpixel((0, 0), (255, 255, 255, 110))
    mask = product_mask(rgba)
    assert mask.method == "segmented" and "alpha_opaque" in mask.notes
    truth = Image.new("L", (160, 160), 0)
    ImageDraw.Draw(truth).ellipse([40, 30, 120, 140], fill=255)
    assert iou(mask.image, truth) > 0.95
    clear = Image.new("RGBA", (64, 64), (0, 0, 0, 0))  # a transparent alpha does say something: no product
    with pytest.raises(MaskError, match="alpha mask covers 0.0%"):
        product_mask(clear)


def test_no_foreground_is_an_error_with_advice():
    with pytest.raises(MaskError) as info:
        product_mask(Image.new("RGB", (128, 128), (240, 240, 240)))
    assert info.value.reason == "mask_coverage" and "supply a mask file" in info.value.detail


def test_textures_pages_and_patterns_are_rejected_with_their_reason():
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (160, 160, 3), dtype=np.uint8))
    page = Image.new("RGB", (240, 160), (250, 250, 248))
    d = ImageDraw.Draw(page)
    for row in range(12):  # lines of "words"
        x = 10
        while x < 220:
            w = int(rng.integers(8, 30))
            d.rectangle([x, 8 + row * 12, x + w, 14 + row * 12], fill=(30, 30, 30))
            x += w + 6
    board = np.kron((np.indices((8, 8)).sum(axis=0) % 2) * 255, np.ones((20, 20))).astype(np.uint8)
    checker = Image.fromarray(board).convert("RGB")
    reasons = {}
    for name, img in (("noise", noise), ("page", page), ("checker", checker)):
        with pytest.raises(MaskError) as info:
            product_mask(img)
        reasons[name] = info.value.reason
        assert "supply a mask file" in info.value.detail and "then grabcut" in info.value.detail
    assert reasons["page"] == "mask_fragmented"
    assert {reasons["noise"], reasons["checker"]} <= {"mask_coverage", "mask_not_separable"}


def test_kinds_are_all_rendered():
    assert len({render_product_shot(i, 64)[0].tobytes() for i in range(len(KINDS))}) == len(KINDS)
    assert MaskConfig().min_coverage < MaskConfig().max_coverage
