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
