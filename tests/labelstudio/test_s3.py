"""A dataset on object storage: tasks reference s3:// URIs and Label Studio presigns them (moto S3)."""

from __future__ import annotations

import httpx
import pytest

from aescot.labelstudio import push_items
from aescot.labelstudio.push import TASKS_TABLE
from aescot.labelstudio.server import free_port
from tests import realparts
from tests.labelstudio.helpers import make_items, s3_dataset

pytestmark = pytest.mark.labelstudio


@pytest.fixture
def s3_endpoint():
    server_mod = realparts.need(
        "moto.server", "the S3 server (moto)", "the dev extra: pip install -e '.[dev]'"
    )
    port = free_port()
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def ls_config(labelstudio_server, tmp_path):
    """A server of its own that may reach loopback storage (Label Studio blocks private networks by default)."""
    from aescot.labelstudio import LabelStudioConfig
    from aescot.labelstudio.server import LocalServer

    cfg = labelstudio_server.cfg.model_copy(
        update={
            "data_dir": tmp_path / "ls-data",
            "document_root": tmp_path,
            "port": 0,
            "extra_env": {"USE_DEFAULT_BANNED_SUBNETS": "false"},
        }
    )
    server = LocalServer(cfg)
    server.start()
    yield LabelStudioConfig(url=server.url, api_key=server.token, project_title="s3 dataset")
    server.stop()


def test_object_store_items_are_presigned_by_label_studio(s3_endpoint, ls_config):
    realparts.need("s3fs", "S3 access (s3fs)", "the dev or s3 extra: pip install -e '.[s3]'")
    _, store, cfg = s3_dataset(s3_endpoint, "aescot-ls", ls_config)
    item = make_items(store, 1, image_pool=5)[0]
    report = push_items(store, cfg)
    assert report.pushed == 1
    task_id = store.read(TASKS_TABLE.name)[0]["task_id"]
    headers = {"Authorization": f"Token {cfg.api_key.get_secret_value()}"}
    with httpx.Client(base_url=cfg.url, headers=headers, follow_redirects=False, timeout=30) as http:
        raw = http.get(f"/api/tasks/{task_id}", params={"resolve_uri": "false"}).json()["data"]
        key = item["candidates"][1]["image_key"]
        assert raw["B"] == f"s3://aescot-ls/ds/images/{key[len('images/') :]}"
        resolved = http.get(f"/api/tasks/{task_id}").json()["data"]["B"]
        assert resolved != raw["B"]  # Label Studio rewrote it to its presign proxy
        r = http.get(resolved if resolved.startswith("http") else cfg.url + resolved)
        if r.is_redirect:
            r = httpx.get(r.headers["location"], timeout=30)
    assert r.status_code == 200 and r.content == store.read_bytes(key)
