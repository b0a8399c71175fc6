"""Label Studio on PostgreSQL (issue 14 item 4): push and collect against a real server whose database is a
real PostgreSQL started by the fixture (``tests/labelstudio/conftest.py``); PostgreSQL stopped mid-push
is reported as such, and a re-run leaves each item exactly one task."""

from __future__ import annotations

import threading
import time

import pytest

from aescot.errors import ServiceUnavailable
from aescot.labelstudio import collect_annotations, push_items
from aescot.labelstudio.client import http_client, list_tasks
from aescot.labelstudio.mapping import ITEM_FIELD
from aescot.labelstudio.push import TASKS_TABLE
from tests.labelstudio.helpers import GOLD_ANSWER, make_items, sign_up

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow, pytest.mark.xdist_group("labelstudio-postgres")]


def _item_counts(config, project_id) -> dict[str, int]:
    with http_client(config) as http:
        tasks = list_tasks(config, http, project_id)
    counts: dict[str, int] = {}
    for t in tasks:
        counts[t["data"][ITEM_FIELD]] = counts.get(t["data"][ITEM_FIELD], 0) + 1
    return counts


def test_push_and_collect_on_postgresql(pg_cluster, pg_labelstudio, pg_store, pg_config):
    items = make_items(pg_store, 200)
    report = push_items(pg_store, pg_config.model_copy(update={"chunk_size": 50}))
    assert (report.pushed, report.chunks) == (200, 4)
    # the tasks are rows of PostgreSQL's task table, and the server keeps no SQLite database
    assert pg_cluster.query(f"SELECT count(*) FROM task WHERE project_id = {report.project_id}") == "200"
    assert not list(pg_labelstudio.cfg.data_dir.glob("*.sqlite3"))
    person = sign_up(pg_config.url, pg_config.api_key.get_secret_value())
    mapped = {r["item_id"]: r["task_id"] for r in pg_store.read(TASKS_TABLE.name)}
    for it in items[:20]:
        person.annotate(mapped[it["item_id"]], GOLD_ANSWER)
    time.sleep(pg_config.cursor_overlap_s + 1.0)
    got = collect_annotations(pg_store, pg_config)
    assert got.annotations_new == 20
    in_pg = pg_cluster.query(
        f"SELECT count(*) FROM task_completion c JOIN task t ON c.task_id = t.id WHERE t.project_id = {report.project_id}"
    )
    assert in_pg == "20"
    assert set(_item_counts(pg_config, report.project_id).values()) == {1}


def test_postgresql_stopped_mid_push_is_reported_and_a_rerun_completes(pg_cluster, pg_store, pg_config):
    n, chunk = 3000, 250
    items = make_items(pg_store, n)
    cfg = pg_config.model_copy(update={"chunk_size": chunk, "retry_attempts": 2, "retry_wait_max_s": 0.5})
    errors: list[BaseException] = []

    def run():
        try:
            push_items(pg_store, cfg)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(pg_store.read(TASKS_TABLE.name)) < chunk and worker.is_alive():
        time.sleep(0.02)
    pg_cluster.stop("immediate")  # after the first chunk landed: the next imports meet no database
    try:
        worker.join(timeout=300)
        assert not worker.is_alive()
        assert errors, "push did not notice that PostgreSQL was gone"
        err = errors[0]
        message = str(err)
        assert isinstance(err, ServiceUnavailable), repr(err)
        assert "\n" not in message and "database" in message and "re-run" in message, message
        done_before = len(pg_store.read(TASKS_TABLE.name))
        assert chunk <= done_before < n
    finally:
        pg_cluster.start()
    report = push_items(pg_store, cfg)
    assert report.pushed + report.recovered + done_before == n
    counts = _item_counts(cfg, report.project_id)
    assert set(counts) == {i["item_id"] for i in items}  # 0 lost
    assert set(counts.values()) == {1}  # 0 duplicated
    assert pg_cluster.query(f"SELECT count(*) FROM task WHERE project_id = {report.project_id}") == str(n)


def test_cli_embedded_server_on_postgresql_from_the_environment(pg_cluster, pg_labelstudio):
    """``aescot labelstudio start`` with ``AESCOT_LABEL_STUDIO_DATABASE`` puts the dataset's server on
    PostgreSQL (never the password in what it prints); a later start without it is refused."""
    import uuid

    from typer.testing import CliRunner

    from aescot.cli.main import app
    from aescot.labelstudio.server import free_port
    from aescot.store import DatasetStore

    db = pg_cluster.database
    password = db.password.get_secret_value()
    env = {
        "AESCOT_LABEL_STUDIO_DATABASE": f"postgresql://{db.user}:{password}@{db.host}:{db.port}/{db.name}",
        # the database already holds the fixture server's admin: the same credentials log in
        "LABEL_STUDIO_API_KEY": pg_labelstudio.cfg.token.get_secret_value(),
        "LABEL_STUDIO_PASSWORD": pg_labelstudio.cfg.password.get_secret_value(),
        "LABEL_STUDIO_URL": None,
        "COLUMNS": "300",
    }
    root = pg_labelstudio.document_root / f"cli-{uuid.uuid4().hex[:8]}"
    store = DatasetStore(root)
    make_items(store, 30)
    runner = CliRunner()
    start = runner.invoke(
        app, ["labelstudio", "start", "--root", str(root), "--port", str(free_port())], env=env
    )
    try:
        assert start.exit_code == 0, start.output
        assert f"database: PostgreSQL {db.user}@{db.host}:{db.port}/{db.name}" in start.output, start.output
        assert password not in start.output
        title = f"cli pg {uuid.uuid4().hex[:6]}"
        # the embedded server's credentials are the dataset's now (<root>/.labelstudio); with a key in
        # the environment push would look for a server of its own at LABEL_STUDIO_URL
        later = {**env, "LABEL_STUDIO_API_KEY": None, "LABEL_STUDIO_PASSWORD": None}
        push = runner.invoke(app, ["push", "--root", str(root), "--project", title], env=later)
        assert push.exit_code == 0, push.output
        project_id = store.read(TASKS_TABLE.name)[0]["project_id"]
        assert pg_cluster.query(f"SELECT count(*) FROM task WHERE project_id = {project_id}") == "30"
        assert not list((root / ".labelstudio").glob("*.sqlite3"))
    finally:
        stop = runner.invoke(app, ["labelstudio", "stop", "--root", str(root)], env=env)
    assert stop.exit_code == 0 and "stopped" in stop.output, stop.output
    again = runner.invoke(
        app, ["labelstudio", "start", "--root", str(root)], env={**env, "AESCOT_LABEL_STUDIO_DATABASE": None}
    )
    assert again.exit_code == 2, again.output
    line = " ".join(again.output.split())
    assert "keeps its data in PostgreSQL" in line and "AESCOT_LABEL_STUDIO_DATABASE" in line, line
