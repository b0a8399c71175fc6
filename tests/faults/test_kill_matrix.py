"""The kill matrix: SIGKILL every stage at three moments, re-run it, compare with an uninterrupted run.

For each stage (ingest, generate, items, push, collect, rationales, filter, export) a reference run
on a copy of the stage's input store records its writes (table upserts, blobs, export shards);
three killed runs on fresh copies die during the first write (an upsert's data files written but
not committed, or a blob's temp file left behind), during the middle write, and right after the
last write but one. Each is re-run to completion, then: every table holds exactly the reference's
keys (0 lost, nothing extra) and as many rows as keys, no output is duplicated (Label Studio tasks
per item, candidates per source, exported rows per item, ...), every input is accounted for (for
ingest: each file a source or a reject with its reason), every table file reads (doctor finds
nothing), and no temp file of the dead writer is left where the re-run wrote.

Small inputs (8 products + copies and bad files): all 24 cases take about 75 s on 2 busy cores (the
session's Label Studio included), so all run by default. The figures per case are printed and, with
``AESCOT_KILL_MATRIX_REPORT=<file>``, appended there as JSON lines.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from aescot.store import TABLES, DatasetStore
from aescot.timeutil import now_iso
from aescot.vocab import LETTERS
from tests.faults.corpus import accounted, make_operator_corpus, want
from tests.faults.stages import run_stage, watch_writes

REPO = Path(__file__).resolve().parents[2]
MOMENTS = ("first-write", "middle-write", "before-last-write")
LS_STAGES = ("push", "collect")
# tables keyed by something of the run itself: the Label Studio project (its title is per case) and
# the export id (a hash of the table versions it read, which a killed run's commits move on)
PER_RUN = {"labelstudio_projects", "exports"}


# --- the chain of input stores, built once ---------------------------------------------------------


class Chain:
    """Input stores per stage (copied for each run), the shared context, the reference runs."""

    def __init__(self, base: Path):
        self.base = base
        self.inputs = base / "inputs"
        self.expected = make_operator_corpus(self.inputs, products=8)
        self.pre: dict[str, Path] = {}
        self.ctx: dict[str, Any] = {"inputs": str(self.inputs)}
        self.references: dict[str, tuple[Path, list[str], dict[str, Any]]] = {}

    def snapshot(self, stage: str, root: Path) -> None:
        dest = self.base / f"pre-{stage}"
        shutil.copytree(root, dest) if root.exists() else dest.mkdir()
        self.pre[stage] = dest

    def copy(self, stage: str, name: str, under: Path | None = None) -> Path:
        dest = (under or self.base) / f"{stage}-{name}-{uuid.uuid4().hex[:6]}"
        shutil.copytree(self.pre[stage], dest)
        return dest


def _label_rows(store: DatasetStore) -> tuple[list[dict], dict[str, dict]]:
    from aescot.items import planted_answers

    answers = planted_answers(store)
    rows = [
        {
            "item_id": iid,
            "acceptable": a["acceptable"],
            "best": a["best"],
            "dimensions": a["dimensions"],
            "scores": {k: None for k in LETTERS},
            "method": "single",
            "n_annotations": 1,
            "agreement": 1.0,
            "annotation_ids": [f"planted-{iid[:8]}"],
            "updated_at": now_iso(),
        }
        for iid, a in sorted(answers.items())
    ]
    return rows, answers


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> Chain:
    c = Chain(tmp_path_factory.mktemp("kill-matrix"))
    work = c.base / "work"
    c.snapshot("ingest", work)
    run_stage("ingest", str(work), c.ctx)
    c.snapshot("generate", work)
    run_stage("generate", str(work), c.ctx)
    c.snapshot("items", work)
    run_stage("items", str(work), c.ctx)
    c.snapshot("push", work)
    store = DatasetStore(work)
    labels, c.answers = _label_rows(store)
    store.upsert("labels", labels)
    c.snapshot("rationales", work)
    return c


@pytest.fixture(scope="module")
def teacher(chain):
    """The loopback teacher answering every item with its planted answer; the stores up to export."""
    from tests.teacher.conftest import chat_server

    oracle = sys.modules[chat_server.__module__].oracle
    with chat_server(responder=oracle(chain.answers), api_key="sk-kill-matrix-key") as srv:
        chain.ctx.update(teacher_url=srv.base_url, teacher_key="sk-kill-matrix-key")
        work = chain.base / "work"
        if "filter" not in chain.pre:
            run_stage("rationales", str(work), chain.ctx)
            chain.snapshot("filter", work)
            run_stage("filter", str(work), chain.ctx)
            chain.snapshot("export", work)
        yield srv


@pytest.fixture(scope="module")
def labelstudio(chain, labelstudio_server):
    """The session's real Label Studio; a project holding the items, each annotated, for collect."""
    from label_studio_sdk import LabelStudio

    from aescot.labelstudio.mapping import answer_to_result

    chain.ctx.update(
        ls_url=labelstudio_server.url,
        ls_token=labelstudio_server.token.get_secret_value(),
        ls_document_root=str(labelstudio_server.document_root),
    )
    chain.ls_root = Path(labelstudio_server.document_root) / f"kill-matrix-{uuid.uuid4().hex[:6]}"
    chain.ls_root.mkdir()
    if "collect" not in chain.pre:
        root = chain.copy("push", "for-collect", under=chain.ls_root)
        ctx = {**chain.ctx, "ls_project": f"km collect {uuid.uuid4().hex[:6]}"}
        run_stage("push", str(root), ctx)
        client = LabelStudio(base_url=labelstudio_server.url, api_key=chain.ctx["ls_token"])
        store = DatasetStore(root)
        for row in store.read("labelstudio_tasks"):
            client.annotations.create(row["task_id"], result=answer_to_result(chain.answers[row["item_id"]]))
        chain.collect_project = ctx["ls_project"]
        chain.pre["collect"] = root
    return labelstudio_server


