"""The ingest's persisted source index: it follows the table, and a stale or damaged one is rebuilt.

What a user sees of it is ingest's answers: a copy of any stored source is a near-duplicate and a
stored file is "already present", whichever way the source reached the table (an earlier call, a
run killed before its index write, a damaged index file).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from aescot import source_index
from aescot.ingest import IngestConfig, ingest
from aescot.neardup.search import arrow_hashes_to_words
from aescot.samples import render_product_shot

CFG = IngestConfig(batch_size=2, workers=1)


def _write(folder: Path, shots: dict[str, int], fmt: str = "PNG") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, seed in shots.items():
        buf = io.BytesIO()
        render_product_shot(seed, 96)[0].save(buf, format=fmt, **({"quality": 80} if fmt == "JPEG" else {}))
        (folder / name).write_bytes(buf.getvalue())
    return folder


def _listing(store) -> dict:
    return store.read_json(source_index.LISTING)


def test_index_covers_every_source_with_its_hashes_in_few_segments(store, tmp_path):
    for call in range(6):  # six calls of two windows: twelve batches appended, merged as they grow
        _write(tmp_path / f"in{call}", {f"{call}-{k}.png": 100 + 10 * call + k for k in range(4)})
        ingest(store, [str(tmp_path / f"in{call}")], CFG)
    table = store.read_arrow("sources", columns=["source_id", "phash", "object_phash"])
    listing = _listing(store)
    assert listing["rows"] == table.num_rows == store.count("sources") == 24
    assert len(listing["segments"]) <= 1 + int(np.log2(24))  # a binary counter of segments
    files = {k.rsplit("/", 1)[-1] for k in store.list_keys(source_index.FOLDER)} - {"index.json"}
    assert files == {s["name"] for s in listing["segments"]}  # merged segments' files are gone

    index = source_index.load_source_index(store)
    ids = np.concatenate([np.asarray(a.to_pylist()) for a in index.sorted_ids()])
    assert sorted(ids) == sorted(table.column("source_id").to_pylist())
    for ids_sorted in index.sorted_ids():
        assert ids_sorted.to_pylist() == sorted(ids_sorted.to_pylist())
    for name in ("phash", "object_phash"):
        want = {}
        for width, (pos, words) in arrow_hashes_to_words(table.column(name)).items():
            for p, w in zip(pos, words):
                want[table.column("source_id")[int(p)].as_py()] = (width, w.tolist())
        got = {}
        for groups, seg_ids, _ in index.hashes(name):
            for width, (pos, words) in groups.items():
                for p, w in zip(pos, words):
                    got[seg_ids[int(p)].as_py()] = (width, w.tolist())
        assert got == want


def test_a_source_committed_without_its_index_write_is_still_found(store, tmp_path, monkeypatch):
    """A run killed between the commit and the index write leaves the table one batch ahead: the
    counts differ, the next call rebuilds the index from the table and sees that batch."""
    _write(tmp_path / "a", {"a.png": 1, "b.png": 2})
    ingest(store, [str(tmp_path / "a")], CFG)
    _write(tmp_path / "c", {"c.png": 3})
    with monkeypatch.context() as m:  # c's rows commit, its index write never happens
        m.setattr(source_index.SourceIndex, "extend", lambda self, records: None)
        ingest(store, [str(tmp_path / "c")], CFG)
    assert _listing(store)["rows"] == 2 and store.count("sources") == 3

    _write(tmp_path / "copies", {"c-copy.jpg": 3}, fmt="JPEG")
    _write(tmp_path / "copies", {"c.png": 3})  # the very file: already present, not a new source
    report = ingest(store, [str(tmp_path / "copies")], CFG)
    c_id = store.read("sources", columns=["source_id", "original_name"])
    c_id = next(r["source_id"] for r in c_id if r["original_name"] == "c.png")
    assert [(r.reason, r.related_id) for r in report.rejects] == [("near_duplicate", c_id)]
    assert report.added == 0 and report.already_present == 1
    assert _listing(store)["rows"] == store.count("sources") == 3


@pytest.mark.parametrize("damage", ["truncated", "missing", "garbage listing"])
def test_a_damaged_index_is_rebuilt_from_the_table(store, tmp_path, damage):
    _write(tmp_path / "a", {"a.png": 5, "b.png": 6, "c.png": 7})
    ingest(store, [str(tmp_path / "a")], CFG)
    seg = store.local_path(f"{source_index.FOLDER}/{_listing(store)['segments'][0]['name']}")
    if damage == "truncated":
        seg.write_bytes(seg.read_bytes()[:100])
    elif damage == "missing":
        seg.unlink()
    else:
        store.local_path(source_index.LISTING).write_text("{not json")

    _write(tmp_path / "copies", {"b-copy.jpg": 6}, fmt="JPEG")
    report = ingest(store, [str(tmp_path / "copies")], CFG)
    assert [r.reason for r in report.rejects] == ["near_duplicate"]
    assert _listing(store)["rows"] == 3
    assert source_index.load_source_index(store).rows == 3


def test_an_empty_store_writes_no_index_and_an_empty_call_changes_none(store, tmp_path):
    (tmp_path / "empty").mkdir()
    ingest(store, [str(tmp_path / "empty")], CFG)
    assert not store.exists(source_index.LISTING)
    _write(tmp_path / "a", {"a.png": 8})
    ingest(store, [str(tmp_path / "a")], CFG)
    listing = _listing(store)
    ingest(store, [str(tmp_path / "a")], CFG)  # already present: nothing added, nothing rewritten
    assert _listing(store) == listing
