"""Ingest killed after a batch, then re-run: every input is a source or a reject with its reason."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aescot.cli.main import app
from aescot.ingest import IngestConfig, ingest
from aescot.store import DatasetStore
from tests.faults.corpus import accounted, make_operator_corpus, want

REPO = Path(__file__).resolve().parents[2]
RUN = """
import sys
from aescot.ingest import IngestConfig, ingest
from aescot.store import DatasetStore
ingest(DatasetStore(sys.argv[1]), [sys.argv[2]], IngestConfig(batch_size=4, workers=1))
"""


@pytest.mark.parametrize("batches", [1, 2])
def test_killed_after_a_batch_then_rerun_accounts_for_every_input(tmp_path, batches):
    expected = make_operator_corpus(tmp_path / "in")
    store = DatasetStore(tmp_path / "ds")
    proc = subprocess.Popen([sys.executable, "-c", RUN, store.root, str(tmp_path / "in")], cwd=REPO)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if store.count("sources") >= 4 * batches:  # that many batches of 4 committed
            break
        time.sleep(0.005)
    assert proc.poll() is None, "ingest finished before the kill: the test needs a slower run"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert store.count("sources") < 20, "the kill must land mid-run"

    ingest(store, [str(tmp_path / "in")], IngestConfig(batch_size=4, workers=1))
    assert accounted(store, expected) == want(expected)
    raw = [r["source_id"] for r in store.read("sources")]
    assert len(raw) == len(set(raw)) == 20  # nothing duplicated, even on disk


def test_hidden_files_and_dangling_symlinks_are_counted_as_ignored(tmp_path):
    folder = tmp_path / "in"
    make_operator_corpus(folder, products=2)
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (folder / ".thumbs").mkdir()
    (folder / ".thumbs" / "p-00.png").write_bytes((folder / "p-00.png").read_bytes())
    (folder / "gone.png").symlink_to(tmp_path / "deleted.png")
    (folder / "readme.txt").write_text("notes")
    report = ingest(DatasetStore(tmp_path / "ds"), [str(folder)])
    assert dict(report.ignored) == {"hidden": 2, "dangling_symlink": 1, "not_an_image": 1}
    result = CliRunner().invoke(app, ["ingest", str(folder), "--root", str(tmp_path / "ds2")])
    assert result.exit_code == 0, result.output
    line = " ".join(result.output.split())
    assert "4 ignored (1 dangling symlinks, 2 hidden (dot-files/folders), 1 not images)" in line, (
        result.output
    )
