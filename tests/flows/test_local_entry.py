"""``python -m flows.build_screening_set``: the flow's local entry point, as a person runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aescot.samples import write_sample_sources

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    base.update({"PREFECT_HOME": str(tmp_path / "prefect-home"), "DO_NOT_TRACK": "1", **env})
    return subprocess.run(
        [sys.executable, "-m", "flows.build_screening_set", *args],
        cwd=REPO,
        env=base,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_a_local_run_advances_the_store_and_prints_its_summary(tmp_path):
    manifest = write_sample_sources(tmp_path / "in", n=3, size=128)  # returns the manifest
    root = tmp_path / "ds"
    done = _run(
        tmp_path, "--root", str(root), "--sources", str(manifest), "--no-labelstudio", "-p", "teacher=off"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout[done.stdout.index("{") :])
    assert summary["ingest"]["added"] == 3 and summary["generate"]["items"] == 3


def test_a_bad_parameter_is_one_line_and_exit_2_before_any_server_starts(tmp_path):
    done = _run(tmp_path, "--root", str(tmp_path / "ds"), "-p", "batch_size=0")
    assert done.returncode == 2
    error = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert error == ["error: invalid parameters: batch_size: Input should be greater than or equal to 1"]
    assert "temporary server" not in done.stderr, "no Prefect API should start for a bad parameter"


def test_an_api_that_cannot_start_in_time_is_one_line_with_the_fix(tmp_path):
    done = _run(
        tmp_path, "--root", str(tmp_path / "ds"), PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="1"
    )
    assert done.returncode == 3, done.stderr[-2000:]
    error = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "prefect server start" in error[0] and "2 tries" in error[0]
    assert "Traceback" not in done.stderr
