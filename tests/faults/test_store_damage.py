"""Damaged stores, missing images, dead writers' temp files, mistyped roots: one line, never silence."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from aescot.cli.main import app
from aescot.doctor import check_store, repair_store
from aescot.errors import DamagedStore, NoDataset
from aescot.ingest import ingest
from aescot.rejects import Reject, record_rejects
from aescot.samples import write_sample_sources
from aescot.store import DatasetStore

runner = CliRunner()


@pytest.fixture
def ingested(tmp_path) -> DatasetStore:
    store = DatasetStore(tmp_path / "ds")
    ingest(store, [str(write_sample_sources(tmp_path / "src", n=4, size=96))])
    record_rejects(
        store, [Reject("ingest", f"f{i}.png", "not_an_image", "x" * 400 + str(i)) for i in range(300)]
    )
    return store


def _part(store: DatasetStore, table: str) -> Path:
    return store.local_path(store.part_keys(table)[0])


@pytest.mark.parametrize("damage", ["zero_bytes", "truncated"])
def test_a_damaged_part_is_one_line_naming_table_file_and_fix(ingested, damage):
    part = _part(ingested, "sources")
    data = part.read_bytes()
    part.write_bytes(b"" if damage == "zero_bytes" else data[: len(data) // 2])
    with pytest.raises(DamagedStore) as err:
        ingested.read("sources")
    assert "table 'sources'" in str(err.value) and str(part) in str(err.value)
    for args in (["status"], ["export", str(ingested.root) + "-out"], ["doctor"]):
        result = runner.invoke(app, [*args, "--root", ingested.root])
        assert result.exit_code == 3, (args, result.output)
        assert "Traceback" not in result.output
        if args == ["doctor"]:
            assert "damaged_file" in result.output
            assert [p.path for p in check_store(ingested).damaged()] == [str(part)]
        else:
            line = result.output.strip()
            assert line.startswith("error: table 'sources'") and "aescot doctor" in line, line


def _garble_column(path: Path, column: str) -> None:
    """Overwrite the middle of one column's data pages, leaving the footer and other columns intact."""
    meta = pq.read_metadata(path)
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    chunk = meta.row_group(0).column(names.index(column))
    start = chunk.data_page_offset + 40
    length = chunk.total_compressed_size - 80
    assert length > 64, "column chunk too small to garble"
    data = bytearray(path.read_bytes())
    data[start : start + length] = bytes((b * 7 + 13) % 256 for b in data[start : start + length])
    path.write_bytes(bytes(data))


def test_garbled_pages_status_says_what_it_verified_doctor_finds_them(ingested):
    part = _part(ingested, "rejects")
    _garble_column(part, "detail")
    status = runner.invoke(app, ["status", "--root", ingested.root])
    assert status.exit_code == 0, status.output
    assert "verified:" in status.output and "aescot doctor" in status.output  # says what it did not read
    doctor = runner.invoke(app, ["doctor", "--root", ingested.root])
    assert doctor.exit_code == 3, doctor.output
    assert "damaged_file" in doctor.output and "rejects" in doctor.output


def test_doctor_reports_missing_images_status_warns(ingested):
    key = ingested.read("sources")[0]["image_key"]
    os.remove(ingested.local_path(key))
    status = runner.invoke(app, ["status", "--root", ingested.root])
    assert status.exit_code == 0 and "warning: 1 referenced images are missing" in status.output, (
        status.output
    )
    report = check_store(ingested)
    assert [(p.kind, p.table) for p in report.problems] == [("missing_image", "sources")]
    assert report.problems[0].path.endswith(key) and "aescot ingest" in report.problems[0].fix
    doctor = runner.invoke(app, ["doctor", "--root", ingested.root])
    assert doctor.exit_code == 3 and "missing_image" in doctor.output


def test_healthy_store_doctor_exits_0_and_checks_every_file(ingested):
    report = check_store(ingested)
    assert report.ok and report.files == 2 and report.rows == 304 and report.images == 8
    result = runner.invoke(app, ["doctor", "--root", ingested.root])
    assert result.exit_code == 0 and "no problems found" in result.output


def test_repair_moves_damage_aside_and_names_rows_to_rebuild(ingested, tmp_path):
    part = _part(ingested, "rejects")
    _garble_column(part, "detail")
    report = repair_store(ingested)
    assert len(report.moved) == 1
    moved = report.moved[0]
    assert moved.table == "rejects" and moved.rows == 300 and len(moved.keys) == 300
    assert not part.exists() and Path(moved.to).exists() and "quarantine" in moved.to
    assert ingested.count("rejects") == 0 and ingested.count("sources") == 4  # reads work again
    assert check_store(ingested).ok
    result = runner.invoke(app, ["repair", "--root", ingested.root])
    assert result.exit_code == 0 and "nothing to repair" in result.output


def test_repair_cli_says_which_rows_to_rebuild(ingested):
    _part(ingested, "sources").write_bytes(b"")
    result = runner.invoke(app, ["repair", "--root", ingested.root])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "table 'sources' lost an unknown number of rows" in out and "aescot ingest" in out


def test_temp_files_of_dead_writers_are_removed_by_the_next_write(store):
    from aescot.store import _HOST

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], check=True, capture_output=True, text=True
    )
    pid = int(dead.stdout)
    record_rejects(store, [Reject("ingest", "a.png", "not_an_image", "d")])
    folder = store.local_path("tables/rejects")
    stale = folder / f".tmp-{_HOST}-{pid}-{'0' * 32}"
    stale.write_bytes(b"PAR1 half a file")
    alive = folder / f".tmp-{_HOST}-{os.getpid()}-{'1' * 32}"  # a live writer's: must stay
    alive.write_bytes(b"PAR1 being written")
    fresh = DatasetStore(store.root)  # the next writer (a new process would be the same)
    record_rejects(fresh, [Reject("ingest", "b.png", "not_an_image", "d")])
    assert not stale.exists() and alive.exists()
    assert fresh.count("rejects") == 2


READ_COMMANDS = [
    ["status"],
    ["agreement"],
    ["filter"],
    ["export", "OUT"],
    ["labelstudio", "status"],
    ["doctor"],
    ["push"],
    ["collect"],
    ["generate"],
]


@pytest.mark.parametrize("args", READ_COMMANDS, ids=lambda a: "-".join(a))
def test_read_commands_never_create_a_root(tmp_path, args):
    root = tmp_path / "mistyped"
    args = [str(tmp_path / "out") if a == "OUT" else a for a in args]
    result = runner.invoke(app, [*args, "--root", str(root)])
    assert result.exit_code == 2, result.output
    assert result.output.strip().startswith(f"error: no dataset at {root}"), result.output
    assert "no dataset at" in result.output and not root.exists()
    with pytest.raises(NoDataset):
        DatasetStore(root, create=False)


@pytest.mark.parametrize(
    ("args", "option"),
    [(["push", "--chunk-size", "-5"], "--chunk-size"), (["ingest", "SRC", "--workers", "0"], "--workers")],
)
def test_bad_option_values_are_one_line_naming_the_option(ingested, tmp_path, args, option):
    args = [str(tmp_path / "src") if a == "SRC" else a for a in args]
    result = runner.invoke(app, [*args, "--root", ingested.root])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {option}:"), result.output