# --- one case -------------------------------------------------------------------------------------


def _ctx(chain: Chain, stage: str, run_root: Path) -> dict[str, Any]:
    ctx = dict(chain.ctx)
    if stage == "push":
        ctx["ls_project"] = f"km push {uuid.uuid4().hex[:8]}"
    if stage == "collect":
        ctx["ls_project"] = chain.collect_project
    if stage == "export":
        ctx["export_out"] = str(run_root) + "-export"
    return ctx


def _reference(chain: Chain, stage: str) -> tuple[Path, list[str], dict[str, Any]]:
    if stage not in chain.references:
        root = chain.copy(
            stage, "reference", under=getattr(chain, "ls_root", None) if stage in LS_STAGES else None
        )
        ctx = _ctx(chain, stage, root)
        writes: list[str] = []
        with watch_writes(lambda phase, src, dst: writes.append(dst) if phase == "after" else None):
            run_stage(stage, str(root), ctx)
        chain.references[stage] = (root, writes, ctx)
    return chain.references[stage]


def _moment(moment: str, n_writes: int) -> str:
    """The write to kill at. A stage with a single write (items) is killed during it, and after it
    (before the process could report): its middle write is its first."""
    assert n_writes >= 1, "the stage wrote nothing"
    if moment == "first-write":
        return "1-"
    if moment == "middle-write":
        return f"{max(1, n_writes // 2)}-"
    return str(max(1, n_writes - 1))


def _keys(store: DatasetStore, table: str) -> set:
    """The table's keys; asserts it holds one row per key (a duplicate would be a second row)."""
    spec = TABLES.get(table)
    if spec is None:
        return set()
    cols = list(spec.key)
    extra = ["item_id"] if "item_id" in spec.arrow_schema().names and "item_id" not in cols else []
    t = store.read_arrow(table, cols + extra)
    keys = list(zip(*(t.column(c).to_pylist() for c in cols)))
    assert len(keys) == len(set(keys)), f"table {table}: {len(keys) - len(set(keys))} duplicated keys"
    if any(c in ("project_uid", "project_id", "task_id") for c in cols):  # per-project ids: compare items
        return set(t.column("item_id").to_pylist()) if "item_id" in t.column_names else set()
    if table in PER_RUN:  # a key that names the run itself: compare how many
        return {("rows", len(keys))}
    return {k[0] if len(k) == 1 else k for k in keys}


