import csv
from pathlib import Path

import pytest

from aescot.contracts import validate
from aescot.ingest import IngestConfig, discover, ingest
from aescot.samples import write_sample_sources
from tests.awkward import make_awkward_corpus


@pytest.fixture
def awkward(tmp_path) -> tuple[Path, dict]:
    folder = tmp_path / "incoming"
    return folder, make_awkward_corpus(folder)


def test_awkward_corpus_every_file_accepted_or_rejected_with_its_reason(store, awkward):
    folder, expected = awkward
    report = ingest(store, [str(folder)])
    got = {Path(r.subject).name: r.reason for r in report.rejects}
    assert got == {name: reason for name, reason in expected.items() if reason}
    accepted = sorted(name for name, reason in expected.items() if reason is None)
    sources = store.read("sources")
    assert sorted(s["original_name"] for s in sources) == accepted
    assert report.added == len(accepted) and report.seen == len(expected)
    for s in sources:
        validate("source", s)
        assert store.exists(s["image_key"]) and store.exists(s["mask_key"])
    # rejects are kept in the store with their reasons, not just printed
    assert {r["reason"] for r in store.read("rejects")} == set(got.values())


def test_reingest_adds_nothing(store, awkward):
    folder, _ = awkward
    first = ingest(store, [str(folder)])
    images_before = store.list_keys("images")
    second = ingest(store, [str(folder)])
    assert second.added == 0 and second.already_present >= first.added
    assert store.count("sources") == first.added
    assert store.list_keys("images") == images_before
    assert len(store.read("sources")) == first.added  # not even a duplicate row on disk


def test_manifest_with_masks_and_product_names(store, tmp_path):
    manifest = write_sample_sources(tmp_path / "samples", n=4)
    report = ingest(store, [str(manifest)])
    assert report.added == 4
    rows = {r["original_name"]: r for r in store.read("sources")}
    with manifest.open() as fh:
        for line in csv.DictReader(fh):
            assert rows[line["path"]]["product"] == line["product"]
            assert rows[line["path"]]["mask_method"] == "user"


def test_glob_and_sidecar_masks(tmp_path):
    write_sample_sources(tmp_path / "s", n=3)
    files, ignored = discover([str(tmp_path / "s" / "*.png")])
    assert len(files) == 3 and all(f.mask and f.mask.endswith(".mask.png") for f in files) and not ignored


def test_manifest_without_path_column_is_a_clear_error(store, tmp_path):
    bad = tmp_path / "m.csv"
    bad.write_text("file,product\na.png,x\n")
    with pytest.raises(ValueError, match="needs a 'path'"):
        ingest(store, [str(bad)])


def test_near_duplicate_check_can_be_turned_off(store, awkward):
    folder, _expected = awkward
    report = ingest(store, [str(folder)], IngestConfig(near_duplicate_distance=-1, workers=1))
    assert "near_duplicate" not in report.reasons()


def _png_bytes(img, fmt="PNG") -> bytes:
    import io

    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"quality": 80} if fmt == "JPEG" else {}))
    return buf.getvalue()


