"""Damaged table files (zero bytes, truncated, deleted, garbage, garbled pages), missing images, dead
writers' temp files, mistyped roots: one line naming the table and the file, never fewer rows in silence."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aescot.cli.main import app
from aescot.doctor import check_store, repair_store
from aescot.errors import DamagedStore, NoDataset, StoreError
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


def _data_file(store: DatasetStore, table: str) -> Path:
    """The table's one data file (the fixture writes each table in one upsert: one fragment)."""
    files = sorted(store.local_path(f"tables/{table}.lance/data").glob("*.lance"))
    assert len(files) == 1, files
    return files[0]


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "zero_bytes":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "deleted":
        path.unlink()
    elif how == "garbage":
        path.write_bytes(bytes((b * 7 + 13) % 256 for b in data))


@pytest.mark.parametrize("damage", ["zero_bytes", "truncated", "deleted", "garbage"])
def test_a_damaged_data_file_is_one_line_naming_table_file_and_fix(ingested, damage):
    data_file = _data_file(ingested, "sources")
    _damage(data_file, damage)
    for columns in (None, ["source_id"]):  # the whole table, and the key column alone
        with pytest.raises(DamagedStore) as err:
            DatasetStore(ingested.root).read_arrow("sources", columns)
        message = str(err.value)
        assert "table 'sources'" in message and str(data_file) in message, message
        assert f"aescot doctor --root {ingested.root}`" in message, message
    assert ingested.count("sources") == 4  # the count is the manifest's: never fewer rows, silently
    for args in (["status"], ["export", str(ingested.root) + "-out"], ["doctor"], ["doctor", "--quick"]):
        result = runner.invoke(app, [*args, "--root", ingested.root], env={"COLUMNS": "400"})
        assert result.exit_code == 3, (args, result.output)
        assert "Traceback" not in result.output and "panicked" not in result.output
        if args[0] == "doctor":
            assert "damaged_file" in result.output and data_file.name in result.output, result.output
            assert [p.path for p in check_store(ingested).damaged()] == [str(data_file)]
        else:
            line = result.output.strip()
            assert line.startswith("error: table 'sources'") and "aescot doctor" in line, line
            assert str(data_file) in " ".join(result.output.split()), line


def test_a_bad_query_on_readable_files_is_not_reported_as_damage(ingested):
    import pyarrow.compute as pc

    for args in ((["source_id", "source_id"],), (["no_such_column"],), (None, pc.field("nope") == "x")):
        with pytest.raises(StoreError) as err:
            ingested.read_arrow("sources", *args)
        assert not isinstance(err.value, DamagedStore), err.value
        assert str(err.value).startswith("table sources: read failed:"), err.value


def _garble_column(path: Path, column: str) -> None:
    """Overwrite the middle of one column's data buffer, leaving the footer and other columns intact."""
    from lance.file import LanceFileReader  # test instrumentation: where the column's bytes are

    meta = LanceFileReader(str(path)).metadata()
    col = meta.columns[meta.schema.names.index(column)]
    buf = max((b for page in col.pages for b in page.buffers), key=lambda b: b.size)
    start, length = buf.position + 40, buf.size - 80
    assert length > 64, "column buffer too small to garble"
    data = bytearray(path.read_bytes())
    data[start : start + length] = bytes((b * 7 + 13) % 256 for b in data[start : start + length])
    path.write_bytes(bytes(data))


def test_garbled_pages_status_says_what_it_verified_doctor_finds_them(ingested):
    data_file = _data_file(ingested, "rejects")
    _garble_column(data_file, "detail")
    status = runner.invoke(app, ["status", "--root", ingested.root])
    assert status.exit_code == 0, status.output
    assert "verified:" in status.output and "aescot doctor" in status.output  # says what it did not read
    quick = runner.invoke(app, ["doctor", "--quick", "--root", ingested.root])
    assert quick.exit_code == 0, quick.output  # sizes and footers are intact
    doctor = runner.invoke(app, ["doctor", "--root", ingested.root], env={"COLUMNS": "400"})
    assert doctor.exit_code == 3, doctor.output
    assert "damaged_file" in doctor.output and "rejects" in doctor.output and data_file.name in doctor.output
    with pytest.raises(DamagedStore, match=data_file.name):
        ingested.read_arrow("rejects")


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
    files = sum(ingested.table_state(t).files for t in ingested.table_names())
    assert report.ok and report.tables == 2 and report.files == files >= 2
    assert report.rows == 304 and report.images == 8  # 4 sources, 300 rejects; 4 images, 4 masks
    result = runner.invoke(app, ["doctor", "--root", ingested.root])
    assert result.exit_code == 0 and "no problems found" in result.output
    status = runner.invoke(app, ["status", "--root", ingested.root], env={"COLUMNS": "200"})
    assert status.exit_code == 0, status.output
    st = ingested.table_state("sources")
    shown = " ".join(status.output.split())
    assert f"│ sources │ 4 │ {st.version} │ {st.fragments} │ {st.files} │" in shown, status.output


