"""Session-wide test environment: offline hub, quiet Prefect, per-run PREFECT_HOME."""

from __future__ import annotations

import os
import tempfile

# Must be set before diffusers/transformers/prefect are imported anywhere.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="aescot-prefect-home-"))
# One console width everywhere: rich wraps CLI output at the terminal's width when it finds one and at
# 80 columns in xdist workers (no terminal), so assertions on a printed line would depend on where the
# test ran (tests/teacher/test_cli.py failed only under xdist: "6 \nconsistent").
os.environ.setdefault("COLUMNS", "200")

import pytest

from aescot.store import DatasetStore
from tests import realparts

# --- parallel runs (pytest-xdist, `--dist loadgroup` in scripts/test.sh) -----------------------------
# Session fixtures are per worker, and a group's tests all run in one worker. The tests of a Prefect
# server (the flow tests, some of which also use Label Studio) form one group, so Prefect starts
# once; the other Label Studio tests form another, so Label Studio starts at most twice per run
# (~8 s each from the cached template) instead of once per worker, while the ~5 minutes of server
# tests still run on two workers. Tests may stop and restart their worker's server (test_push does).
SERVER_GROUPS = (
    ("flows", {"prefect_api", "prefect_server"}),
    ("labelstudio", {"labelstudio_server"}),
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        needs = set(getattr(item, "fixturenames", ()))
        for group, fixtures in SERVER_GROUPS:
            if needs & fixtures:
                item.add_marker(pytest.mark.xdist_group(group))
                break


@pytest.fixture
def store(tmp_path) -> DatasetStore:
    """An empty dataset store on local disk."""
    return DatasetStore(tmp_path / "ds")


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3-compatible server (moto's server mode) on loopback, with a bucket ``aescot``."""
    moto_server = realparts.need(
        "moto.server", "the S3 server (moto)", "the dev extra: pip install -e '.[dev]'"
    )
    import boto3

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    try:
        server.start()
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        boto3.client("s3", endpoint_url=url).create_bucket(Bucket="aescot")
        failed = None
    except Exception as exc:  # noqa: BLE001 - any failure to come up is reported with its cause
        failed = repr(exc)
    if failed:
        realparts.broken("the S3 server (moto)", failed)
    yield url
    server.stop()


# --- Label Studio (issue 4): one real server per test session, reused by the flow tests -------------


def start_labelstudio(base, part: str, **config):
    """Start a real Label Studio with its data under ``base`` (``config``: more LocalServerConfig
    fields, e.g. a database). Not installed: skips locally, fails in CI; installed but not starting:
    fails everywhere, with its log (``tests/realparts.py``)."""
    from aescot.labelstudio.server import (
        LOG_FILE,
        LocalServer,
        LocalServerConfig,
        ServerNotFound,
        ServerStartError,
        find_binary,
    )

    try:
        find_binary()
        missing = None
    except ServerNotFound as exc:
        missing = str(exc)
    if missing:
        realparts.absent("Label Studio", missing)
    (base / "datasets").mkdir()
    server = LocalServer(
        LocalServerConfig(data_dir=base / "ls-data", document_root=base / "datasets", **config)
    )
    try:
        server.start()
        failed = None
    except ServerStartError as exc:
        failed = str(exc)
    if failed:
        log = base / "ls-data" / LOG_FILE
        realparts.broken(part, failed, log.read_text(errors="replace") if log.exists() else "")
    return server


@pytest.fixture(scope="session")
def labelstudio_server(tmp_path_factory):
    """A real Label Studio on loopback (SQLite, started from a copied initialised data dir).

    Its local-files document root is a session folder; put datasets under it (see ``ls_store``).
    No server installed: skips locally, fails in CI (``CI=true`` or ``AESCOT_REQUIRE_LABEL_STUDIO=1``);
    a server that does not start fails everywhere, with its log (see ``tests/realparts.py``).
    """
    server = start_labelstudio(tmp_path_factory.mktemp("labelstudio"), "Label Studio")
    yield server
    server.stop()


@pytest.fixture
def ls_store(labelstudio_server, tmp_path) -> DatasetStore:
    """An empty dataset store under the session server's document root (so its images can be served)."""
    import uuid

    return DatasetStore(labelstudio_server.document_root / f"ds-{uuid.uuid4().hex[:10]}")


@pytest.fixture
def ls_config(labelstudio_server, request):
    """Settings for a fresh project (unique title per test) on the session server."""
    import uuid

    from aescot.labelstudio import LabelStudioConfig

    return LabelStudioConfig(
        url=labelstudio_server.url,
        api_key=labelstudio_server.token,
        document_root=labelstudio_server.document_root,
        project_title=f"{request.node.name[:40]} {uuid.uuid4().hex[:6]}",
    )
