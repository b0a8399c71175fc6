"""``aescot compact`` and ``aescot migrate``: what they print, and their refusals (one line, exit 2)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from aescot.cli.main import app
from aescot.rejects import Reject, record_rejects
from aescot.store import TABLES, DatasetStore

runner = CliRunner()
ENV = {"COLUMNS": "200"}


def _rejects(n: int, start: int = 0, detail: str = "d") -> list[Reject]:
    return [Reject("ingest", f"file-{i}.png", "not_an_image", detail) for i in range(start, start + n)]


def test_compact_prints_fragments_and_files_before_and_after(store):
    for b in range(6):
        record_rejects(store, _rejects(10, b * 10))
    before = store.table_state("rejects")
    result = runner.invoke(app, ["compact", store.root], env=ENV)
    assert result.exit_code == 0, result.output
    after = DatasetStore(store.root).table_state("rejects")
    assert after.fragments < before.fragments and after.rows == before.rows == 60
    line = " ".join(result.output.split())
    row = f"│ rejects │ 60 │ {before.fragments} -> {after.fragments} │ {before.files} -> {after.files} │"
    assert row in line, result.output


def test_compact_one_table_and_an_unknown_one(store):
    record_rejects(store, _rejects(3))
    one = runner.invoke(app, ["compact", "--root", store.root, "--table", "rejects"], env=ENV)
    assert one.exit_code == 0 and "rejects" in one.output, one.output
    unknown = runner.invoke(app, ["compact", store.root, "--table", "nope"], env=ENV)
    assert unknown.exit_code == 2, unknown.output
    assert unknown.output.strip() == f"error: no table 'nope' in {store.root} (tables: rejects)"
    two = runner.invoke(app, ["compact", store.root, "--root", store.root + "-other"], env=ENV)
    assert two.exit_code == 2 and "two roots given" in two.output, two.output


def _first_release(store: DatasetStore) -> None:
    """Tables as the first release wrote them: part files, the later one replacing a row."""
    schema = TABLES["rejects"].arrow_schema()
    folder = store.local_path("tables/rejects")
    folder.mkdir(parents=True)
    rows = [r.record() for r in _rejects(3)]
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / "part-0001-a.parquet")
    newer = [r.record() for r in _rejects(1, detail="newer")]
    pq.write_table(pa.Table.from_pylist(newer, schema=schema), folder / "part-0002-b.parquet")


def test_migrate_converts_once_then_refuses(store):
    _first_release(store)
    refused = runner.invoke(app, ["status", "--root", store.root], env=ENV)
    assert refused.exit_code == 3, refused.output
    assert refused.output.strip().endswith(f"convert them once with: aescot migrate {store.root}"), (
        refused.output
    )
    doctor = runner.invoke(app, ["doctor", "--root", store.root], env=ENV)
    assert (
        doctor.exit_code == 3
        and "first_release_layout" in doctor.output
        and "aescot migrate" in doctor.output
    )

    done = runner.invoke(app, ["migrate", store.root], env=ENV)
    assert done.exit_code == 0, done.output
    assert "│ rejects │ 3 │" in " ".join(done.output.split()), done.output
    assert "verified by row count and keys" in done.output
    migrated = DatasetStore(store.root)
    assert {r["subject"]: r["detail"] for r in migrated.read("rejects")}["file-0.png"] == "newer"
    assert migrated.count("rejects") == 3
    assert runner.invoke(app, ["status", "--root", store.root], env=ENV).exit_code == 0

    again = runner.invoke(app, ["migrate", store.root], env=ENV)
    assert again.exit_code == 2, again.output
    assert again.output.startswith(f"error: {store.root} was already migrated ("), again.output
    assert len(again.output.strip().splitlines()) == 1


def test_migrate_on_a_store_with_nothing_to_convert(store):
    record_rejects(store, _rejects(2))
    result = runner.invoke(app, ["migrate", "--root", store.root], env=ENV)
    assert result.exit_code == 2, result.output
    assert result.output.strip() == f"error: {store.root} has no first-release tables; nothing to migrate"