def test_repair_takes_damage_out_and_names_rows_to_rebuild(ingested):
    data_file = _data_file(ingested, "rejects")
    keys = set(ingested.column("rejects").to_pylist())
    before = ingested.table_state("rejects").version
    _garble_column(data_file, "detail")
    report = repair_store(ingested)
    assert len(report.moved) == 1
    moved = report.moved[0]
    assert moved.table == "rejects" and moved.rows == 300 and set(moved.keys) == keys  # key column read
    assert moved.path == str(data_file) and moved.to and Path(moved.to).exists() and "quarantine" in moved.to
    assert report.versions["rejects"][0] == before and report.versions["rejects"][1] > before
    fresh = DatasetStore(ingested.root)
    assert fresh.count("rejects") == 0 and fresh.read_arrow("rejects").num_rows == 0  # reads work again
    assert fresh.count("sources") == 4
    assert check_store(fresh).ok
    result = runner.invoke(app, ["repair", "--root", ingested.root])
    assert result.exit_code == 0 and "nothing to repair" in result.output


def test_repair_cli_says_which_rows_to_rebuild_and_the_stage_rebuilds_them(ingested, tmp_path):
    _data_file(ingested, "sources").write_bytes(b"")
    result = runner.invoke(app, ["repair", "--root", ingested.root], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "table 'sources' lost 4 rows (their keys could not be read)" in out and "aescot ingest" in out, out
    assert "nothing to copy" not in out  # the zero-byte file is still there: a copy is kept
    store = DatasetStore(ingested.root)
    assert store.count("sources") == 0 and store.count("rejects") == 300
    ingest(store, [str(tmp_path / "src")])  # the rebuild the report names
    keys = store.column("sources").to_pylist()
    assert len(keys) == len(set(keys)) == 4 and check_store(store).ok


def test_repair_of_a_deleted_file_says_nothing_was_left_to_copy(ingested):
    _data_file(ingested, "sources").unlink()
    report = repair_store(ingested)
    assert [(m.table, m.rows, m.to, m.keys) for m in report.moved] == [("sources", 4, None, [])]
    assert DatasetStore(ingested.root).read_arrow("sources").num_rows == 0


def test_temp_files_of_dead_writers_are_removed_by_the_next_write(store):
    from aescot.store import _HOST, TMP_DIR

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], check=True, capture_output=True, text=True
    )
    pid = int(dead.stdout)
    store.write_json("snapshots/a.json", {"n": 1})
    folder = store.local_path(TMP_DIR)  # where every local write keeps its temp until the rename
    stale = folder / f".tmp-{_HOST}-{pid}-{'0' * 32}"
    stale.write_bytes(b"{half a file")
    alive = folder / f".tmp-{_HOST}-{os.getpid()}-{'1' * 32}"  # a live writer's: must stay
    alive.write_bytes(b"{being written")
    fresh = DatasetStore(store.root)  # the next writer (a new process would be the same)
    fresh.write_json("snapshots/b.json", {"n": 2})
    assert not stale.exists() and alive.exists()
    assert fresh.list_keys("snapshots") == ["snapshots/a.json", "snapshots/b.json"]
    assert sorted(p.name for p in store.local_path("snapshots").iterdir()) == ["a.json", "b.json"]


def test_a_target_on_another_filesystem_is_written_through_a_temp_beside_it(store, monkeypatch):
    """A folder under the root mounted from elsewhere cannot take a rename from the root's temp
    folder (EXDEV): the write goes through a temp in the target's own folder instead."""
    import errno

    real = os.replace
    renames: list[str] = []

    def replace(src, dst):
        renames.append(os.path.dirname(src))
        if os.path.dirname(src) != os.path.dirname(dst):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    store.write_bytes("images/ab/x.png", b"png bytes")
    assert store.read_bytes("images/ab/x.png") == b"png bytes"
    assert renames == [store.local_path(".tmp").as_posix(), store.local_path("images/ab").as_posix()]
    assert sorted(p.name for p in store.local_path("images/ab").iterdir()) == ["x.png"]
    assert not list(store.local_path(".tmp").iterdir())  # the failed temp did not stay behind


READ_COMMANDS = [
    ["status"],
    ["compact"],
    ["migrate"],
    ["repair"],
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
