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