def test_near_duplicates_of_an_earlier_call_an_earlier_batch_and_the_same_batch_are_all_caught(
    store, tmp_path
):
    """The index is built once per call from the store and extended after each batch: a re-encoded
    copy is caught whether its original came in an earlier call, an earlier batch of this call or
    earlier in the same batch; bad files in between are still rejected with their reasons."""
    from aescot.samples import render_product_shot

    shots = {k: render_product_shot(seed, 128)[0] for k, seed in (("a", 31), ("b", 32), ("c", 33), ("d", 34))}
    first = tmp_path / "first"
    first.mkdir()
    (first / "a.png").write_bytes(_png_bytes(shots["a"]))
    assert ingest(store, [str(first)]).added == 1
    (source_a,) = store.read("sources", columns=["source_id"])

    new = tmp_path / "new"
    new.mkdir()
    files = {  # sorted order = processing order; windows of 2 (batch_size=2)
        "1-near-a.jpg": _png_bytes(shots["a"], "JPEG"),  # window 1: near a source of an earlier call
        "2-b.png": _png_bytes(shots["b"]),
        "3-c.png": _png_bytes(shots["c"]),  # window 2
        "4-near-b.jpg": _png_bytes(shots["b"], "JPEG"),  # near a source of the previous batch
        "5-d.png": _png_bytes(shots["d"]),  # window 3
        "6-near-d.jpg": _png_bytes(shots["d"], "JPEG"),  # near a source earlier in its own batch
        "7-truncated.png": _png_bytes(shots["c"])[:300],  # window 4
        "8-empty.png": b"",
    }
    for name, data in files.items():
        (new / name).write_bytes(data)
    report = ingest(store, [str(new)], IngestConfig(batch_size=2, workers=2))
    ids = {
        s["original_name"]: s["source_id"]
        for s in store.read("sources", columns=["source_id", "original_name"])
    }
    assert sorted(ids) == ["2-b.png", "3-c.png", "5-d.png", "a.png"] and report.added == 3
    got = {Path(r.subject).name: (r.reason, r.related_id) for r in report.rejects}
    assert got == {
        "1-near-a.jpg": ("near_duplicate", source_a["source_id"]),
        "4-near-b.jpg": ("near_duplicate", ids["2-b.png"]),
        "6-near-d.jpg": ("near_duplicate", ids["5-d.png"]),
        "7-truncated.png": ("corrupt_image", None),
        "8-empty.png": ("empty_file", None),
    }
    stored = {Path(r["subject"]).name: r["reason"] for r in store.read("rejects")}
    assert stored == {name: reason for name, (reason, _) in got.items()}
    assert store.count("sources") == 4 and report.seconds["index"] > 0


def test_store_ids_found_by_binary_search_and_other_ids_looked_up_by_key():
    import hashlib

    import pyarrow as pa

    from aescot.ingest import _StoreIds

    ids = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(1000)]
    # one sorted id column per index segment, searched in place
    known = _StoreIds([pa.array(sorted(ids[:600])), pa.array(sorted(ids[600:900])).slice(1)])
    asked = [ids[0], ids[899], ids[900], ids[999], "f" * 64, "0" * 64, min(ids[600:900])]
    assert known.present(asked) == [ids[0], ids[899]]
    assert _StoreIds([pa.array([], pa.string())]).present(asked) == []
    odd = _StoreIds([pa.array(["short-id", ids[0]])])  # not all SHA-256 hex: ask the key index for all
    assert odd.present(asked) == asked


# --- colour-aware near-duplicates ------------------------------------------------------------------