def _tables(store: DatasetStore) -> list[str]:
    from aescot.doctor import table_names

    return table_names(store)


def _ls_tasks_per_item(ctx: dict[str, Any], store: DatasetStore) -> Counter:
    from aescot.labelstudio import LabelStudioConfig
    from aescot.labelstudio.client import http_client, list_tasks
    from aescot.labelstudio.mapping import ITEM_FIELD

    cfg = LabelStudioConfig(url=ctx["ls_url"], api_key=ctx["ls_token"], project_title=ctx["ls_project"])
    project_id = store.read("labelstudio_tasks")[0]["project_id"]
    with http_client(cfg) as http:
        tasks = list_tasks(cfg, http, project_id)
    return Counter(t["data"][ITEM_FIELD] for t in tasks)


def _export_rows_per_item(out: str) -> Counter:
    per: Counter = Counter()
    for path in Path(out).rglob("*.parquet"):
        parts = path.relative_to(out).parts
        if any(p.startswith((".", "_")) for p in parts):  # a staging folder: no reader looks there
            continue
        t = pq.read_table(path)
        fmt = parts[0]
        if "item_id" in t.column_names:
            ids = t.column("item_id").to_pylist()
        elif "extra_info" in t.column_names:
            ids = [e["item_id"] for e in t.column("extra_info").to_pylist()]
        else:
            continue
        # per-candidate formats (scores): one row per candidate, so a row's identity is (item, candidate)
        cands = (
            t.column("candidate_id").to_pylist() if "candidate_id" in t.column_names else [None] * len(ids)
        )
        per.update((fmt, i, c) for i, c in zip(ids, cands))
    return per


def figures(chain: Chain, stage: str, store: DatasetStore, ctx: dict[str, Any]) -> dict[str, Any]:
    """inputs, outputs, rejects and duplicates of one finished run of ``stage``."""
    reasons = Counter(
        r["reason"] for r in store.read("rejects", columns=["stage", "reason"]) if r["stage"] == stage
    )
    return {
        **_figures(chain, stage, store, ctx, sum(reasons.values())),
        "reject_reasons": dict(sorted(reasons.items())),
    }


def _figures(
    chain: Chain, stage: str, store: DatasetStore, ctx: dict[str, Any], rejects: int
) -> dict[str, Any]:
    if stage == "ingest":
        out = store.count("sources")
        return {
            "inputs": len(chain.expected),
            "outputs": out,
            "rejects": rejects,
            "duplicates": out - len(set(store.column("sources").to_pylist())),
        }
    if stage == "generate":
        per = Counter(c["source_id"] for c in store.read("candidates", columns=["source_id"]))
        return {
            "inputs": store.count("sources"),
            "outputs": sum(per.values()),
            "rejects": rejects,
            "duplicates": sum(max(0, n - 4) for n in per.values()),
        }
    if stage == "items":
        per = Counter(i["source_id"] for i in store.read("items", columns=["source_id"]))
        return {
            "inputs": store.count("sources"),
            "outputs": sum(per.values()),
            "rejects": rejects,
            "duplicates": sum(n - 1 for n in per.values()),
        }
    if stage == "push":
        per = _ls_tasks_per_item(ctx, store)
        return {
            "inputs": store.count("items"),
            "outputs": len(per),
            "rejects": rejects,
            "duplicates": sum(n - 1 for n in per.values()),
        }
    if stage == "collect":
        labels = Counter(r["item_id"] for r in store.read("labels", columns=["item_id"]))
        return {
            "inputs": store.count("labelstudio_tasks"),
            "outputs": store.count("annotations"),
            "rejects": rejects,
            "duplicates": sum(n - 1 for n in labels.values()),
        }
    if stage == "rationales":
        ok = [r for r in store.read("rationales", columns=["rationale_id", "error"]) if r["error"] is None]
        ids = Counter(r["rationale_id"] for r in ok)
        return {
            "inputs": store.count("labels") * 2,
            "outputs": len(ids),
            "rejects": rejects,
            "duplicates": sum(n - 1 for n in ids.values()),
        }
    if stage == "filter":
        per = Counter(r["item_id"] for r in store.read("selections", columns=["item_id"]))
        return {
            "inputs": store.count("labels"),
            "outputs": len(per),
            "rejects": rejects,
            "duplicates": sum(n - 1 for n in per.values()),
        }
    per = _export_rows_per_item(ctx["export_out"])
    one_per_item = Counter({k: n for k, n in per.items() if k[0] != "pairs"})  # pairs: several per item
    return {
        "inputs": store.count("labels"),
        "outputs": len({k[1] for k in one_per_item}),
        "rows": sum(per.values()),
        "stale_staging_dirs": len(list(Path(ctx["export_out"]).glob(".staging-*"))),
        "rejects": rejects,
        "duplicates": sum(n - 1 for n in one_per_item.values()),
    }


