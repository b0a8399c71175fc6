from aescot.dedupe.hashing import DedupeConfig
from aescot.dedupe.report import DEDUPE_HASHES, NEAR_DUPLICATES, near_duplicate_report
from aescot.generate import GenerateConfig, generate_candidates
from aescot.timeutil import now_iso


def test_cross_source_near_duplicates_are_reported_once(store):
    import tempfile

    from aescot.ingest import IngestConfig, ingest
    from aescot.samples import write_sample_sources

    manifest = write_sample_sources(tempfile.mkdtemp(), n=3, size=128)
    ingest(store, [str(manifest)], IngestConfig())
    generate_candidates(store, GenerateConfig())
    cands = store.read("candidates")
    sources = store.read("sources")
    # a candidate of another source that copies the first source's first candidate (leakage between items)
    leak = dict(next(c for c in cands if c["source_id"] != cands[0]["source_id"]))
    leak.update(
        candidate_id="f" * 64,
        phash=None,
        colour_hash=None,
        created_at=now_iso(),
        image_key=cands[0]["image_key"],
    )
    store.upsert("candidates", [leak])
    report = near_duplicate_report(store, DedupeConfig())
    # the leak has no stored hash (nor colour signature); sources stored with another hash size are
    # hashed again too
    rehashed_sources = sum(len(s["phash"]) != 16 for s in sources)
    assert report.candidates == 13 and report.sources == 3 and report.hashed == 1 + rehashed_sources
    assert report.pairs.get("candidate-candidate") == 1
    row = store.read(NEAR_DUPLICATES.name)[0]
    assert {row["a_id"], row["b_id"]} == {"f" * 64, cands[0]["candidate_id"]} and row["distance"] == 0
    assert report.checked == 16 and store.count(DEDUPE_HASHES.name) == 16
    again = near_duplicate_report(store, DedupeConfig())
    assert again.new_pairs == 0 and store.count(NEAR_DUPLICATES.name) == 1
    # nothing new: nothing checked or hashed again; the recorded pairs are still counted
    assert again.checked == 0 and again.hashed == 0 and again.pairs == {"candidate-candidate": 1}


def test_only_new_items_are_checked_against_the_persisted_hashes(store):
    """A later pass checks just the items added since (in batches, against every item checked
    before and against its own batch) and finds their pairs with old items; a new threshold is a
    new setting, checked from scratch."""
    import tempfile

    from aescot.ingest import IngestConfig, ingest
    from aescot.samples import write_sample_sources

    manifest = write_sample_sources(tempfile.mkdtemp(), n=3, size=128)
    ingest(store, [str(manifest)], IngestConfig())
    generate_candidates(store, GenerateConfig())
    first = near_duplicate_report(store, DedupeConfig(hash_size=16), batch_size=5)
    # the candidates' stored hashes are 64-bit: rehashed once; the sources' are 256-bit already
    assert first.checked == 15 and first.hashed == 12
    cands = store.read("candidates")
    s0, s1, s2 = sorted({c["source_id"] for c in cands})
    c0 = next(c for c in cands if c["source_id"] == s0)
    # two copies of an old candidate of s0, filed under s1 and s2: each pairs with it and with the other
    copies = []
    for n, owner in enumerate([s1, s2]):
        row = dict(c0)
        row.update(candidate_id=f"{n + 1:x}" * 64, source_id=owner, created_at=now_iso())
        copies.append(row)
    store.upsert("candidates", copies)
    second = near_duplicate_report(store, DedupeConfig(hash_size=16), batch_size=5)
    assert second.checked == 2 and second.hashed == 2
    a, b, old = copies[0]["candidate_id"], copies[1]["candidate_id"], c0["candidate_id"]
    found = {(r["a_id"], r["b_id"]) for r in store.read(NEAR_DUPLICATES.name)}
    assert second.new_pairs == 3 and {tuple(sorted(p)) for p in [(old, a), (old, b), (a, b)]} <= found
    other = near_duplicate_report(store, DedupeConfig(hash_size=16, threshold=2), batch_size=5)
    assert other.checked == 17 and other.new_pairs == 3  # the same pairs, recorded for that setting too
    assert other.pairs == {"candidate-candidate": 3} and store.count(NEAR_DUPLICATES.name) == 6


def test_recoloured_candidates_of_two_sources_are_kept_and_a_re_encode_is_reported(store):
    """Set-wide: a candidate of another source that is the first candidate in another colour is not
    a near-duplicate; one that is its JPEG re-encode is. The colour signatures checked with are kept
    in dedupe_hashes; with the colour check off the grey rule pairs all three."""
    import io
    import tempfile

    import numpy as np
    from PIL import Image

    from aescot.images import encode_png
    from aescot.ingest import IngestConfig, ingest
    from aescot.samples import write_sample_sources

    manifest = write_sample_sources(tempfile.mkdtemp(), n=3, size=128)
    ingest(store, [str(manifest)], IngestConfig())
    generate_candidates(store, GenerateConfig())
    cands = store.read("candidates")
    c0 = cands[0]
    img = Image.open(io.BytesIO(store.read_bytes(c0["image_key"]))).convert("RGB")
    hsv = np.array(img.convert("HSV"))
    hsv[..., 0] = (hsv[..., 0].astype(int) + 128) % 256
    recoloured = Image.fromarray(hsv, "HSV").convert("RGB")
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=75)
    reencoded = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    others = sorted({c["source_id"] for c in cands} - {c0["source_id"]})
    rows = []
    for n, (owner, im) in enumerate(zip(others, [recoloured, reencoded])):
        _, key = store.put_image(encode_png(im), "png")
        row = dict(c0)
        # stored as an older version wrote them: no hashes, so the report takes both from the image
        row.update(
            candidate_id=f"{n + 1:x}" * 64, source_id=owner, image_key=key, phash=None, colour_hash=None
        )
        rows.append(row)
    store.upsert("candidates", rows)
    report = near_duplicate_report(store, DedupeConfig())
    pairs = {(r["a_id"], r["b_id"]) for r in store.read(NEAR_DUPLICATES.name)}
    assert pairs == {tuple(sorted([c0["candidate_id"], "2" * 64]))} and report.new_pairs == 1
    (pair,) = store.read(NEAR_DUPLICATES.name)
    assert pair["colour_difference"] <= DedupeConfig().colour_threshold
    assert pair["colour_threshold"] == DedupeConfig().colour_threshold
    checked = {r["item_id"]: r["colour_hash"] for r in store.read(DEDUPE_HASHES.name)}
    assert all(checked.values()) and checked["1" * 64] != checked["2" * 64]
    grey = near_duplicate_report(store, DedupeConfig(colour_threshold=-1))
    # another setting: every item checked again
    assert grey.pairs == {"candidate-candidate": 3} and grey.checked == grey.candidates + grey.sources
    # the colour check off keeps the check ids of before colour signatures: such rows are this setting
    from aescot.ids import derive_id

    cfg = DedupeConfig(colour_threshold=-1)
    grey_rows = [r for r in store.read(DEDUPE_HASHES.name) if r["colour_threshold"] == -1]
    assert {r["check_id"] for r in grey_rows} == {
        derive_id(r["kind"], r["item_id"], cfg.method, cfg.hash_size, cfg.threshold) for r in grey_rows
    }
    assert near_duplicate_report(store, cfg).checked == 0
