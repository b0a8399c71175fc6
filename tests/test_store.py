import os

import pytest

from aescot.contracts import ContractError
from aescot.ids import candidate_id, sha256_bytes
from aescot.rejects import Reject, record_rejects
from aescot.store import DatasetStore


def rejects(n, detail="d"):
    return [Reject("ingest", f"file-{i}.png", "not_an_image", detail) for i in range(n)]


def test_put_image_is_content_addressed_and_idempotent(store):
    image_id, key = store.put_image(b"\x89PNG fake bytes")
    assert image_id == sha256_bytes(b"\x89PNG fake bytes")
    assert key == f"images/{image_id[:2]}/{image_id}.png"
    assert store.put_image(b"\x89PNG fake bytes") == (image_id, key)
    assert store.read_bytes(key) == b"\x89PNG fake bytes"
    assert len(store.list_keys("images")) == 1


def test_ids_are_deterministic():
    a = candidate_id("s" * 64, "synthetic", {"defect": "lighting_shadow", "k": 1}, 7)
    b = candidate_id("s" * 64, "synthetic", {"k": 1, "defect": "lighting_shadow"}, 7)
    assert a == b and a != candidate_id("s" * 64, "synthetic", {"k": 1, "defect": "lighting_shadow"}, 8)


def test_append_read_latest_wins_and_history_is_kept(store):
    record_rejects(store, rejects(3))
    record_rejects(store, rejects(1, detail="newer"))
    rows = store.read("rejects")
    assert len(rows) == 3 and store.count("rejects") == 3
    assert {r["subject"]: r["detail"] for r in rows}["file-0.png"] == "newer"
    assert len(store.read("rejects", latest=False)) == 4


def test_invalid_records_are_not_written(store):
    bad = rejects(2)[0].record() | {"reason": ""}
    with pytest.raises(ContractError, match="record 0: reason: '' should be non-empty"):
        store.append("rejects", [bad])
    assert store.read("rejects") == [] and store.list_keys("tables") == []


def test_a_crash_mid_write_leaves_nothing_readers_trip_over(store):
    record_rejects(store, rejects(2))
    part_dir = store.local_path("tables/rejects")
    # what a killed writer leaves behind: a hidden temp file, half written
    (part_dir / ".tmp-deadbeef").write_bytes(b"PAR1 half a parquet file")
    assert len(store.read("rejects")) == 2
    assert all(os.path.basename(k).startswith("part-") for k in store.list_keys("tables/rejects"))


def test_compact_keeps_latest_rows_in_one_part(store):
    for _ in range(3):
        record_rejects(store, rejects(5))
    assert len(store.list_keys("tables/rejects")) == 3
    assert store.compact("rejects") == 5
    assert len(store.list_keys("tables/rejects")) == 1 and store.count("rejects") == 5


def test_empty_table_reads_with_its_schema(store):
    table = store.read_arrow("candidates")
    assert table.num_rows == 0 and "seed" in table.column_names


def test_store_on_a_memory_fsspec_uri():
    store = DatasetStore("memory://aescot-test-ds")
    record_rejects(store, rejects(2))
    _image_id, key = store.put_image(b"abc")
    assert store.count("rejects") == 2 and store.read_bytes(key) == b"abc"
    assert store.uri(key) == f"memory://aescot-test-ds/{key}"
    assert DatasetStore("memory://aescot-test-ds").count("rejects") == 2
