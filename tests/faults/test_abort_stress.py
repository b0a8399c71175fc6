"""Exit codes mean what happened: ``aescot status`` and Lance table reads (a projected scan, a key
lookup through the index, a backlog anti-join), run in many processes, never abort at exit (pyarrow 26
did, now and then, when Parquet was read through an fsspec handle; lance, pyarrow and fsspec are all
loaded in each process here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from aescot.ingest import ingest
from aescot.samples import write_sample_sources
from aescot.store import DatasetStore

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> str:
    base = tmp_path_factory.mktemp("stress")
    store = DatasetStore(base / "ds")
    ingest(store, [str(write_sample_sources(base / "src", n=4, size=96))])
    return store.root


def run_driver(root: str, runs: int, mode: str = "store") -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "tests.faults.abort_driver", root, str(runs), "2", mode],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_status_and_store_reads_never_abort(tiny_root):
    result = run_driver(tiny_root, 40)
    assert result["exit_codes"] == {"0": 40}, result


@pytest.mark.slow
@pytest.mark.timeout(1800)  # each child's interpreter exit costs ~0.5 s of CPU; 200 of them on 2 cores
def test_status_and_store_reads_never_abort_in_200_runs(tiny_root):
    result = run_driver(tiny_root, 200)
    print(json.dumps(result))
    assert result["exit_codes"] == {"0": 200}, result
