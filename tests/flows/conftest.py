"""Fixtures for flow tests: Prefect's real API (ephemeral, in-process) and a real `prefect server`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests import realparts

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def prefect_api():
    """Prefect's real API on a temporary SQLite database for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    harness = prefect_test_harness(server_startup_timeout=180)
    try:
        harness.__enter__()
        failed = None
    except Exception as exc:  # noqa: BLE001 - Prefect is a real part: it fails the run, saying why
        failed = repr(exc)
    if failed:
        realparts.broken("Prefect (ephemeral API)", failed)
    try:
        yield
    finally:
        harness.__exit__(None, None, None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """`prefect server start` as users run it, on loopback; yields the env to talk to it."""
    home = tmp_path_factory.mktemp("prefect-server-home")
    port = _free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_UI_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    log = open(home / "server.log", "wb")  # noqa: SIM115 (held open for the server process lifetime)
    prefect = str(Path(sys.executable).with_name("prefect"))
    proc = subprocess.Popen(
        [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            log.close()
            realparts.broken(
                "Prefect server", f"exited with code {proc.returncode}", (home / "server.log").read_text()
            )
        time.sleep(0.5)
    else:
        proc.kill()
        log.close()
        realparts.broken("Prefect server", "not healthy after 180 s", (home / "server.log").read_text())
    yield {**env, "PREFECT_API_URL": api}
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