def _box(colour: tuple[int, int, int]):
    """A product box on a studio-grey backdrop: the same shape whatever its colour."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (256, 256), (236, 236, 232))
    draw = ImageDraw.Draw(img)
    draw.rectangle([70, 60, 190, 220], fill=colour)
    draw.rectangle([70, 170, 190, 190], fill=(245, 245, 245))  # a label band
    return img


RED, BLUE = (200, 40, 40), (50, 80, 250)  # about the same grey level


def test_a_blue_and_a_red_box_of_the_same_shape_are_two_sources(store, tmp_path):
    from aescot.neardup import get_hasher, hamming

    cfg = IngestConfig(workers=1)
    phash = get_hasher(cfg.hash_method, cfg.hash_size)
    # the grey hash alone cannot tell them apart: this is what the colour signature is for
    assert hamming(phash.hash(_box(RED)), phash.hash(_box(BLUE))) <= cfg.near_duplicate_distance
    folder = tmp_path / "boxes"
    folder.mkdir()
    (folder / "red.png").write_bytes(_png_bytes(_box(RED)))
    (folder / "blue.png").write_bytes(_png_bytes(_box(BLUE)))
    report = ingest(store, [str(folder)], cfg)
    assert report.added == 2 and not report.rejects and report.colour_kept == 1
    rows = store.read("sources", columns=["original_name", "colour_hash"])
    assert sorted(r["original_name"] for r in rows) == ["blue.png", "red.png"]
    assert all(r["colour_hash"] and len(r["colour_hash"]) == 24 for r in rows)
    # in another call too (the store's index, not just the window): a green box is a third source
    green = tmp_path / "green"
    green.mkdir()
    (green / "green.png").write_bytes(_png_bytes(_box((40, 160, 40))))
    assert ingest(store, [str(green)], cfg).added == 1
    # with the colour check off the grey rule merges them, as it did before
    other = tmp_path / "off"
    other.mkdir()
    (other / "blue-again.png").write_bytes(_png_bytes(_box((52, 80, 250))))
    off = ingest(store, [str(other)], IngestConfig(workers=1, colour_distance=-1))
    assert off.reasons() == {"near_duplicate": 1}


@pytest.mark.parametrize("copy", ["jpeg", "resized"])
def test_a_copy_of_a_coloured_product_is_still_a_near_duplicate_with_its_reason(store, tmp_path, copy):
    from PIL import Image

    from aescot.samples import render_product_shot

    img, _ = render_product_shot(4, 256)  # a saturated product
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a-original.png").write_bytes(_png_bytes(img))
    if copy == "jpeg":
        (folder / "b-copy.jpg").write_bytes(_png_bytes(img, "JPEG"))
    else:
        small = img.resize((img.width * 7 // 10, img.height * 7 // 10), Image.Resampling.BILINEAR)
        (folder / "b-copy.png").write_bytes(_png_bytes(small))
    report = ingest(store, [str(folder)], IngestConfig(workers=1))
    (original,) = store.read("sources", columns=["source_id", "original_name"])
    assert original["original_name"] == "a-original.png" and report.added == 1
    (r,) = report.rejects
    assert (r.reason, r.related_id) == ("near_duplicate", original["source_id"])
    assert "perceptual hash within" in r.detail and "% apart" in r.detail, r.detail


def test_sources_stored_without_colour_signatures_dedupe_on_the_grey_hash(store, tmp_path):
    """A store written before colour signatures has no colour_hash column: its sources are
    compared on the grey hash alone (the old rule), and the column is added as nulls."""
    import pyarrow as pa

    from aescot.contracts import arrow_schema
    from aescot.neardup import get_hasher

    old_red = {
        "source_id": "a" * 64,
        "image_id": "b" * 64,
        "image_key": "images/old.png",
        "mask_key": "images/old-mask.png",
        "mask_method": "alpha",
        "mask_coverage": 0.3,
        "width": 256,
        "height": 256,
        "mode": "RGB",
        "original_name": "old-red.png",
        "original_format": "PNG",
        "original_mode": "RGB",
        "notes": [],
        "phash": get_hasher("phash", 16).hash(_box(RED)),
        "product": None,
        "ingested_at": "2026-01-01T00:00:00Z",
    }
    contract = arrow_schema("source")
    old_schema = contract.remove(contract.get_field_index("colour_hash"))
    # the table as an older version wrote it: the contract of then, without the colour_hash column
    store.tables.upsert("sources", pa.Table.from_pylist([old_red], schema=old_schema), ("source_id",))
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "blue.png").write_bytes(_png_bytes(_box(BLUE)))
    report = ingest(store, [str(folder)], IngestConfig(workers=1))
    (r,) = report.rejects
    assert (r.reason, r.related_id) == ("near_duplicate", "a" * 64)
    assert "no colour signature" in r.detail
    # a new source next to it gets its signature; the old row reads as null
    (folder / "blue.png").unlink()
    (folder / "other.png").write_bytes(_png_bytes(render_product_shot_rgb(9)))
    assert ingest(store, [str(folder)], IngestConfig(workers=1)).added == 1
    colours = {r["original_name"]: r["colour_hash"] for r in store.read("sources")}
    assert colours["old-red.png"] is None and colours["other.png"]


def render_product_shot_rgb(seed: int):
    from aescot.samples import render_product_shot

    return render_product_shot(seed, 256)[0]


# --- cropped copies ----------------------------------------------------------------------------------


def _cropped(img, frac: float):
    """``frac`` of the width and height cut off each side (as a photo cropped and saved again)."""
    w, h = img.size
    return img.crop((int(w * frac), int(h * frac), int(w * (1 - frac)), int(h * (1 - frac))))


def _recoloured(img, mask, shift: int = 128):
    """The product's hue turned by ``shift`` / 256 of a turn inside its mask: another colour."""
    import numpy as np
    from PIL import Image

    hsv = np.array(img.convert("HSV"))
    inside = np.asarray(mask) > 127
    hsv[..., 0][inside] = (hsv[..., 0][inside].astype(int) + shift) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


