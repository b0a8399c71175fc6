import imagehash
import numpy as np
import pytest
from PIL import Image

from aescot.neardup import HASHERS, HammingIndex, get_hasher, hamming, near_pairs
from aescot.neardup.search import hashes_to_words
from aescot.samples import render_product_shot

REFERENCE = {
    "phash": imagehash.phash,
    "dhash": imagehash.dhash,
    "ahash": imagehash.average_hash,
    "whash": imagehash.whash,
}


@pytest.mark.parametrize("method", sorted(REFERENCE))
@pytest.mark.parametrize("hash_size", [8, 16])
def test_each_hasher_is_imagehash_with_alpha_on_white(method, hash_size):
    img, _ = render_product_shot(3, 96)
    hasher = get_hasher(method, hash_size)
    assert hasher.method == method and type(hasher) is HASHERS[method]
    h = hasher.hash(img)
    assert h == str(REFERENCE[method](img.convert("RGB"), hash_size=hash_size))
    assert len(h) == hash_size**2 // 4
    # transparent pixels count as white, whatever colour they carry
    rgba = img.convert("RGBA")
    rgba.putalpha(Image.new("L", rgba.size, 0))
    white = Image.new("RGB", rgba.size, (255, 255, 255))
    assert hasher.hash(rgba) == str(REFERENCE[method](white, hash_size=hash_size))


def test_unknown_method_says_which_exist():
    with pytest.raises(ValueError, match="phash, dhash, ahash, whash"):
        get_hasher("md5")


def test_hamming_one_pair():
    assert hamming("0" * 16, "0" * 15 + "7") == 3
    assert hamming("f" * 64, "0" * 64) == 256
    assert hamming("1234", "1235") == 1  # a 4x4 hash: padded to one word, no distance added
    with pytest.raises(ValueError, match="differ in length"):
        hamming("0" * 16, "0" * 64)


def test_short_hashes_are_padded_not_refused():
    assert hashes_to_words(["abcd", "0001"]).tolist() == [[0xABCD], [1]]


def test_near_pairs_compares_only_equal_lengths():
    hashes = ["0" * 16, "0" * 64, "0" * 15 + "1", None, "", "0" * 63 + "3"]
    assert near_pairs(hashes, 2) == [(0, 2, 1), (1, 5, 2)]


def test_hamming_index_grows_and_matches_brute_force():
    rng = np.random.default_rng(5)
    hashes = [f"{int(x):016x}" for x in rng.integers(0, 2**63, size=100)]
    idx = HammingIndex()
    for i, h in enumerate(hashes):  # one at a time, past several doublings of the matrix
        idx.add(h, f"s{i}")
    assert len(idx) == 100
    queries = [h[:-1] + ("0" if h[-1] != "0" else "1") for h in hashes[::7]]
    for q, hits in zip(queries, idx.search(queries, 12)):
        expected = sorted((hamming(q, h), i) for i, h in enumerate(hashes) if hamming(q, h) <= 12)
        assert hits == [(f"s{i}", d) for d, i in expected] and hits


def test_hamming_index_mixed_lengths_and_ties():
    idx = HammingIndex(["0" * 64, None, "0" * 16, ""], ["wide", "unhashed", "narrow", "empty"])
    idx.add("0" * 15 + "3", "narrow-later")
    idx.add("0" * 15 + "3", "a-same-distance")  # added last: loses the tie whatever its name
    assert idx.nearest("0" * 15 + "1", 4) == ("narrow", 1)
    assert idx.nearest("0" * 15 + "7", 4) == ("narrow-later", 1)
    assert idx.nearest("0" * 63 + "1", 4) == ("wide", 1)
    assert idx.nearest("0" * 32, 64) is None  # no hash of that length
    with pytest.raises(ValueError, match="radius"):
        idx.nearest("0" * 16, -1)


def test_colour_signature_tells_hues_apart_and_ignores_resolution_and_alpha():
    from aescot.neardup import colour_difference, colour_hash, colour_match

    img, _ = render_product_shot(4, 256)
    sig = colour_hash(img)
    assert len(sig) == 24 and int(sig, 16) > 0
    hsv = np.array(img.convert("HSV"))
    hsv[..., 0] = (hsv[..., 0].astype(int) + 128) % 256
    turned = colour_hash(Image.fromarray(hsv, "HSV").convert("RGB"))
    assert colour_difference(sig, turned) > 50 and not colour_match(sig, turned, 17)
    bigger = colour_hash(img.resize((1024, 1024), Image.Resampling.BICUBIC))
    assert colour_difference(sig, bigger) <= 5 and colour_match(sig, bigger, 17)
    # transparent pixels count as white, and a grey image has (almost) no colour mass at all
    rgba = img.convert("RGBA")
    rgba.putalpha(Image.new("L", rgba.size, 0))
    assert colour_hash(rgba) == colour_hash(Image.new("RGB", img.size, (255, 255, 255))) == "00" * 12
    # not comparable (a row from before colour signatures, another size): the grey rule alone
    assert colour_difference(sig, None) is None and colour_match(sig, None, 0) and colour_match(None, "", 0)
    assert colour_difference(sig, sig[:14]) is None and colour_match(sig, turned, -1)


def test_object_frame_follows_the_object_not_the_picture():
    """The frame is where the product is: moving the product moves the frame by as much, scaling the
    picture scales it, and JPEG noise barely moves it (a mask's bounding box moved up to 8 px)."""
    import io

    from PIL import Image

    from aescot.neardup import object_frame

    img, mask = render_product_shot(4, 256)
    (x0, y0, x1, y1), bg = object_frame(img)
    bx0, by0, bx1, by1 = mask.getbbox()
    assert x0 < bx0 + 8 and x1 > bx1 - 8 and y0 < by0 + 8 and y1 > by1 - 8  # the product is inside
    assert (x1 - x0) * (y1 - y0) < 0.8 * 256 * 256  # and the frame is not the whole picture
    assert bg == tuple(int(v) for v in bg)
    moved = Image.new("RGB", (256, 256), img.getpixel((0, 0)))
    moved.paste(img.crop((0, 0, 236, 256)), (20, 0))
    (m0, _, m1, _), _ = object_frame(moved)
    assert abs(m0 - x0 - 20) < 3 and abs(m1 - x1 - 20) < 3
    (s0, t0, s1, t1), _ = object_frame(img.resize((512, 512)))
    assert max(abs(s0 - 2 * x0), abs(t0 - 2 * y0), abs(s1 - 2 * x1), abs(t1 - 2 * y1)) < 4
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=75)
    (j0, k0, j1, k1), _ = object_frame(Image.open(buf))
    assert max(abs(j0 - x0), abs(k0 - y0), abs(j1 - x1), abs(k1 - y1)) < 3


def test_a_cropped_copys_object_hash_meets_its_originals():
    """The relation ingest relies on: a copy cropped 2 % or 4 % per side is far from its original on
    the plain pHash and near it on the object hash; another product is far on both."""
    from aescot.neardup import object_hash

    hasher = get_hasher("phash", 16)
    img, _ = render_product_shot(4, 256)
    other, _ = render_product_shot(5, 256)
    mine = object_hash(img, hasher)
    assert len(mine) == 64 and object_hash(img, hasher) == mine  # deterministic
    for frac in (0.02, 0.04):
        w = img.width
        copy = img.crop((int(w * frac), int(w * frac), int(w * (1 - frac)), int(w * (1 - frac))))
        assert hamming(hasher.hash(img), hasher.hash(copy)) > 12
        assert hamming(mine, object_hash(copy, hasher)) <= 8
    assert hamming(mine, object_hash(other, hasher)) > 24
