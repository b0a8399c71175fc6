"""The thin CLI over the stage functions, against an existing server (env) and the embedded one."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from aescot.cli.main import app
from aescot.labelstudio.push import TASKS_TABLE
from aescot.labelstudio.server import LocalServerConfig, free_port
from aescot.store import DatasetStore
from tests.labelstudio.helpers import answer, make_items, sign_up

pytestmark = pytest.mark.labelstudio
runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result


def test_setup_push_collect_agreement_with_url_and_token_from_env(ls_store, ls_config, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_URL", ls_config.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", ls_config.api_key.get_secret_value())
    make_items(ls_store, 3)
    root, title = str(ls_store.root), ls_config.project_title
    first = invoke("labelstudio", "setup", "--root", root, "--project", title)
    assert first.exit_code == 0 and "created" in first.output
    assert "up to date" in invoke("labelstudio", "setup", "--root", root, "--project", title).output
    assert "pushed 3 " in invoke("push", "--root", root, "--project", title).output
    assert "pushed 0 " in invoke("push", "--root", root, "--project", title).output
    person = sign_up(ls_config.url, ls_config.api_key.get_secret_value())
    person.annotate(
        ls_store.read(TASKS_TABLE.name)[0]["task_id"],
        answer("A", ["A"], {L: ["lighting_shadow"] for L in "BCD"}),
    )
    out = invoke("collect", "--root", root, "--project", title).output
    assert "annotations new 1" in out and "labels written 1" in out
    report = json.loads(invoke("agreement", "--root", root, "--json").output)
    assert report["agreement"]["items"] == 1
    assert ls_config.api_key.get_secret_value() not in first.output + out


def test_embedded_server_start_status_stop(tmp_path, monkeypatch, labelstudio_server):
    defaults = LocalServerConfig(
        data_dir=tmp_path, document_root=tmp_path
    )  # same credentials: template reuse
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    root = str(tmp_path / "ds")
    missing = invoke("labelstudio", "status", "--root", root)  # a read command never creates a root
    assert missing.exit_code == 2 and "no dataset at" in missing.output
    DatasetStore(root).put_image(b"\x89PNG")  # a dataset (one image): now push names the missing server
    assert "aescot labelstudio start" in invoke("push", "--root", root).output
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", defaults.token.get_secret_value())
    monkeypatch.setenv("LABEL_STUDIO_PASSWORD", defaults.password.get_secret_value())
    started = invoke("labelstudio", "start", "--root", root, "--port", str(free_port()))
    try:
        assert started.exit_code == 0 and "running at" in started.output, started.output
        assert defaults.password.get_secret_value() not in started.output
        monkeypatch.delenv("LABEL_STUDIO_API_KEY")  # from here on the dataset's own credentials are used
        assert invoke("labelstudio", "status", "--root", root).exit_code == 0
        setup = invoke("labelstudio", "setup", "--root", root)
        assert setup.exit_code == 0 and f"local:{tmp_path / 'ds' / 'images'}" in setup.output
    finally:
        assert invoke("labelstudio", "stop", "--root", root).output.strip() == "stopped"
    assert invoke("labelstudio", "status", "--root", root).exit_code == 1
