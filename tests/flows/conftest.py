"""Fixtures for flow tests: Prefect's real API (ephemeral, in-process) and a real `prefect server`."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

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


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """`prefect server start` as users run it, on loopback; yields the env to talk to it."""
    home = tmp_path_factory.mktemp("prefect-server-home")
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_UI_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    from flows.prefect_api import PrefectUnavailable, start_prefect_server

    try:
        proc, api = start_prefect_server(env, home / "server.log")
    except PrefectUnavailable as exc:
        realparts.broken("Prefect server", str(exc), (home / "server.log").read_text())
    yield {**env, "PREFECT_API_URL": api}
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
