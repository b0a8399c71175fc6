"""Project setup against the real server: created once, idempotent, config validated by the server."""

from __future__ import annotations

import re
from html import unescape as html_unescape
from pathlib import Path

import httpx
import pytest
from label_studio_sdk.core.api_error import ApiError

from aescot.labelstudio import collect_annotations, ensure_project
from aescot.labelstudio.assets import annotation_dir, label_config
from aescot.labelstudio.client import http_client, list_tasks
from aescot.labelstudio.labeling import OUTLINE_KEY, SOURCE_KEY
from aescot.labelstudio.mapping import task_data
from aescot.vocab import DIMENSIONS
from tests.labelstudio.helpers import admin, make_items

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


# --- the instructions' pictures, and projects of the first release -------------------------------------

LEGACY = Path(__file__).with_name("legacy_screening.xml")  # the first release's page ($source, acceptable)


def test_instructions_show_one_served_picture_per_dimension(ls_store, ls_config, labelstudio_server):
    project = ensure_project(ls_store, ls_config)
    html = admin(ls_config).projects.get(project.id).expert_instruction
    srcs = re.findall(r'<img src="([^"]+)" alt="([^"]*)"', html)
    assert [alt.split(":")[0] for _, alt in srcs] == list(DIMENSIONS)
    cfg = labelstudio_server.cfg
    with httpx.Client(base_url=ls_config.url, follow_redirects=False) as web:  # an annotator's browser
        web.get("/user/login/")
        web.post(
            "/user/login/",
            data={
                "email": cfg.username,
                "password": cfg.password.get_secret_value(),
                "csrfmiddlewaretoken": web.cookies["csrftoken"],
            },
            headers={"Referer": f"{ls_config.url}/user/login/"},
        )
        for (src, _), dim in zip(srcs, DIMENSIONS):
            assert src.startswith("/data/local-files/?d="), src
            r = web.get(html_unescape(src))
            assert r.status_code == 200 and r.headers["content-type"].startswith("image/")
            assert r.content == (annotation_dir() / "examples" / f"{dim}.png").read_bytes()


def _legacy_project(ls_store, ls_config, items):
    old = ls_config.model_copy(update={"label_config_path": LEGACY})
    project = ensure_project(ls_store, old)
    tasks = []
    for item in items:  # task data as the first release pushed it
        data = task_data(item, ls_store, project.storage, ls_store.local_path("."))
        data["source"] = data.pop(SOURCE_KEY)
        del data[OUTLINE_KEY]
        tasks.append({"data": data})
    admin(ls_config).projects.import_tasks(project.id, request=tasks)
    with http_client(ls_config) as http:
        return project, list_tasks(ls_config, http, project.id)


def test_first_release_tasks_get_the_new_source_key_and_page(ls_store, ls_config):
    project, tasks = _legacy_project(ls_store, ls_config, make_items(ls_store, 2))
    upgraded = ensure_project(ls_store, ls_config)
    assert (upgraded.id, upgraded.migrated_tasks, upgraded.config_kept) == (project.id, 2, None)
    assert "label_config" in upgraded.changed
    with http_client(ls_config) as http:
        after = {t["id"]: t["data"] for t in list_tasks(ls_config, http, project.id)}
    for t in tasks:  # the old key stays, the new ones are copies of it (these sources have no mask)
        old = t["data"]["source"]
        assert after[t["id"]][SOURCE_KEY] == after[t["id"]][OUTLINE_KEY] == after[t["id"]]["source"] == old
    assert admin(ls_config).projects.get(project.id).label_config.strip() == label_config(ls_config).strip()
    again = ensure_project(ls_store, ls_config)
    assert (again.changed, again.migrated_tasks) == ([], 0)


def test_first_release_annotations_keep_their_page_and_are_still_collected(ls_store, ls_config):
    items = make_items(ls_store, 1)
    _, (task,) = _legacy_project(ls_store, ls_config, items)
    legacy_result = [
        {"from_name": "acceptable", "to_name": "source", "type": "choices", "value": {"choices": ["A"]}},
        {"from_name": "best", "to_name": "source", "type": "choices", "value": {"choices": ["A"]}},
        {
            "from_name": "defects_B",
            "to_name": "img_B",
            "type": "choices",
            "value": {"choices": ["lighting_shadow"]},
        },
    ]
    admin(ls_config).annotations.create(task["id"], result=legacy_result)
    upgraded = ensure_project(ls_store, ls_config)
    assert upgraded.config_kept and "acceptable" in upgraded.config_kept  # Label Studio said why
    assert admin(ls_config).projects.get(upgraded.id).label_config.strip() == LEGACY.read_text().strip()
    report = collect_annotations(ls_store, ls_config)
    assert (report.annotations_new, report.invalid) == (1, 0)
    row = ls_store.read("annotations")[0]
    assert (row["acceptable"], row["best"], row["dimensions"]["B"]) == (["A"], "A", ["lighting_shadow"])


def test_tasks_pushed_before_the_outline_get_it_outlined_when_their_source_has_a_mask(
    ls_store, ls_config, tmp_path
):
    from aescot.labelstudio.outlines import OUTLINES_TABLE
    from tests.labelstudio.helpers import add_source

    previous = tmp_path / "previous.xml"  # the page before the outline: the source read from source_photo
    previous.write_text(label_config(ls_config).replace(f"${OUTLINE_KEY}", f"${SOURCE_KEY}"))
    project = ensure_project(ls_store, ls_config.model_copy(update={"label_config_path": previous}))
    masked, plain = make_items(ls_store, 2, size=64)
    add_source(ls_store, masked)
    tasks = []
    for item in (masked, plain):
        data = task_data(item, ls_store, project.storage, ls_store.local_path("."))
        del data[OUTLINE_KEY]
        tasks.append({"data": data})
    admin(ls_config).projects.import_tasks(project.id, request=tasks)

    upgraded = ensure_project(ls_store, ls_config)
    assert (upgraded.id, upgraded.migrated_tasks, upgraded.config_kept) == (project.id, 2, None)
    with http_client(ls_config) as http:
        after = {t["data"]["aescot_item"]: t["data"] for t in list_tasks(ls_config, http, project.id)}
    (drawn,) = ls_store.read(OUTLINES_TABLE.name)
    assert after[masked["item_id"]][OUTLINE_KEY].endswith(drawn["outline_key"])
    assert after[masked["item_id"]][SOURCE_KEY] == tasks[0]["data"][SOURCE_KEY]  # kept as it was
    assert after[plain["item_id"]][OUTLINE_KEY] == after[plain["item_id"]][SOURCE_KEY]
    from aescot.labelstudio.project import migrate_task_data

    assert migrate_task_data(ls_config, project.id, ls_store) == 0  # every task has its keys now
