"""Push against the real server: 1,000 tasks in bulk, gold mixed in unmarked, idempotent re-push,
lost answers reconciled, the server stopped mid-push then resumed, bad items rejected."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from aescot.labelstudio import LabelStudioUnavailable, Prediction, push_items
from aescot.labelstudio.client import http_client, list_tasks
from aescot.labelstudio.labeling import OUTLINE_KEY, SOURCE_KEY
from aescot.labelstudio.mapping import ITEM_FIELD
from aescot.labelstudio.project import ensure_project
from aescot.labelstudio.push import TASKS_TABLE
from tests.labelstudio.helpers import GOLD_ANSWER, admin, answer, make_items

pytestmark = pytest.mark.labelstudio


def _tasks(config, project_id):
    with http_client(config) as http:
        return list_tasks(config, http, project_id)


def _assert_one_task_per_item(ls_store, config, project_id, expected: set[str]):
    tasks = _tasks(config, project_id)
    item_ids = [t["data"][ITEM_FIELD] for t in tasks]
    assert len(item_ids) == len(set(item_ids)), "duplicate tasks for one item"
    assert set(item_ids) == expected
    mapped = {r["item_id"]: r["task_id"] for r in ls_store.read(TASKS_TABLE.name)}
    assert mapped == {t["data"][ITEM_FIELD]: t["id"] for t in tasks}
    return tasks


def test_push_1000_tasks_with_gold_share_then_repush_is_a_no_op(ls_store, ls_config):
    cfg = ls_config.model_copy(update={"chunk_size": 250, "gold_share": 0.1})
    regular = make_items(ls_store, 900)
    gold = [i for i in make_items(ls_store, 0, gold=150)]
    t0 = time.perf_counter()
    report = push_items(ls_store, cfg)
    elapsed = time.perf_counter() - t0
    assert (report.pushed, report.gold_pushed, report.gold_held_back, report.chunks) == (1000, 100, 50, 4)
    assert elapsed < 120
    tasks = _assert_one_task_per_item(
        ls_store,
        cfg,
        report.project_id,
        {i["item_id"] for i in regular} | {i["item_id"] for i in _pushed_gold(ls_store)},
    )
    # unmarked: the task data holds the item id and image URLs only
    assert all(set(t["data"]) == {ITEM_FIELD, SOURCE_KEY, OUTLINE_KEY, "A", "B", "C", "D"} for t in tasks)
    assert all(t["data"]["A"].startswith("/data/local-files/?d=") for t in tasks)
    # gold tasks are interleaved, not appended at the end
    gold_ids = {i["item_id"] for i in gold}
    positions = [
        k for k, t in enumerate(sorted(tasks, key=lambda t: t["id"])) if t["data"][ITEM_FIELD] in gold_ids
    ]
    assert positions[0] < 200 and positions[-1] > 800

    again = push_items(ls_store, cfg)
    assert (again.pushed, again.already_pushed, again.recovered) == (0, 1000, 0)
    assert len(_tasks(cfg, report.project_id)) == 1000


def _pushed_gold(store):
    return [{"item_id": r["item_id"]} for r in store.read(TASKS_TABLE.name) if r["gold"]]


def test_images_are_served_to_the_logged_in_user_only_from_the_images_folder(ls_store, ls_config):
    make_items(ls_store, 1)
    report = push_items(ls_store, ls_config)
    task = _tasks(ls_config, report.project_id)[0]
    headers = {"Authorization": f"Token {ls_config.api_key.get_secret_value()}"}
    r = httpx.get(ls_config.url + task["data"]["B"], headers=headers)
    assert r.status_code == 200 and r.content.startswith(b"\x89PNG")
    assert httpx.get(ls_config.url + task["data"]["B"]).status_code in (401, 403)
    ls_store.write_bytes("tables/secret.txt", b"not an image")
    rel = task["data"]["B"].split("?d=")[1].rsplit("/images/", 1)[0] + "/tables/secret.txt"
    assert httpx.get(f"{ls_config.url}/data/local-files/?d={rel}", headers=headers).status_code == 404


def test_lost_import_answer_is_reconciled_not_duplicated(ls_store, ls_config):
    items = make_items(ls_store, 30)
    project = ensure_project(ls_store, ls_config)
    # the server committed 10 tasks but aescot never heard back (crash between import and bookkeeping)
    from aescot.labelstudio.mapping import task_data
    from aescot.labelstudio.project import document_root

    root = document_root(ls_store, ls_config)
    admin(ls_config).projects.import_tasks(
        project.id, request=[{"data": task_data(i, ls_store, project.storage, root)} for i in items[:10]]
    )
    report = push_items(ls_store, ls_config)
    assert (report.recovered, report.pushed) == (10, 20)
    _assert_one_task_per_item(ls_store, ls_config, project.id, {i["item_id"] for i in items})


def test_server_stopped_mid_push_then_resumed(ls_store, ls_config, labelstudio_server):
    items = make_items(ls_store, 600)
    cfg = ls_config.model_copy(update={"chunk_size": 20, "retry_attempts": 2, "retry_wait_max_s": 0.5})
    project = ensure_project(ls_store, cfg)
    errors: list[BaseException] = []

    def run():
        try:
            push_items(ls_store, cfg)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    # stop the server once some chunks are in
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(ls_store.read(TASKS_TABLE.name)) < 100:
        time.sleep(0.05)
    labelstudio_server.stop()
    worker.join(timeout=120)
    assert not worker.is_alive()
    assert errors and isinstance(errors[0], LabelStudioUnavailable), errors
    done_before = len(ls_store.read(TASKS_TABLE.name))
    assert 100 <= done_before < 600

    labelstudio_server.start()
    report = push_items(ls_store, cfg)
    assert report.pushed + report.recovered + done_before == 600
    _assert_one_task_per_item(ls_store, cfg, project.id, {i["item_id"] for i in items})


def test_bad_items_are_rejected_with_a_reason_and_the_rest_pushed(ls_store, ls_config):
    items = make_items(ls_store, 3, image_pool=6)
    broken = dict(items[0], item_id="f" * 64)
    broken["candidates"] = [dict(c) for c in items[0]["candidates"]]
    broken["candidates"][2]["image_key"] = "images/00/" + "0" * 64 + ".png"
    ls_store.upsert("items", [broken])
    report = push_items(
        ls_store, ls_config, item_ids=[i["item_id"] for i in items] + [broken["item_id"], "e" * 64]
    )
    assert (report.pushed, report.rejected) == (3, 2)
    rejects = {r["subject"]: r for r in ls_store.read("rejects")}
    assert (
        rejects["f" * 64]["reason"] == "image_unavailable" and "images missing" in rejects["f" * 64]["detail"]
    )
    assert rejects["e" * 64]["reason"] == "unknown_item"


def test_predictions_carry_model_version_and_score(ls_store, ls_config):
    items = make_items(ls_store, 2)
    pred = Prediction(answer("A", ["A"], scores={"A": 4}), model_version="screener-v0", score=0.7)
    report = push_items(ls_store, ls_config, predictions={items[0]["item_id"]: pred})
    mapped = {r["item_id"]: r for r in ls_store.read(TASKS_TABLE.name)}
    assert mapped[items[0]["item_id"]]["preannotated"] and not mapped[items[1]["item_id"]]["preannotated"]
    preds = list(admin(ls_config).predictions.list(task=mapped[items[0]["item_id"]]["task_id"]))
    assert [(p.model_version, p.score) for p in preds] == [("screener-v0", 0.7)]
    assert {r["from_name"] for r in preds[0].result} >= {"best", "verdict_A", "score_A"}
    assert report.pushed == 2


def test_known_answers_can_prefill_gold_items(ls_store, ls_config):
    make_items(ls_store, 0, gold=2)
    cfg = ls_config.model_copy(update={"prefill_known_answers": True})
    push_items(ls_store, cfg)
    rows = ls_store.read(TASKS_TABLE.name)
    assert len(rows) == 2 and all(r["preannotated"] for r in rows)
    preds = list(admin(cfg).predictions.list(task=rows[0]["task_id"]))
    assert preds[0].model_version.startswith("known-answer:")
    assert {r["value"]["choices"][0] for r in preds[0].result if r["from_name"] == "best"} == {
        GOLD_ANSWER["best"]
    }


def test_a_push_to_a_set_up_project_makes_no_request_but_its_imports(ls_store, ls_config, monkeypatch):
    """Once the project is set up and known to the map, a push is its bulk imports and nothing else:
    no project check, no task count, no listing."""
    from aescot.labelstudio import project as project_module
    from aescot.labelstudio import push as push_module

    cfg = ls_config.model_copy(update={"chunk_size": 40})
    old = make_items(ls_store, 3)
    push_items(ls_store, cfg)  # the first push: sets up, asks once how many tasks the project holds
    new = make_items(ls_store, 100)
    wire: list[tuple[str, str]] = []
    real_client = push_module.http_client

    def spying_client(config):
        client = real_client(config)
        client.event_hooks["request"].append(lambda r: wire.append((r.method, r.url.path)))
        return client

    def no_setup(config):
        raise AssertionError("push set the project up again")

    monkeypatch.setattr(push_module, "http_client", spying_client)
    monkeypatch.setattr(project_module, "make_client", no_setup)
    report = push_items(ls_store, cfg)
    assert (report.pushed, report.chunks, report.already_pushed) == (100, 3, 3)
    assert wire == [("POST", f"/api/projects/{report.project_id}/import")] * 3
    monkeypatch.undo()
    _assert_one_task_per_item(ls_store, cfg, report.project_id, {i["item_id"] for i in old + new})


def test_a_store_restored_from_an_older_backup_is_reconciled_on_request(ls_store, ls_config, tmp_path):
    """The map lost the rows of a later push (its tables came back from a backup): ``reconcile_first``
    (``aescot push --reconcile``) records the tasks the project holds instead of importing them again."""
    import shutil

    items = make_items(ls_store, 10)
    push_items(ls_store, ls_config, item_ids=[i["item_id"] for i in items[:4]])
    backup = tmp_path / "tables-backup"
    shutil.copytree(ls_store.local_path("tables"), backup)
    later = push_items(ls_store, ls_config)
    assert later.pushed == 6
    shutil.rmtree(ls_store.local_path("tables"))
    shutil.copytree(backup, ls_store.local_path("tables"))
    assert len(ls_store.read(TASKS_TABLE.name)) == 4
    report = push_items(ls_store, ls_config, reconcile_first=True)
    assert (report.recovered, report.pushed, report.duplicates_in_project) == (6, 0, [])
    _assert_one_task_per_item(ls_store, ls_config, later.project_id, {i["item_id"] for i in items})


def test_the_source_is_shown_outlined_drawn_once_per_source_and_plain_without_a_mask(ls_store, ls_config):
    import io

    import numpy as np
    from PIL import Image

    from aescot.ids import candidate_id, item_id
    from aescot.labelstudio.outlines import draw
    from tests.labelstudio.helpers import add_source, product_mask_png

    masked, plain = make_items(ls_store, 2, image_pool=5, size=256)
    add_source(ls_store, masked)
    report = push_items(ls_store, ls_config)
    assert (report.pushed, report.outlines_drawn) == (2, 1)
    data = {t["data"][ITEM_FIELD]: t["data"] for t in _tasks(ls_config, report.project_id)}
    headers = {"Authorization": f"Token {ls_config.api_key.get_secret_value()}"}

    def served(ref: str) -> np.ndarray:
        r = httpx.get(ls_config.url + ref, headers=headers)
        assert r.status_code == 200, ref
        return np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))

    photo = Image.open(io.BytesIO(ls_store.read_bytes(masked["source_image_key"])))
    shown = data[masked["item_id"]]
    assert shown[OUTLINE_KEY] != shown[SOURCE_KEY]
    assert np.array_equal(served(shown[OUTLINE_KEY]), np.asarray(draw(photo, product_mask_png(256))))
    assert np.array_equal(served(shown[SOURCE_KEY]), np.asarray(photo.convert("RGB")))
    bare = data[plain["item_id"]]  # no mask: the plain photo under the same key
    assert bare[OUTLINE_KEY] == bare[SOURCE_KEY] and served(bare[OUTLINE_KEY]).shape == (256, 256, 3)

    # a later item of the masked source (other candidates): its outlined copy is read, not drawn again
    cands = [
        {**c, "candidate_id": candidate_id(masked["source_id"], "test", {"later": True}, j)}
        for j, c in enumerate(masked["candidates"])
    ]
    later = {
        **masked,
        "candidates": cands,
        "item_id": item_id(masked["source_id"], [c["candidate_id"] for c in cands]),
    }
    ls_store.upsert("items", [later])
    again = push_items(ls_store, ls_config)
    assert (again.pushed, again.already_pushed, again.outlines_drawn) == (1, 2, 0)
    data = {t["data"][ITEM_FIELD]: t["data"] for t in _tasks(ls_config, report.project_id)}
    assert data[later["item_id"]][OUTLINE_KEY] == shown[OUTLINE_KEY]
    assert (push_items(ls_store, ls_config).pushed, len(_tasks(ls_config, report.project_id))) == (0, 3)
