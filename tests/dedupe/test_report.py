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
    leak.update(candidate_id="f" * 64, phash=None, created_at=now_iso(), image_key=cands[0]["image_key"])
    store.upsert("candidates", [leak])
    report = near_duplicate_report(store, DedupeConfig())
    # the leak has no stored hash; sources stored with another hash size are hashed again too
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
