import pytest

from aescot.contracts import ContractError
from aescot.ids import candidate_id, sha256_bytes
from aescot.rejects import Reject, record_rejects
from aescot.store import DatasetStore, StoreError


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


def test_upsert_replaces_by_key_and_never_duplicates(store):
    record_rejects(store, rejects(3))
    record_rejects(store, rejects(1, detail="newer"))
    rows = store.read("rejects")
    assert len(rows) == 3 and store.count("rejects") == 3  # physical rows: no read-time de-duplication
    assert {r["subject"]: r["detail"] for r in rows}["file-0.png"] == "newer"
    record_rejects(store, rejects(3, detail="newer"))  # a retried batch
    assert store.count("rejects") == 3


def test_a_batch_with_one_key_twice_keeps_the_last(store):
    batch = [r.record() for r in rejects(1)] + [r.record() for r in rejects(1, detail="second")]
    assert store.upsert("rejects", batch) == 1
    assert [r["detail"] for r in store.read("rejects")] == ["second"]


def test_invalid_records_are_not_written(store):
    bad = rejects(2)[0].record() | {"reason": ""}
    with pytest.raises(ContractError, match="record 0: reason: '' should be non-empty"):
        store.upsert("rejects", [bad])
    assert store.read("rejects") == [] and store.table_names() == []


def test_reads_push_keys_and_columns_into_the_scan(store):
    record_rejects(store, rejects(50))
    ids = [r["reject_id"] for r in store.read("rejects", columns=["reject_id"])][:3]
    got = store.read_arrow("rejects", columns=["subject"], keys=ids)
    assert got.column_names == ["subject"] and got.num_rows == 3
    assert store.read_arrow("rejects", keys=[]).num_rows == 0


def test_backlog_is_a_key_anti_join(store):
    record_rejects(store, rejects(5))
    ids = sorted(r["reject_id"] for r in store.read("rejects", columns=["reject_id"]))
    assert store.backlog("rejects", "sources", done_on="source_id").to_pylist() == ids


def test_file_count_stays_bounded_as_batches_arrive(store):
    from aescot.tables import MAX_FRAGMENTS

    for i in range(MAX_FRAGMENTS + 8):
        record_rejects(store, rejects(2, detail=str(i)))
    state = store.table_state("rejects")
    assert state.rows == 2 and state.fragments <= MAX_FRAGMENTS
    [after] = store.compact("rejects")
    assert after.fragments == 1 and after.rows == 2


def test_a_tagged_version_reads_back_after_later_writes_and_compaction(store):
    record_rejects(store, rejects(2))
    store.tag_versions("export-1", store.table_versions())
    record_rejects(store, rejects(4, detail="later"))
    store.compact()
    old = store.at("export-1")
    assert [r["detail"] for r in old.read("rejects")] == ["d", "d"]
    assert old.read("sources") == []  # a table that did not exist then reads as empty
    with pytest.raises(StoreError, match="read-only"):
        record_rejects(old, rejects(1))


def test_a_first_release_store_is_refused_until_migrated(store):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from aescot.legacy import migrate
    from aescot.store import TABLES

    folder = store.local_path("tables/rejects")
    folder.mkdir(parents=True)
    rows = [r.record() for r in rejects(3)]
    schema = TABLES["rejects"].arrow_schema()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / "part-0001-a.parquet")
    newer = [r.record() for r in rejects(1, detail="newer")]
    pq.write_table(pa.Table.from_pylist(newer, schema=schema), folder / "part-0002-b.parquet")
    fresh = DatasetStore(store.root)
    with pytest.raises(StoreError, match="aescot migrate"):
        fresh.count("rejects")
    report = migrate(DatasetStore(store.root))
    assert report.tables == {"rejects": 3}
    migrated = DatasetStore(store.root)
    assert {r["subject"]: r["detail"] for r in migrated.read("rejects")}["file-0.png"] == "newer"
    with pytest.raises(StoreError, match="already migrated"):
        migrate(migrated)


def test_empty_table_reads_with_its_schema(store):
    table = store.read_arrow("candidates")
    assert table.num_rows == 0 and "seed" in table.column_names


def test_a_column_added_to_a_contract_later_reads_as_null_then_fills(store, monkeypatch):
    import pyarrow as pa

    from aescot.store import TABLES, TableSpec

    record_rejects(store, rejects(2))
    old = TABLES["rejects"].arrow_schema()
    grown = old.append(pa.field("note", pa.string(), nullable=True))
    monkeypatch.setitem(TABLES, "rejects", TableSpec("rejects", ("reject_id",), schema=grown))
    fresh = DatasetStore(store.root)
    assert [r["note"] for r in fresh.read("rejects")] == [None, None]
    row = fresh.read("rejects")[0] | {"note": "added"}
    fresh.upsert("rejects", [row])
    assert sorted(r["note"] or "" for r in fresh.read("rejects")) == ["", "added"]


def test_every_registered_table_has_a_rebuild_command_and_a_status_place():
    """doctor and repair name the command that rebuilds each table's rows; status counts each table
    or lists it as bookkeeping. A module that registers a table must be in TABLE_MODULES."""
    from aescot.doctor import REBUILD
    from aescot.status import _INTERNAL, _ORDER
    from aescot.store import TABLE_MODULES, register_all_tables

    known = register_all_tables()
    assert len(known) > 8 and not set(known) - set(REBUILD), set(known) - set(REBUILD)
    assert not set(REBUILD) - set(known), "a rebuild command for a table nobody registers"
    assert {t for t, _ in _ORDER} | _INTERNAL <= set(known)
    import importlib

    for module in TABLE_MODULES:
        importlib.import_module(module)  # each listed module exists


def test_a_bulk_upsert_of_nested_rows_commits_in_chunks_without_loss(tmp_path, monkeypatch):
    """Above MAX_UPSERT_ROWS an upsert commits chunk by chunk. Items carry a list of candidate structs:
    Lance's merge_insert panicked on a slice of such a column past the first chunk (a 100k-item bulk
    load failed), so each chunk is a copy starting at offset 0."""
    import aescot.tables
    from tests.labelstudio.helpers import make_items

    monkeypatch.setattr(aescot.tables, "MAX_UPSERT_ROWS", 10)
    store = DatasetStore(tmp_path / "ds")
    items = make_items(store, 35)  # 4 chunks, the last one short
    ids = store.column("items").to_pylist()
    assert len(ids) == len(set(ids)) == 35
    last = store.read("items", keys=[i["item_id"] for i in items[30:]])
    assert {r["item_id"] for r in last} == {i["item_id"] for i in items[30:]}
    assert all(len(r["candidates"]) == 4 for r in last)
