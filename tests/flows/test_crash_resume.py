"""SIGKILL the flow in the middle of generation, run it again: nothing lost, nothing duplicated.

The killed run held the global GPU slot; the re-run waits for its lease to lapse (about a minute),
as a real deployment would after losing a worker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from aescot.samples import write_sample_sources
from aescot.store import DatasetStore
from tests.flows.conftest import REPO

pytestmark = pytest.mark.slow

RUN = """
import sys
from flows.build_screening_set import build_screening_set
build_screening_set(root=sys.argv[1], sources=[sys.argv[2]], labelstudio=False, teacher="off", batch_size=6)
"""


def run_flow(env, root, manifest, wait=True):
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN, str(root), str(manifest)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    if wait:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()[-3000:]
    return proc


def assert_consistent(store: DatasetStore, n_sources: int) -> None:
    items = store.read("items")
    assert len(items) == n_sources
    assert Counter(i["source_id"] for i in items).most_common(1)[0][1] == 1
    candidates = {c["candidate_id"]: c for c in store.read("candidates")}
    per_source = Counter(c["source_id"] for c in candidates.values())
    assert set(per_source.values()) == {4}, per_source
    for item in items:
        for c in item["candidates"]:
            assert c["candidate_id"] in candidates and store.exists(c["image_key"])
    # no table holds two rows for one key (reads return physical rows: a duplicate would show)
    for table, key in (("sources", "source_id"), ("items", "item_id")):
        raw = [r[key] for r in store.read(table)]
        assert len(raw) == len(set(raw)), f"{table} has duplicate rows"


def test_kill_during_generation_then_resume(prefect_server, tmp_path):
    n = 60
    manifest = write_sample_sources(tmp_path / "src", n=n, size=256)
    root = tmp_path / "ds"
    store = DatasetStore(root)
    proc = run_flow(prefect_server, root, manifest, wait=False)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if store.count("generation_groups") > 0:  # the first batch's ledger rows (tables are created empty)
            break
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_at_kill = store.count("items")
    assert 0 < store.count("sources") and done_at_kill < n, "the kill must land mid-generation"

    run_flow(prefect_server, root, manifest)
    assert_consistent(store, n)
    run_flow(prefect_server, root, manifest)  # and once more: still nothing duplicated
    assert_consistent(store, n)


RUN_LS = """
import sys
from flows.build_screening_set import build_screening_set
build_screening_set(root=sys.argv[1], sources=[sys.argv[2]], project=sys.argv[3], gold_share=0.0, teacher="off")
"""


@pytest.mark.labelstudio
def test_kill_during_push_then_resume(prefect_server, ls_store, ls_config, labelstudio_server, tmp_path):
    from aescot.labelstudio.client import http_client, list_tasks
    from aescot.labelstudio.mapping import ITEM_FIELD
    from aescot.labelstudio.project import ensure_project

    n = 40
    manifest = write_sample_sources(tmp_path / "src", n=n, size=128)
    env = {
        **prefect_server,
        "LABEL_STUDIO_URL": ls_config.url,
        "LABEL_STUDIO_API_KEY": ls_config.api_key.get_secret_value(),
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(labelstudio_server.document_root),
        "AESCOT_LS_CHUNK_SIZE": "4",
    }  # many small bulk imports, so the kill lands between two
    args = [sys.executable, "-c", RUN_LS, ls_store.root, str(manifest), ls_config.project_title]
    proc = subprocess.Popen(
        args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + 300
    # the first chunk's rows, not the table: a Lance table is created empty, then upserted into
    while time.monotonic() < deadline and ls_store.count("labelstudio_tasks") == 0:
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 0 < ls_store.count("labelstudio_tasks") < n, "the kill must land mid-push"

    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr.decode()[-3000:]

    project = ensure_project(ls_store, ls_config)
    with http_client(ls_config) as http:
        tasks = list_tasks(ls_config, http, project.id)
    item_ids = [t["data"][ITEM_FIELD] for t in tasks]
    assert len(item_ids) == n and len(set(item_ids)) == n  # every item once: none lost, none twice
    assert set(item_ids) == {i["item_id"] for i in ls_store.read("items")}
    assert ls_store.count("labelstudio_tasks") == n
