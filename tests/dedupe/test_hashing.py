from PIL import Image, ImageFilter

from aescot.dedupe.hashing import DedupeConfig, group_duplicates, hash_image, near_duplicate_pairs
from aescot.samples import render_product_shot


def test_rerendered_image_is_near_and_other_products_are_far():
    cfg = DedupeConfig()
    a, _ = render_product_shot(1, 128)
    b, _ = render_product_shot(2, 128)
    ha = hash_image(a, cfg)
    blurred = hash_image(
        a.filter(ImageFilter.GaussianBlur(1)).resize((100, 100), Image.Resampling.BILINEAR), cfg
    )
    hb = hash_image(b, cfg)
    assert len(ha) == 16
    assert near_duplicate_pairs([ha, blurred, hb], cfg.threshold) == [
        (0, 1, near_duplicate_pairs([ha, blurred], 64)[0][2])
    ]
    assert hash_image(a, DedupeConfig(hash_size=16)).__len__() == 64


def test_group_duplicates_flags_source_copies_and_later_twins():
    src = "0000000000000000"
    hashes = [
        "0000000000000001",  # 1 bit from the source: degenerate
        "ffff0000ffff0000",
        "ffff0000ffff0001",  # twin of the previous: the later one goes
        "00ff00ff00ff00ff",
    ]
    dups = group_duplicates(hashes, src, 4)
    assert [(d.index, d.other, d.reason) for d in dups] == [
        (0, None, "near_duplicate_of_source"),
        (2, 1, "near_duplicate_in_group"),
    ]
    # already accepted hashes are never flagged, but new ones are checked against them
    dups = group_duplicates(["ffff0000ffff0000", "ffff0000ffff0003"], None, 4, n_fixed=1)
    assert [(d.index, d.other, d.distance) for d in dups] == [(1, 0, 2)]


def _recolour(img: Image.Image, shift: int) -> Image.Image:
    import numpy as np

    hsv = np.array(img.convert("HSV"))
    hsv[..., 0] = (hsv[..., 0].astype(int) + shift) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


def _jpeg(img: Image.Image) -> Image.Image:
    import io

    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=75)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def test_group_keeps_recoloured_candidates_and_drops_a_re_encode():
    """Two candidates that differ only in colour are two images; a JPEG re-encode is one."""
    from aescot.dedupe.hashing import colour_of

    cfg = DedupeConfig()
    a, _ = render_product_shot(4, 256)
    images = [a, _recolour(a, 128), _recolour(a, 64), _jpeg(a)]
    hashes = [hash_image(im, cfg) for im in images]
    colours = [colour_of(im) for im in images]
    assert all(near_duplicate_pairs([hashes[0], h], cfg.threshold) for h in hashes[1:])  # all grey-near
    dups = group_duplicates(
        hashes, None, cfg.threshold, colours=colours, colour_threshold=cfg.colour_threshold
    )
    assert [(d.index, d.other, d.reason) for d in dups] == [(3, 0, "near_duplicate_in_group")]
    assert dups[0].colour is not None and dups[0].colour <= cfg.colour_threshold
    # the source check is colour-aware too: a recolour of the source is not a degenerate generation
    dups = group_duplicates(
        hashes[1:],
        hashes[0],
        cfg.threshold,
        colours=colours[1:],
        source_colour=colours[0],
        colour_threshold=cfg.colour_threshold,
    )
    assert [(d.index, d.other) for d in dups] == [(2, None)]
    # the grey hash alone (colour check off, or no signatures stored) merges them all
    assert len(group_duplicates(hashes, None, cfg.threshold, colours=colours, colour_threshold=-1)) == 3
    assert len(group_duplicates(hashes, None, cfg.threshold, colour_threshold=cfg.colour_threshold)) == 3