@pytest.mark.parametrize("frac", [0.02, 0.04])
@pytest.mark.parametrize("when", ["same call", "later call", "original later"])
def test_a_slightly_cropped_copy_is_a_near_duplicate_with_its_reason(store, tmp_path, frac, when):
    """A copy with 2 % or 4 % cut off each side is 16-62 bits from its original's pHash: the object
    hashes catch it, by default, whether it comes in the same window as its original, in a later
    call (the store's object index), or before its original."""
    from aescot.neardup import get_hasher, hamming
    from aescot.samples import render_product_shot

    img, _ = render_product_shot(4, 256)
    crop = _cropped(img, frac)
    hasher = get_hasher("phash", 16)
    assert (
        hamming(hasher.hash(img), hasher.hash(crop.resize(img.size))) > IngestConfig().near_duplicate_distance
    )
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    files = [("a-original.png", img), ("b-crop.png", crop)]
    if when == "original later":
        files.reverse()
    (first / files[0][0]).write_bytes(_png_bytes(files[0][1]))
    target = first if when == "same call" else second
    (target / files[1][0]).write_bytes(_png_bytes(files[1][1]))
    cfg = IngestConfig(workers=1)
    report = ingest(store, [str(first)], cfg)
    if when != "same call":
        assert report.added == 1 and not report.rejects
        report = ingest(store, [str(second)], cfg)
    (kept,) = store.read("sources", columns=["source_id", "original_name"])
    assert kept["original_name"] == files[0][0]
    (r,) = report.rejects
    assert (r.reason, r.related_id) == ("near_duplicate", kept["source_id"])
    assert Path(r.subject).name == files[1][0]
    assert "object hash within" in r.detail and "% apart" in r.detail, r.detail
    # the plain rule alone (object_distance -1) keeps it: the pHash is too far
    from aescot.store import DatasetStore

    plain = DatasetStore(tmp_path / "plain")
    for folder in [first] if when == "same call" else [first, second]:
        ingest(plain, [str(folder)], IngestConfig(workers=1, object_distance=-1))
    assert plain.count("sources") == 2


def test_a_recolour_and_a_distinct_product_stay_sources_beside_a_cropped_copy(store, tmp_path):
    from aescot.neardup import colour_difference, colour_hash
    from aescot.samples import render_product_shot

    img, mask = render_product_shot(4, 256)
    other, _ = render_product_shot(5, 256)
    recolour = _recoloured(img, mask)
    assert colour_difference(colour_hash(img), colour_hash(recolour)) > IngestConfig().colour_distance
    folder = tmp_path / "in"
    folder.mkdir()
    for name, im in {
        "a-original.png": img,
        "b-crop.png": _cropped(img, 0.02),
        "c-recolour.png": recolour,
        "d-recolour-crop.png": _cropped(recolour, 0.02),
        "e-other.png": other,
    }.items():
        (folder / name).write_bytes(_png_bytes(im))
    report = ingest(store, [str(folder)], IngestConfig(workers=1))
    kept = {r["original_name"]: r["source_id"] for r in store.read("sources")}
    assert sorted(kept) == ["a-original.png", "c-recolour.png", "e-other.png"], report.reasons()
    got = {Path(r.subject).name: (r.reason, r.related_id) for r in report.rejects}
    # each crop is a copy of its own colour, not of the other colour
    assert got == {
        "b-crop.png": ("near_duplicate", kept["a-original.png"]),
        "d-recolour-crop.png": ("near_duplicate", kept["c-recolour.png"]),
    }
    assert report.colour_kept >= 1  # the recolour was grey-near the original and kept for its colour
    rows = store.read("sources")
    assert all(len(r["object_phash"]) == 64 for r in rows)
    assert all(r[c] is None for r in rows for c in ("crop_phash", "coarse_phash", "coarse_crop_phash"))


