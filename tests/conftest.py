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

import pytest  # noqa: E402

from aescot.store import DatasetStore  # noqa: E402


@pytest.fixture
def store(tmp_path) -> DatasetStore:
    """An empty dataset store on local disk."""
    return DatasetStore(tmp_path / "ds")


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3-compatible server (moto's server mode) on loopback, with a bucket ``aescot``."""
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is in the dev extra")
    import boto3

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=url).create_bucket(Bucket="aescot")
    yield url
    server.stop()
