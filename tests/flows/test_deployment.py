"""`prefect deployment run 'build-screening-set/<name>'` against a real local Prefect server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from aescot.samples import write_sample_sources
from aescot.store import DatasetStore
from tests.flows.conftest import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(prefect_server, tmp_path_factory):
    """`python -m flows.serve --name ci` running against the server until the module ends."""
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    log = open(log_path, "wb")  # noqa: SIM115 (held open for the server process lifetime)
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.serve", "--name", "ci"],
        cwd=REPO,
        env=prefect_server,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = prefect_server["PREFECT_API_URL"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        r = httpx.get(f"{api}/deployments/name/build-screening-set/ci", timeout=5)
        if r.status_code == 200:
            break
        assert proc.poll() is None, log_path.read_text()
        time.sleep(1)
    else:
        raise AssertionError(f"deployment never registered: {log_path.read_text()[-2000:]}")
    yield prefect_server
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def prefect_cli(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    exe = str(Path(sys.executable).with_name("prefect"))
    return subprocess.run(
        [exe, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_deployment_run_completes_and_advances_the_store(served, tmp_path):
    manifest = write_sample_sources(tmp_path / "src", n=3, size=128)
    root = tmp_path / "ds"
    run = prefect_cli(
        served,
        "deployment",
        "run",
        "build-screening-set/ci",
        "-p",
        f"root={json.dumps(str(root))}",
        "-p",
        f"sources={json.dumps([str(manifest)])}",
        "-p",
        "labelstudio=false",
        "-p",
        'teacher="off"',
        "--watch",
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert DatasetStore(root).count("items") == 3


def test_deployment_run_with_a_bad_parameter_fails_fast(served, tmp_path):
    started = time.monotonic()
    run = prefect_cli(
        served,
        "deployment",
        "run",
        "build-screening-set/ci",
        "-p",
        "batch_size=0",
        "-p",
        f"root={json.dumps(str(tmp_path / 'ds'))}",
        "--watch",
        timeout=120,
    )
    assert run.returncode != 0
    assert "batch_size" in run.stdout + run.stderr
    assert time.monotonic() - started < 60
