"""``aescot status`` on an unchanged store is served from its cache, without Lance; any change to the
store (a commit, a damaged or deleted data file, an image added or removed) takes the full path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aescot import status_cache
from aescot.cli.main import app
from aescot.ingest import ingest
from aescot.samples import write_sample_sources
from aescot.status import status_report
from aescot.store import DatasetStore

runner = CliRunner()
HEAVY = ("pyarrow", "lance", "fsspec", "numpy", "PIL", "pydantic")


@pytest.fixture
def ingested(tmp_path) -> DatasetStore:
    store = DatasetStore(tmp_path / "ds")
    ingest(store, [str(write_sample_sources(tmp_path / "src", n=4, size=64))])
    return store


def _status(root: str) -> tuple[int, str, list[str]]:
    """``aescot status`` in a fresh interpreter: exit code, output, heavy modules it imported."""
    code = (
        "import sys; from aescot.cli.main import app\n"
        f"try:\n    app(['status', '--root', {root!r}])\nexcept SystemExit as e:\n    code = e.code\n"
        f"print('\\n' + __import__('json').dumps([code, [m for m in {HEAVY!r} if m in sys.modules]]))"
    )
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    *shown, last = done.stdout.strip().splitlines()
    exit_code, heavy = json.loads(last)
    return exit_code, "\n".join(shown) + done.stderr, heavy


def test_a_store_begun_by_this_release_is_served_without_lance_from_its_first_commit(ingested):
    code, shown, heavy = _status(ingested.root)  # the ingest into a new root recorded everything
    assert code == 0 and heavy == [], shown
    assert "│ sources │ 4 │" in " ".join(shown.split())
    assert shown == _full_status(ingested.root)


def test_an_unchanged_store_is_counted_once_then_served_without_lance(ingested):
    shutil.rmtree(status_cache.cache_path(ingested.root))  # a store no status has counted yet
    first_code, first, first_heavy = _status(ingested.root)
    assert first_code == 0 and "lance" in first_heavy, first  # counted with Lance, cache written
    assert os.path.exists(status_cache.cache_path(ingested.root))
    again_code, again, again_heavy = _status(ingested.root)
    assert again_code == 0 and again_heavy == [], again
    assert again == first  # the same table, word for word
    assert "│ sources │ 4 │" in " ".join(again.split())


def _full_status(root: str) -> str:
    """What the full path prints (the cache removed first), in a fresh interpreter."""
    shutil.rmtree(status_cache.cache_path(root), ignore_errors=True)
    code, shown, heavy = _status(root)
    assert code == 0 and "lance" in heavy, shown
    return shown


def test_a_commit_keeps_status_current_without_lance(ingested, tmp_path):
    assert runner.invoke(app, ["status", "--root", ingested.root]).exit_code == 0
    bad = tmp_path / "bad" / "broken.png"
    bad.parent.mkdir()
    bad.write_bytes(b"not a png")
    ingest(ingested, [str(write_sample_sources(tmp_path / "more", n=6, size=64, seed=7)), str(bad)])
    code, shown, heavy = _status(ingested.root)  # the ingest recorded its commits and its images
    assert code == 0 and heavy == [], shown
    flat = " ".join(shown.split())
    assert f"│ sources │ {ingested.count('sources')} │" in flat and ingested.count("sources") == 10, shown
    assert "│ rejected at ingest │ 1 │" in flat, shown
    assert shown == _full_status(ingested.root)  # word for word what counting in full prints


def test_a_commit_its_writer_did_not_record_makes_status_count_again(ingested, tmp_path):
    assert runner.invoke(app, ["status", "--root", ingested.root]).exit_code == 0
    ingested.tables.on_commit = None  # a writer killed between its commit and the record
    ingest(ingested, [str(write_sample_sources(tmp_path / "more", n=3, size=64, seed=8))])
    assert status_cache.fresh_status(ingested.root) is None
    code, shown, heavy = _status(ingested.root)
    assert code == 0 and "lance" in heavy
    assert "│ sources │ 7 │" in " ".join(shown.split()), shown
    assert _status(ingested.root)[2] == []  # and the full path recorded it again


def test_an_image_added_by_hand_makes_status_count_again(ingested):
    assert runner.invoke(app, ["status", "--root", ingested.root]).exit_code == 0
    key = ingested.read_arrow("sources", ["image_key"])["image_key"][0].as_py()
    shutil.copy(ingested.local_path(key), ingested.local_path(key).with_name("copy.png"))
    assert status_cache.fresh_status(ingested.root) is None


def test_rows_referencing_an_absent_image_are_counted_missing_at_their_commit(ingested):
    assert runner.invoke(app, ["status", "--root", ingested.root]).exit_code == 0
    row = ingested.read("sources")[0]
    ghost = "images/ff/" + "f" * 64 + ".png"
    ingested.upsert("sources", [{**row, "source_id": "e" * 64, "image_key": ghost}])
    code, shown, heavy = _status(ingested.root)
    assert code == 0 and heavy == [], shown
    assert f"warning: 1 referenced images are missing (e.g. {ghost})" in " ".join(shown.split()), shown
    assert shown == _full_status(ingested.root)


def test_an_image_deleted_between_two_writes_is_not_taken_for_ours(ingested, tmp_path):
    """A folder that changed between this process's image writes (or before its first) is dropped
    from the record at its commit: status then lists the images in full."""
    assert runner.invoke(app, ["status", "--root", ingested.root]).exit_code == 0
    key = ingested.read_arrow("sources", ["image_key"])["image_key"][0].as_py()
    folder = key.split("/")[1]
    ingested.write_bytes(f"images/{folder}/" + "0" * 64 + ".png", b"one")
    os.remove(ingested.local_path(key))  # by hand, between our writes
    ingested.write_bytes(f"images/{folder}/" + "1" * 64 + ".png", b"two")
    ingest(ingested, [str(write_sample_sources(tmp_path / "more", n=2, size=64, seed=11))])
    assert status_cache.fresh_status(ingested.root) is None
    result = runner.invoke(app, ["status", "--root", ingested.root])
    assert result.exit_code == 0 and "warning: 1 referenced images are missing" in result.output


def _data_file(store: DatasetStore, table: str) -> Path:
    files = sorted(store.local_path(f"tables/{table}.lance/data").glob("*.lance"))
    assert len(files) == 1, files
    return files[0]


@pytest.mark.parametrize("damage", ["truncated", "deleted", "garbage", "zero_bytes"])
def test_a_file_damaged_after_the_last_status_is_named(ingested, damage):
    assert runner.invoke(app, ["status", "--root", ingested.root]).exit_code == 0
    data_file = _data_file(ingested, "sources")
    data = data_file.read_bytes()
    if damage == "truncated":
        data_file.write_bytes(data[: len(data) // 2])
    elif damage == "deleted":
        data_file.unlink()
    elif damage == "garbage":  # same size, every byte changed
        data_file.write_bytes(bytes((b * 7 + 13) % 256 for b in data))
    else:
        data_file.write_bytes(b"")
    result = runner.invoke(app, ["status", "--root", ingested.root], env={"COLUMNS": "400"})
    assert result.exit_code == 3, result.output
    assert result.output.startswith("error: table 'sources'") and data_file.name in result.output


def test_an_image_deleted_after_the_last_status_is_warned_about(ingested):
    assert runner.invoke(app, ["status", "--root", ingested.root]).exit_code == 0
    os.remove(ingested.local_path(ingested.read_arrow("sources", ["image_key"])["image_key"][0].as_py()))
    result = runner.invoke(app, ["status", "--root", ingested.root])
    assert result.exit_code == 0 and "warning: 1 referenced images are missing" in result.output


def test_images_counted_while_the_store_changed_are_not_saved(ingested, tmp_path):
    before = status_cache.fingerprint(ingested.root)
    assert status_cache.save_images(ingested.root, before, [])
    ingest(ingested, [str(write_sample_sources(tmp_path / "more", n=2, size=64, seed=9))])
    assert not status_cache.save_images(ingested.root, before, [])  # a commit landed meanwhile


def test_a_first_release_folder_is_never_served_from_the_cache(ingested):
    assert runner.invoke(app, ["status", "--root", ingested.root]).exit_code == 0
    os.makedirs(ingested.local_path("tables/labels"))
    (ingested.local_path("tables/labels") / "part-00000.parquet").write_bytes(b"PAR1")
    assert status_cache.fingerprint(ingested.root) is None
    result = runner.invoke(app, ["status", "--root", ingested.root])
    assert result.exit_code != 0 and "aescot migrate" in result.output, result.output


def test_two_writers_at_once_leave_a_record_that_is_right_or_unused(ingested, tmp_path):
    """Two ingests in two processes, into the same image folders at the same moment: whatever the
    record says afterwards is either what counting in full says, or not used."""
    assert runner.invoke(app, ["status", "--root", ingested.root]).exit_code == 0
    manifests = [write_sample_sources(tmp_path / f"w{i}", n=12, size=64, seed=20 + i) for i in range(2)]
    code = (
        "import sys; from aescot.ingest import ingest; from aescot.store import open_store; "
        "ingest(open_store(sys.argv[1]), [sys.argv[2]])"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, ingested.root, str(m)]) for m in manifests]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    cached = status_cache.fresh_status(ingested.root)
    full = status_report(DatasetStore(ingested.root))
    assert full["stages"][0] == ["sources", 28, ""]
    if cached is not None:
        assert cached == full
