"""The whole flow against real servers: Prefect's API, Label Studio on loopback, a Chat
Completions teacher on loopback. Annotators label between two runs; the second run carries on
to rationales, filter and a Parquet export that `datasets` loads."""

from __future__ import annotations

import datasets
import pytest

from aescot.demo.chat_server import chat_server, oracle
from aescot.items import planted_answers
from aescot.labelstudio.client import http_client, list_tasks
from aescot.labelstudio.mapping import ITEM_FIELD
from aescot.samples import write_sample_sources
from flows.build_screening_set import build_screening_set
from tests.labelstudio.helpers import sign_up

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.labelstudio, pytest.mark.slow]


def test_two_runs_with_annotators_in_between(ls_store, ls_config, labelstudio_server, monkeypatch, tmp_path):
    monkeypatch.setenv("LABEL_STUDIO_URL", ls_config.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", ls_config.api_key.get_secret_value())
    monkeypatch.setenv("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT", str(labelstudio_server.document_root))
    manifest = write_sample_sources(tmp_path / "src", n=6, size=128)
    root, project = ls_store.root, ls_config.project_title
    params = {
        "root": root,
        "project": project,
        "gold_share": 0.0,
        "teacher": "auto",
        "samples": 2,
        "min_consistency": 0.5,
        "export_to": str(tmp_path / "export"),
    }

    first = build_screening_set(sources=[str(manifest)], **params)
    assert first["generate"]["items"] == 6 and first["push"]["pushed"] == 6
    assert first["export"] == {"skipped": "no labelled items yet"}

    # annotators label in Label Studio (here: the synthetic backend's known answers, as people would)
    known = planted_answers(ls_store)  # not gold (gold_share=0): the planted answers of the candidates
    annotator = sign_up(ls_config.url, ls_config.api_key.get_secret_value())
    with http_client(ls_config) as http:
        tasks = list_tasks(ls_config, http, first["push"]["project_id"])
    assert len(tasks) == 6
    for task in tasks[:4]:
        annotator.annotate(task["id"], known[task["data"][ITEM_FIELD]])

    again = build_screening_set(**params)  # no teacher configured: labels collected, export of RL/pairs
    assert again["push"]["pushed"] == 0 and again["push"]["already_pushed"] == 6
    assert again["collect"]["new"] == 4 and ls_store.count("labels") == 4
    assert again["rationales"].startswith("skipped")

    answers = {i: {k: a[k] for k in ("acceptable", "best", "dimensions")} for i, a in known.items()}
    with chat_server(oracle(answers)) as teacher:
        monkeypatch.setenv("AESCOT_TEACHER_BASE_URL", teacher.base_url)
        monkeypatch.setenv("AESCOT_TEACHER_MODEL", "loopback-teacher")
        monkeypatch.setenv("AESCOT_TEACHER_API_KEY", "sk-test-never-logged")
        third = build_screening_set(**params)
        calls = teacher.calls
        fourth = build_screening_set(**params)
        assert teacher.calls == calls  # cached: zero repeated calls
    assert third["collect"]["new"] == 0
    assert third["rationales"]["ok"] == 8 and third["filter"]["kept"] == 4
    assert fourth["rationales"]["calls"] == 0

    rl = datasets.load_dataset("parquet", data_dir=str(tmp_path / "export" / "rl"), split="train")
    sft = datasets.load_dataset("parquet", data_dir=str(tmp_path / "export" / "sft"))
    assert sum(len(s) for s in sft.values()) == 4 and len(rl) >= 1
    assert "sk-test-never-logged" not in (tmp_path / "export" / "README.md").read_text()
