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
