"""Label Studio traffic that follows the changes (issue 13), against a real local server, as ratios to
baselines measured in the same run.

Push: ``push_items`` of N new items into a set-up project the map already knows (the steady state:
project from the setup record, one anti-join, one bulk import per chunk) vs a raw bulk import of the
same task JSON into another project, once through the SDK's ``projects.import_tasks`` and once as a
plain HTTP POST. Repeated, in rotating order, medians. The first push into a fresh project (which asks
the server once how many tasks it holds) is timed too.

Collect: N tasks with one annotation each (one bulk import), then a raw full JSON export (the
baseline), the first ``collect_annotations`` (one export of everything), re-collects with nothing
changed (the cursor: one task-list request), and a re-collect after 1% of the tasks got a new
annotation. Before the first collect the bench waits ``cursor_overlap_s`` + 1 s: a pull that begins
within the overlap of a change lists that change's tasks again (by design: writes still in flight),
and the server's clock is read from whole-second ``Date`` headers.

    AESCOT_LABEL_STUDIO_BIN=$PWD/.venv-labelstudio/bin/label-studio \\
        nice -n 10 .venv/bin/python bench/labelstudio_traffic.py --sizes 1000 10000
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aescot.labelstudio import LabelStudioConfig, collect_annotations, ensure_project, push_items
from aescot.labelstudio.mapping import answer_to_result, task_data
from aescot.labelstudio.project import document_root
from aescot.labelstudio.server import LocalServer, LocalServerConfig
from aescot.store import DatasetStore
from tests.labelstudio.helpers import admin, answer, make_items, sign_up

ANSWERS = [
    answer("A", ["A", "B"], {"C": ["lighting_shadow"], "D": ["placement_layout"]}, {"A": 5}),
    answer("C", ["C"], {"A": ["placement_layout"], "B": ["lighting_shadow"], "D": ["extension_rationality"]}),
]


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bench_push(server: LocalServer, store: DatasetStore, n: int, reps: int) -> None:
    cfg = LabelStudioConfig(
        url=server.url,
        api_key=server.token,
        document_root=server.document_root,
        project_title=f"bench push {n}",
        chunk_size=1000,
        gold_share=0.0,
    )
    client = admin(cfg)
    root = document_root(store, cfg)
    ensure_project(store, cfg)  # aescot labelstudio setup
    make_items(store, 1)
    assert push_items(store, cfg).pushed == 1  # a first push: the map knows the project from now on
    sdk = ensure_project(store, cfg.model_copy(update={"project_title": f"bench raw sdk {n}"}))
    plain = ensure_project(store, cfg.model_copy(update={"project_title": f"bench raw http {n}"}))
    headers = {"Authorization": f"Token {cfg.api_key.get_secret_value()}"}
    http = httpx.Client(base_url=cfg.url, headers=headers, timeout=600)

    def run_sdk(payload):
        return lambda: client.projects.import_tasks(sdk.id, request=payload, return_task_ids=True)

    def run_http(payload):
        def post():
            body = json.dumps(payload).encode("utf-8")
            r = http.post(
                f"/api/projects/{plain.id}/import",
                params={"return_task_ids": "true"},
                content=body,
                headers={"Content-Type": "application/json"},
            )
            r.raise_for_status()
            return r.json()

        return post

    def run_push():
        report = push_items(store, cfg)
        assert report.pushed == n, report
        return report

    times: dict[str, list[float]] = {"push": [], "sdk": [], "http": []}
    for rep in range(reps):
        items = make_items(store, n)
        payload = [{"data": task_data(i, store, sdk.storage, root)} for i in items]
        runs = [("sdk", run_sdk(payload)), ("http", run_http(payload)), ("push", run_push)]
        for name, fn in runs[rep % 3 :] + runs[: rep % 3]:
            times[name].append(timed(fn)[0])
    med = {k: statistics.median(v) for k, v in times.items()}
    paired = {b: statistics.median(p / r for p, r in zip(times["push"], times[b])) for b in ("sdk", "http")}

    fresh_cfg = cfg.model_copy(update={"project_title": f"bench first push {n}"})
    ensure_project(store, fresh_cfg)
    t_first, first = timed(lambda: push_items(store, fresh_cfg, item_ids=[i["item_id"] for i in items]))
    assert first.pushed == n
    http.close()
    print(
        f"push {n:>6} new items (chunks of {cfg.chunk_size}, {reps} reps, medians): push_items "
        f"{med['push']:.3f} s | SDK import_tasks {med['sdk']:.3f} s | plain HTTP import {med['http']:.3f} s"
    )
    print(
        f"  push / SDK import_tasks = {med['push'] / med['sdk']:.2f}x of medians, {paired['sdk']:.2f}x median of "
        f"paired reps (goal <= 1.2x at 1k); push / plain HTTP import = {med['push'] / med['http']:.2f}x, "
        f"{paired['http']:.2f}x paired"
    )
    print(f"  first push into a fresh project (asks its task count once): {t_first:.3f} s")


def bench_collect(server: LocalServer, store: DatasetStore, n: int, quiet_reps: int) -> None:
    cfg = LabelStudioConfig(
        url=server.url,
        api_key=server.token,
        document_root=server.document_root,
        project_title=f"bench collect {n}",
    )
    client = admin(cfg)
    root = document_root(store, cfg)
    items = make_items(store, n)
    person = sign_up(cfg.url, cfg.api_key.get_secret_value())
    me = person.client.users.whoami().id
    project = ensure_project(store, cfg)
    annotated = [
        {
            "data": task_data(i, store, project.storage, root),
            "annotations": [
                {"result": answer_to_result(ANSWERS[k % 2]), "completed_by": me, "lead_time": 5.0}
            ],
        }
        for k, i in enumerate(items)
    ]
    task_ids: list[int] = []
    for at in range(0, len(annotated), 1000):  # one 10k request outlasts the SDK's read timeout
        chunk = annotated[at : at + 1000]
        task_ids += client.projects.import_tasks(project.id, request=chunk, return_task_ids=True).task_ids
    headers = {"Authorization": f"Token {cfg.api_key.get_secret_value()}"}
    with httpx.Client(base_url=cfg.url, headers=headers, timeout=900) as http:

        def export() -> bytes:
            r = http.get(
                f"/api/projects/{project.id}/export",
                params={"exportType": "JSON", "download_all_tasks": "true"},
            )
            r.raise_for_status()
            return r.content

        exports = [timed(export) for _ in range(2)]
    t_export, raw = statistics.median(t for t, _ in exports), exports[0][1]
    time.sleep(cfg.cursor_overlap_s + 1.0)  # see the module docs
    t_collect, col = timed(lambda: collect_annotations(store, cfg))
    assert col.annotations_new == n, col
    quiet = [timed(lambda: collect_annotations(store, cfg)) for _ in range(quiet_reps)]
    for _, q in quiet:
        assert (q.annotations_new, q.snapshots) == (0, []), q
    t_quiet = statistics.median(t for t, _ in quiet)
    requests = sorted({q.requests for _, q in quiet})
    changed = task_ids[: max(1, n // 100)]
    for tid in changed:
        person.annotate(tid, ANSWERS[0])
    t_incr, incr = timed(lambda: collect_annotations(store, cfg))
    assert incr.annotations_new == len(changed), incr
    print(
        f"collect {n:>6} annotated tasks: raw full export {t_export:.2f} s ({len(raw) / 1e6:.1f} MB, median of "
        f"2); first collect_annotations {t_collect:.2f} s ({t_collect / t_export:.2f}x)"
    )
    print(
        f"  re-collect, nothing changed: {t_quiet:.3f} s = {100 * t_quiet / t_export:.1f}% of a full export "
        f"(goal <= 5% at 10k; median of {quiet_reps}; requests {requests}, no export)"
    )
    print(
        f"  re-collect, {len(changed)} tasks (1%) with a new annotation: {t_incr:.2f} s = "
        f"{100 * t_incr / t_export:.1f}% of a full export ({incr.requests} requests)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--push-reps", type=int, default=5)
    parser.add_argument("--quiet-reps", type=int, default=5)
    parser.add_argument("--only", choices=["push", "collect"], default=None, help="run one half")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="aescot-bench-ls-"))
    (base / "datasets").mkdir()
    server = LocalServer(LocalServerConfig(data_dir=base / "ls-data", document_root=base / "datasets"))
    t_start, _ = timed(server.start)
    print(f"server started in {t_start:.1f} s (Label Studio, SQLite, loopback)")
    try:
        for n in args.sizes:
            store = DatasetStore(server.document_root / f"bench-{n}")
            if args.only != "collect":
                bench_push(server, store, n, args.push_reps)
            if args.only != "push":
                bench_collect(server, store, n, args.quiet_reps)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
