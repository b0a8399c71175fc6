from aescot.dedupe.hashing import DedupeConfig
from aescot.dedupe.report import NEAR_DUPLICATES, near_duplicate_report
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
    again = near_duplicate_report(store, DedupeConfig())
    assert again.new_pairs == 0 and store.count(NEAR_DUPLICATES.name) == 1
