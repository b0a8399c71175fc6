"""The table layer's automatic maintenance: its cost follows the new rows, not the table."""

import pyarrow as pa
import pyarrow.compute as pc

from aescot import tables

KEY = ("k",)


def batch(keys, value):
    return pa.table({"k": [f"{k:08d}" for k in keys], "v": pa.array([value] * len(keys), pa.int64())})


def small_fragments(lt):
    return tables.LanceTables._small_fragments(lt._open("t"))


def test_compaction_leaves_settled_fragments_and_bounds_index_segments(tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "TARGET_FRAGMENT_ROWS", 64)
    monkeypatch.setattr(tables, "MAX_FRAGMENTS", 4)
    monkeypatch.setattr(tables, "MAX_INDEX_SEGMENTS", 3)
    lt = tables.LanceTables(str(tmp_path / "tables"), None, True)
    lt.upsert("t", batch(range(200), 0), KEY)
    lt.compact("t", KEY)
    settled = {df.path for f in lt._open("t").get_fragments() for df in f.data_files()}

    segments_seen, nxt = set(), 200
    for i in range(60):
        lt.upsert("t", batch(range(nxt, nxt + 2), i), KEY)
        nxt += 2
        ds = lt._open("t")
        segments_seen.add(tables.LanceTables._segments(ds, KEY))
        assert len(small_fragments(lt)) <= tables.MAX_FRAGMENTS + 1
        files = {df.path for f in ds.get_fragments() for df in f.data_files()}
        assert settled <= files  # the bulk-loaded fragment is never rewritten by the upserts' compactions
    assert max(segments_seen) <= tables.MAX_INDEX_SEGMENTS  # delta segments are merged when they pile up
    assert len(segments_seen) > 1  # compactions added delta segments (and merged them)

    lt.upsert("t", batch([5, 201], 99), KEY)  # rewrite a bulk-loaded key and an upserted one
    got = lt.read("t", pa.schema([("k", pa.string()), ("v", pa.int64())]))
    assert got.num_rows == nxt == len(pc.unique(got.column("k")))  # every key once
    picked = lt.read("t", got.schema, where=pc.field("k").isin(["00000005", "00000201", "00000258"]))
    assert sorted(zip(picked.column("k").to_pylist(), picked.column("v").to_pylist())) == [
        ("00000005", 99),
        ("00000201", 99),
        ("00000258", 29),
    ]

    lt.compact("t", KEY)  # what `aescot compact` runs: one index segment, the small fragments merged
    assert tables.LanceTables._segments(lt._open("t"), KEY) == 1
    assert len(small_fragments(lt)) <= 1
    assert lt.state("t").rows == nxt
