"""``aescot status`` on an unchanged store is served from its cache, without Lance; any change to the
store (a commit, a damaged or deleted data file, an image added or removed) takes the full path."""

from __future__ import annotations

import json
import os
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


def test_an_unchanged_store_is_counted_once_then_served_without_lance(ingested):
    first_code, first, first_heavy = _status(ingested.root)
    assert first_code == 0 and "lance" in first_heavy, first  # counted with Lance, cache written
    assert os.path.exists(status_cache.cache_path(ingested.root))
    again_code, again, again_heavy = _status(ingested.root)
    assert again_code == 0 and again_heavy == [], again
    assert again == first  # the same table, word for word
    assert "│ sources │ 4 │" in " ".join(again.split())


def test_a_commit_makes_status_count_again(ingested, tmp_path):
    assert runner.invoke(app, ["status", "--root", ingested.root]).exit_code == 0
    ingest(ingested, [str(write_sample_sources(tmp_path / "more", n=6, size=64, seed=7))])
    assert status_cache.fresh_status(ingested.root) is None
    code, shown, heavy = _status(ingested.root)
    assert code == 0 and "lance" in heavy
    assert f"│ sources │ {ingested.count('sources')} │" in " ".join(shown.split()), shown
    assert ingested.count("sources") > 4


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


def test_counts_of_a_store_that_changed_while_counting_are_not_cached(ingested, tmp_path):
    before = status_cache.fingerprint(ingested.root)
    report = status_report(ingested)  # writes the cache: nothing changed meanwhile
    assert status_cache.fresh_status(ingested.root)["stages"] == report["stages"]
    os.remove(status_cache.cache_path(ingested.root))
    ingest(ingested, [str(write_sample_sources(tmp_path / "more", n=2, size=64, seed=9))])
    assert not status_cache.save_status(ingested.root, before, {**report, "files": {}})
    assert not os.path.exists(status_cache.cache_path(ingested.root))
    now = status_cache.fingerprint(ingested.root)  # counts of older versions under a newer fingerprint
    assert not status_cache.save_status(ingested.root, now, {**report, "files": {}})


def test_a_first_release_folder_is_never_served_from_the_cache(ingested):
    assert runner.invoke(app, ["status", "--root", ingested.root]).exit_code == 0
    os.makedirs(ingested.local_path("tables/labels"))
    (ingested.local_path("tables/labels") / "part-00000.parquet").write_bytes(b"PAR1")
    assert status_cache.fingerprint(ingested.root) is None
    result = runner.invoke(app, ["status", "--root", ingested.root])
    assert result.exit_code != 0 and "aescot migrate" in result.output, result.output
