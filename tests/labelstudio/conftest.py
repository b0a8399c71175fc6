"""Label Studio on PostgreSQL (issue 14): a real PostgreSQL cluster on loopback and a Label Studio server
on it, one of each per session. No PostgreSQL installed: skips locally, fails in CI; installed but not
starting: fails everywhere, with its log (``tests/realparts.py``)."""

from __future__ import annotations

import subprocess

import pytest

from tests import realparts


@pytest.fixture(scope="session")
def pg_cluster():
    from tests.pgcluster import PgCluster, PostgresMissing

    try:
        cluster = PgCluster()
        failed = None
    except PostgresMissing as exc:
        realparts.absent("PostgreSQL", str(exc))
    except subprocess.CalledProcessError as exc:
        failed = f"{exc.cmd[0]} exited {exc.returncode}: {exc.stderr or exc.stdout}"
    if failed:
        realparts.broken("PostgreSQL", failed)
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="session")
def pg_labelstudio(pg_cluster, tmp_path_factory):
    """A real Label Studio whose database is ``pg_cluster`` (its first start migrates it, ~1-2 min)."""
    from tests.conftest import start_labelstudio

    server = start_labelstudio(
        tmp_path_factory.mktemp("labelstudio-pg"),
        "Label Studio on PostgreSQL",
        database=pg_cluster.database,
        startup_timeout_s=600.0,
    )
    yield server
    server.stop()


@pytest.fixture
def pg_store(pg_labelstudio):
    import uuid

    from aescot.store import DatasetStore

    return DatasetStore(pg_labelstudio.document_root / f"ds-{uuid.uuid4().hex[:10]}")


@pytest.fixture
def pg_config(pg_labelstudio, request):
    import uuid

    from aescot.labelstudio import LabelStudioConfig

    return LabelStudioConfig(
        url=pg_labelstudio.url,
        api_key=pg_labelstudio.token,
        document_root=pg_labelstudio.document_root,
        project_title=f"{request.node.name[:40]} {uuid.uuid4().hex[:6]}",
    )
