"""Collect against the real server: annotators label through the API with their own tokens; the
pull is incremental, snapshotted raw before parsing, edits become new revisions, skips and bad
annotations are handled; consensus labels, Krippendorff's alpha and gold scores follow."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from aescot.contracts import validate
from aescot.labelstudio import (
    agreement_report,
    collect,
    collect_annotations,
    gold_report,
    invalid,
    push_items,
)
from aescot.labelstudio.mapping import answer_to_result, result_to_answer
from aescot.labelstudio.push import TASKS_TABLE
from aescot.status import stage_counts
from tests.labelstudio.helpers import GOLD_ANSWER, admin, answer, make_items, sign_up

pytestmark = pytest.mark.labelstudio

GOOD = answer("A", ["A", "C"], {"B": ["lighting_shadow"], "D": ["extension_rationality"]}, {"A": 5, "B": 2})
OTHER = answer("C", ["C"], {"A": ["placement_layout"], "B": ["lighting_shadow"], "D": ["placement_layout"]})
NONE = answer(None, [], {L: ["appearance_deformation"] for L in "ABCD"})


@pytest.fixture
def project(ls_store, ls_config, labelstudio_server):
    regular = make_items(ls_store, 6)
    gold = make_items(ls_store, 0, gold=2)
    cfg = ls_config.model_copy(update={"gold_share": 0.25, "annotators_per_task": 3})
    push_items(ls_store, cfg)
    tasks = {r["item_id"]: r["task_id"] for r in ls_store.read(TASKS_TABLE.name)}
    people = [sign_up(cfg.url, cfg.api_key.get_secret_value()) for _ in range(3)]
    return cfg, regular, gold, tasks, people


def test_incremental_collect_snapshots_revisions_and_consensus(ls_store, project):
    cfg, regular, _, tasks, (ann1, ann2, ann3) = project
    t = [tasks[i["item_id"]] for i in regular]
    a_edit = ann1.annotate(t[0], GOOD)  # item 0: unanimous (1 edits later)
    ann2.annotate(t[0], GOOD)
    ann3.annotate(t[0], GOOD)
    ann1.annotate(t[1], GOOD)  # item 1: 2 vs 1 -> majority
    ann2.annotate(t[1], GOOD)
    ann3.annotate(t[1], OTHER)
    ann1.annotate(t[2], GOOD)  # item 2: 1 vs 1 -> waits for adjudication
    ann2.annotate(t[2], OTHER)
    ann1.annotate(t[3], NONE)  # item 3: single, nothing acceptable
    ann2.skip(t[4])  # item 4: skipped only
    bad = ann3.raw(
        t[5], [{"from_name": "best", "to_name": "source", "type": "choices", "value": {"choices": ["B"]}}]
    )  # best not ticked acceptable

    first = collect_annotations(ls_store, cfg)
    assert (first.annotations_new, first.skipped, first.rejected) == (10, 1, 1)
    assert first.needs_adjudication == [regular[2]["item_id"]]
    # the raw export is on disk and holds exactly what was parsed
    raw = [t for key in first.snapshots for t in json.loads(ls_store.read_bytes(key))]
    assert sum(len(t["annotations"]) for t in raw) == 11
    rows = ls_store.read("annotations")
    for row in rows:
        validate("annotation", row)
    by_id = {r["annotation_id"]: r for r in rows}
    assert by_id[f"labelstudio:{a_edit}"]["annotator"] == ann1.email
    assert by_id[f"labelstudio:{a_edit}"]["scores"] == {"A": 5, "B": 2, "C": None, "D": None}
    invalid = {r["annotation_id"]: r for r in ls_store.read("invalid_annotations")}
    assert list(invalid) == [f"labelstudio:{bad}"] and first.invalid == first.requeued == 1
    assert "best must be acceptable" in " ".join(invalid[f"labelstudio:{bad}"]["problems"])

    labels = {r["item_id"]: r for r in ls_store.read("labels")}
    assert set(labels) == {regular[k]["item_id"] for k in (0, 1, 3)}
    l0, l1, l3 = (labels[regular[k]["item_id"]] for k in (0, 1, 3))
    assert (l0["method"], l0["best"], l0["acceptable"], l0["agreement"]) == ("majority", "A", ["A", "C"], 1.0)
    assert l0["dimensions"]["D"] == ["extension_rationality"] and l0["scores"]["A"] == 5.0
    assert (l1["method"], l1["best"], l1["n_annotations"]) == ("majority", "A", 3)
    assert l1["agreement"] == pytest.approx(2 / 3)
    assert (l3["method"], l3["best"], l3["acceptable"]) == ("single", None, [])

    # nothing changed: nothing is exported again
    quiet = collect_annotations(ls_store, cfg)
    assert (quiet.tasks_changed, quiet.annotations_new, quiet.annotations_updated, quiet.snapshots) == (
        0,
        0,
        0,
        [],
    )

    # an edit and a tie-breaker: only those tasks are pulled; the edit is a new revision, history kept
    ann1.edit(a_edit, OTHER)
    ann3.annotate(t[2], GOOD)
    second = collect_annotations(ls_store, cfg)
    assert (second.tasks_changed, second.annotations_new, second.annotations_updated) == (2, 1, 1)
    # latest wins in the table (one row per annotation); the first revision stays in its raw snapshot
    edited = [r for r in ls_store.read("annotations") if r["annotation_id"] == f"labelstudio:{a_edit}"]
    assert [(r["revision"], r["best"]) for r in edited] == [(1, "C")]
    before = {a["id"]: a for t in raw for a in t["annotations"]}[a_edit]
    assert result_to_answer(before["result"])["best"] == "A"
    labels = {r["item_id"]: r for r in ls_store.read("labels")}
    assert labels[regular[0]["item_id"]]["agreement"] == pytest.approx(2 / 3)
    assert labels[regular[2]["item_id"]]["best"] == "A" and second.needs_adjudication == []


def test_adjudicator_settles_a_tie(ls_store, project):
    cfg, regular, _, tasks, (ann1, ann2, ann3) = project
    t = tasks[regular[0]["item_id"]]
    ann1.annotate(t, GOOD)
    ann2.annotate(t, OTHER)
    cfg = cfg.model_copy(update={"adjudicators": [ann3.email]})
    assert collect_annotations(ls_store, cfg).needs_adjudication == [regular[0]["item_id"]]
    ann3.annotate(t, OTHER)
    collect_annotations(ls_store, cfg)
    label = {r["item_id"]: r for r in ls_store.read("labels")}[regular[0]["item_id"]]
    assert (label["method"], label["best"]) == ("adjudicated", "C")


def test_agreement_and_gold_report(ls_store, project):
    cfg, regular, gold, tasks, (ann1, ann2, ann3) = project
    for item in regular[:4]:
        for person in (ann1, ann2):
            person.annotate(tasks[item["item_id"]], GOOD)
        ann3.annotate(tasks[item["item_id"]], GOOD if item is not regular[3] else OTHER)
    for g in gold:
        ann1.annotate(tasks[g["item_id"]], GOLD_ANSWER)  # perfect
        ann2.annotate(tasks[g["item_id"]], OTHER)  # wrong best
    collect_annotations(ls_store, cfg)

    report = agreement_report(ls_store)
    assert report.items == 6 and report.multi_annotated_items == 6
    assert {f.field for f in report.fields} == {
        "best",
        "acceptable",
        "appearance_deformation",
        "lighting_shadow",
        "placement_layout",
        "extension_rationality",
        "score",
    }
    best = report.alpha("best")
    assert best is not None and 0 < best < 1
    stats = {s.annotator: s for s in report.annotators}
    assert stats[ann1.email].submitted == 6 and stats[ann1.email].mean_lead_time_s == 7.5

    gr = gold_report(ls_store)
    assert (gr.gold_items_pushed, gr.gold_items_annotated, gr.excluded_preannotated) == (2, 2, 0)
    assert gr.for_annotator(ann1.email).best_accuracy == 1.0
    assert gr.for_annotator(ann1.email).dimension_accuracy == 1.0
    assert gr.for_annotator(ann2.email).best_accuracy == 0.0
    assert gr.for_annotator(ann3.email) is None


def test_crash_before_the_cursor_moves_repeats_nothing(ls_store, project, monkeypatch):
    cfg, regular, _, tasks, (ann1, ann2, _) = project
    ann1.annotate(tasks[regular[0]["item_id"]], GOOD)
    ann2.annotate(tasks[regular[1]["item_id"]], OTHER)
    real_upsert = type(ls_store).upsert

    def dying_upsert(self, table, records, validate=True):
        if table == "labelstudio_task_state":
            raise OSError("disk gone")
        return real_upsert(self, table, records, validate)

    monkeypatch.setattr(type(ls_store), "upsert", dying_upsert)
    with pytest.raises(OSError):
        collect_annotations(ls_store, cfg)
    monkeypatch.setattr(type(ls_store), "upsert", real_upsert)
    assert len(ls_store.read("labels")) == 2  # labels were written before the crash
    again = collect_annotations(ls_store, cfg)
    assert (again.annotations_new, again.annotations_updated, again.annotations_unchanged) == (0, 0, 2)
    assert len(ls_store.read("annotations")) == 2 and again.labels_written == 0
    assert collect_annotations(ls_store, cfg).tasks_changed == 0


def test_an_invalid_answer_is_kept_counted_and_its_task_offered_again(ls_store, ls_config):
    """What the page cannot prevent (here: the best is not among the acceptable) is recorded whole with
    its reason, removed from the task so Label Studio's label stream offers the task again, and counted
    by ``aescot status``."""
    (item,) = make_items(ls_store, 1)
    push_items(ls_store, ls_config)  # one task, one annotation wanted
    task_id = ls_store.read(TASKS_TABLE.name)[0]["task_id"]
    person = sign_up(ls_config.url, ls_config.api_key.get_secret_value())
    project_id = ls_store.read(TASKS_TABLE.name)[0]["project_id"]

    def offered() -> int | None:
        r = httpx.get(
            f"{ls_config.url}/api/projects/{project_id}/next",
            headers={"Authorization": f"Token {person.token}"},
        )
        return r.json()["id"] if r.status_code == 200 else None

    assert offered() == task_id
    wrong = answer("B", ["A"], {L: ["placement_layout"] for L in "BCD"})  # B flawed, yet best
    bad = person.annotate(task_id, wrong)
    assert offered() is None  # labelled: the stream has nothing for this annotator

    report = collect_annotations(ls_store, ls_config)
    assert (report.annotations_new, report.invalid, report.requeued, report.labels_written) == (0, 1, 1, 0)
    (row,) = ls_store.read("invalid_annotations")
    validate("invalid_annotation", row)
    assert (row["annotation_id"], row["item_id"], row["task_id"], row["annotator"], row["requeued"]) == (
        f"labelstudio:{bad}",
        item["item_id"],
        task_id,
        person.email,
        True,
    )
    assert row["problems"] == ["best is B but the acceptable set is ['A']: the best must be acceptable"]
    kept = json.loads(row["annotation_json"])  # nothing the annotator submitted is lost
    assert kept["result"] == answer_to_result(wrong)
    raw = json.loads(ls_store.read_bytes(row["snapshot_key"]))
    assert [a["id"] for t in raw for a in t["annotations"]] == [bad]

    # back in the queue: Label Studio offers the task again, to the same annotator too
    assert offered() == task_id
    task = admin(ls_config).tasks.get(task_id)
    assert (task.is_labeled, task.total_annotations) == (False, 0)
    counts = {c.stage: c for c in stage_counts(ls_store)}
    assert counts["invalid annotations"].count == 1
    assert counts["invalid annotations"].detail == "1 sent back to the annotators' queue"

    # labelled again, correctly: collected as usual; the invalid record stays
    fixed = answer("A", ["A"], {L: ["placement_layout"] for L in "BCD"})
    person.annotate(task_id, fixed)
    again = collect_annotations(ls_store, ls_config)
    assert (again.annotations_new, again.invalid, again.labels_written) == (1, 0, 1)
    assert ls_store.count("invalid_annotations") == 1 and offered() is None


def test_an_invalid_answer_not_sent_back_by_a_dying_pull_is_sent_back_by_the_next(
    ls_store, ls_config, monkeypatch
):
    make_items(ls_store, 1)
    push_items(ls_store, ls_config)
    task_id = ls_store.read(TASKS_TABLE.name)[0]["task_id"]
    person = sign_up(ls_config.url, ls_config.api_key.get_secret_value())
    person.annotate(task_id, answer(None, ["C"], {L: ["lighting_shadow"] for L in "ABD"}))
    monkeypatch.setattr(invalid, "send_back", lambda store, http, rows: 0)  # dies before the delete
    assert collect_annotations(ls_store, ls_config).invalid == 1
    monkeypatch.undo()
    assert [r["requeued"] for r in ls_store.read("invalid_annotations")] == [False]
    report = collect_annotations(ls_store, ls_config)
    assert (report.invalid, report.requeued) == (0, 1)
    assert [r["requeued"] for r in ls_store.read("invalid_annotations")] == [True]
    assert admin(ls_config).tasks.get(task_id).total_annotations == 0


def test_a_quiet_recollect_lists_once_exports_nothing_and_later_changes_are_pulled(
    ls_store, project, monkeypatch
):
    """The cursor at work, seen on the wire: with nothing changed a pull is one task-list request
    (filtered on ``updated_at``) that returns the tied task only, and no export; an edit, a deletion
    and a new annotation on an already pulled task, all made after the cursor, are exported (those two
    tasks only) and collected."""
    cfg, regular, _, tasks, (ann1, ann2, _) = project
    cfg = cfg.model_copy(update={"cursor_overlap_s": 0.0})  # list from the newest stamp: ties only
    t0, t1 = (tasks[regular[k]["item_id"]] for k in (0, 1))
    edited = ann1.annotate(t0, GOOD)
    deleted = ann2.annotate(t0, GOOD)
    ann1.annotate(t1, GOOD)
    time.sleep(1.2)  # the pull's start is read from the Date header, whole seconds: let it pass t1's stamp
    assert collect_annotations(ls_store, cfg).annotations_new == 3

    wire: list[tuple[str, httpx.QueryParams, int | None]] = []  # (path, query, tasks listed) per request

    def spy(response: httpx.Response) -> None:
        response.read()
        listed = len(response.json()["tasks"]) if response.url.path.rstrip("/") == "/api/tasks" else None
        wire.append((response.url.path, response.url.params, listed))

    real_client = collect.http_client

    def spying_client(config):
        client = real_client(config)
        client.event_hooks["response"].append(spy)
        return client

    monkeypatch.setattr(collect, "http_client", spying_client)
    quiet = collect_annotations(ls_store, cfg)
    assert (quiet.tasks_changed, quiet.snapshots, quiet.requests) == (0, [], 1)
    assert not [w for w in wire if w[0].endswith("/export")]
    ((path, query, listed),) = [w for w in wire if w[2] is not None]
    assert path.rstrip("/") == "/api/tasks" and listed == 1  # t1, the newest stamp, listed again
    assert json.loads(query["query"])["filters"]["items"][0]["filter"] == "filter:tasks:updated_at"

    wire.clear()
    ann1.edit(edited, OTHER)  # an edit
    admin(cfg).annotations.delete(deleted)  # a deletion
    ann2.annotate(t1, GOOD)  # a new annotation on a task pulled before
    changed = collect_annotations(ls_store, cfg)
    assert (changed.tasks_changed, changed.annotations_new, changed.annotations_updated) == (2, 1, 1)
    (export,) = [w for w in wire if w[0].endswith("/export")]
    assert sorted(int(i) for i in export[1].get_list("ids[]")) == sorted([t0, t1])
    labels = {r["item_id"]: r for r in ls_store.read("labels")}
    l0, l1 = labels[regular[0]["item_id"]], labels[regular[1]["item_id"]]
    assert (l0["method"], l0["n_annotations"], l0["best"]) == ("single", 1, "C")
    assert l0["annotation_ids"] == [f"labelstudio:{edited}"]
    assert (l1["method"], l1["n_annotations"]) == ("majority", 2)

    wire.clear()
    assert collect_annotations(ls_store, cfg).snapshots == []
    assert not [w for w in wire if w[0].endswith("/export")]