def run_case(chain: Chain, stage: str, moment: str) -> dict[str, Any]:
    ref_root, writes, ref_ctx = _reference(chain, stage)
    spec = _moment(moment, len(writes))
    root = chain.copy(stage, moment, under=getattr(chain, "ls_root", None) if stage in LS_STAGES else None)
    ctx = _ctx(chain, stage, root)
    proc = subprocess.run(
        [sys.executable, "-m", "tests.faults.stages", stage, str(root), json.dumps(ctx), spec],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "PYTHONFAULTHANDLER": "0"},
    )
    assert proc.returncode == -9, f"{stage} was not killed at write {spec}: {proc.stderr[-2000:]}"
    run_stage(stage, str(root), ctx)  # the re-run

    store, ref = DatasetStore(root), DatasetStore(ref_root)
    for table in _tables(ref):
        assert _keys(store, table) == _keys(ref, table), f"{stage} killed at {spec}: table {table} differs"
    got, expected = figures(chain, stage, store, ctx), figures(chain, stage, ref, ref_ctx)
    assert got == expected, f"{stage} killed at {spec}: {got} != reference {expected}"
    assert got["duplicates"] == 0
    if stage == "ingest":
        assert accounted(store, chain.expected) == want(chain.expected)
    from aescot.doctor import check_store

    report = check_store(store)  # every page of every table file reads; every referenced image is there
    assert report.ok, f"{stage} killed at {spec}: {report.problems}"
    leftovers = list(Path(root).rglob(".tmp-*"))
    # a killed writer's temp is gone after the re-run: from the root's temp folder (blobs, snapshots)
    # and from any folder the stage wrote into (export shards)
    touched = {os.path.dirname(w) for w in writes} | {os.path.join(str(ref_root), ".tmp")}
    assert not [
        p for p in leftovers if str(p.parent) in {t.replace(str(ref_root), str(root)) for t in touched}
    ]
    result = {"stage": stage, "moment": moment, "kill_at_write": spec, "writes": len(writes), **got}
    print(json.dumps(result))
    if os.environ.get("AESCOT_KILL_MATRIX_REPORT"):
        with open(os.environ["AESCOT_KILL_MATRIX_REPORT"], "a") as fh:
            fh.write(json.dumps(result) + "\n")
    return result


CASES = [
    pytest.param(stage, moment, id=f"{stage}-{moment}")
    for stage in ("ingest", "generate", "items", "push", "collect", "rationales", "filter", "export")
    for moment in MOMENTS
]


@pytest.mark.parametrize(("stage", "moment"), CASES)
def test_kill_then_rerun_loses_and_duplicates_nothing(request, chain, stage, moment):
    if stage in ("rationales", "filter", "export"):
        request.getfixturevalue("teacher")
    if stage in LS_STAGES:
        request.getfixturevalue("labelstudio")
    run_case(chain, stage, moment)