def test_a_padded_or_shifted_copy_is_one_source_and_a_blank_image_has_no_object_hash(store, tmp_path):
    """The object hash follows the object: a copy with a border added, or the product moved in its
    frame, is the same source; an image with nothing on it stores a null object hash."""
    from PIL import Image

    from aescot.samples import render_product_shot

    img, _ = render_product_shot(4, 256)
    bg = img.getpixel((0, 0))
    padded = Image.new("RGB", (296, 296), bg)
    padded.paste(img, (20, 20))
    shifted = Image.new("RGB", (256, 256), bg)
    shifted.paste(img.crop((0, 0, 240, 256)), (16, 0))
    folder = tmp_path / "in"
    folder.mkdir()
    for name, im in {"a.png": img, "b-padded.png": padded, "c-shifted.png": shifted}.items():
        (folder / name).write_bytes(_png_bytes(im))
    report = ingest(store, [str(folder)], IngestConfig(workers=1))
    assert report.added == 1, [r.detail for r in report.rejects]
    assert sorted(Path(r.subject).name for r in report.rejects) == ["b-padded.png", "c-shifted.png"]
    from aescot.neardup import get_hasher, object_hash

    assert object_hash(Image.new("RGB", (128, 128), (240, 240, 240)), get_hasher("phash", 16)) is None


def test_sources_stored_without_object_hashes_are_compared_plainly(store, tmp_path):
    """A store written before object hashes has no ``object_phash`` column: ingest still works on it,
    its sources are found by the plain pHash (a re-encoded copy is rejected), and they read as null."""
    import pyarrow as pa

    from aescot.contracts import arrow_schema
    from aescot.neardup import colour_hash, get_hasher
    from aescot.samples import render_product_shot

    img, _ = render_product_shot(4, 256)
    old = {
        "source_id": "c" * 64,
        "image_id": "d" * 64,
        "image_key": "images/old.png",
        "mask_key": "images/old-mask.png",
        "mask_method": "segmented",
        "mask_coverage": 0.3,
        "width": 256,
        "height": 256,
        "mode": "RGB",
        "original_name": "old.png",
        "original_format": "PNG",
        "original_mode": "RGB",
        "notes": [],
        "phash": get_hasher("phash", 16).hash(img),
        "colour_hash": colour_hash(img),
        "product": None,
        "ingested_at": "2026-01-01T00:00:00Z",
    }
    schema = arrow_schema("source")
    schema = schema.remove(schema.get_field_index("object_phash"))
    store.tables.upsert("sources", pa.Table.from_pylist([old], schema=schema), ("source_id",))
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "copy.jpg").write_bytes(_png_bytes(img, "JPEG"))
    (folder / "crop.png").write_bytes(_png_bytes(_cropped(img, 0.02)))  # its object hash meets no row
    (folder / "new.png").write_bytes(_png_bytes(render_product_shot_rgb(9)))
    report = ingest(store, [str(folder)], IngestConfig(workers=1))
    (r,) = report.rejects
    assert (r.reason, r.related_id) == ("near_duplicate", "c" * 64) and report.added == 2
    rows = {r["original_name"]: r for r in store.read("sources")}
    assert rows["old.png"]["object_phash"] is None
    assert rows["new.png"]["object_phash"] and rows["crop.png"]["object_phash"]
