"""Project setup against the real server: created once, idempotent, config validated by the server."""

from __future__ import annotations

import pytest
from label_studio_sdk.core.api_error import ApiError

from aescot.labelstudio import ensure_project
from aescot.labelstudio.assets import label_config
from tests.labelstudio.helpers import admin

pytestmark = pytest.mark.labelstudio


def test_create_then_rerun_changes_nothing(ls_store, ls_config):
    first = ensure_project(ls_store, ls_config)
    assert first.created and first.storage == f"local:{ls_store.root}/images"
    again = ensure_project(ls_store, ls_config)
    assert (again.id, again.uid, again.created, again.changed) == (first.id, first.uid, False, [])
    client = admin(ls_config)
    project = client.projects.get(first.id)
    assert project.label_config.strip() == label_config(ls_config).strip()
    assert "appearance_deformation" in project.expert_instruction and project.show_instruction
    storages = list(client.import_storage.local.list(project=first.id))
    assert [s.path for s in storages] == [f"{ls_store.root}/images"]
    titled = [p for p in client.projects.list() if p.title == ls_config.project_title]
    assert len(titled) == 1


def test_drifted_settings_are_put_back(ls_store, ls_config):
    project = ensure_project(ls_store, ls_config)
    admin(ls_config).projects.update(project.id, show_instruction=False, maximum_annotations=5)
    fixed = ensure_project(ls_store, ls_config)
    assert sorted(fixed.changed) == ["maximum_annotations", "show_instruction"]
    assert ensure_project(ls_store, ls_config).changed == []


def test_server_rejects_a_broken_labeling_config(ls_store, ls_config, tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text('<View><Choices name="best" toName="nowhere"><Choice value="A"/></Choices></View>')
    with pytest.raises(ApiError) as err:
        ensure_project(ls_store, ls_config.model_copy(update={"label_config_path": bad}))
    assert err.value.status_code == 400


def test_images_outside_the_document_root_are_refused(ls_config, tmp_path):
    from aescot.store import DatasetStore

    elsewhere = DatasetStore(tmp_path / "not-served")
    with pytest.raises(ValueError, match="not under the server's document root"):
        ensure_project(elsewhere, ls_config)
