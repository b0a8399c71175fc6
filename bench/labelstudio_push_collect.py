"""Label Studio push and collect against a real local server, as ratios to baselines measured in the same run.

Push of N tasks with ``push_items`` (bulk chunks + bookkeeping + idempotency) vs one raw
``projects.import_tasks`` call with the same payload, and vs one task per call (timed on a
sample, extrapolated). Collection of N annotated tasks with ``collect_annotations`` (raw
snapshot, parse, validate, consensus) vs one raw full JSON export; then an incremental
re-collect after 1% of the tasks changed.

    AESCOT_LABEL_STUDIO_BIN=... python bench/labelstudio_push_collect.py --sizes 1000 10000
"""

from __future__ import annotations

import argparse
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


def bench(server: LocalServer, n: int, one_by_one_sample: int) -> None:
    store = DatasetStore(server.document_root / f"bench-{n}")
    items = make_items(store, n)
    cfg = LabelStudioConfig(
        url=server.url,
        api_key=server.token,
        document_root=server.document_root,
        project_title=f"bench push {n}",
        chunk_size=1000,
        gold_share=0.0,
    )
    client = admin(cfg)

    t_push, report = timed(lambda: push_items(store, cfg))
    assert report.pushed == n
    t_repush, again = timed(lambda: push_items(store, cfg))
    assert again.pushed == 0

    raw_cfg = cfg.model_copy(update={"project_title": f"bench raw {n}"})
    raw_project = ensure_project(store, raw_cfg)
    root = document_root(store, cfg)
    payload = [{"data": task_data(i, store, raw_project.storage, root)} for i in items]
    t_raw, _ = timed(
        lambda: client.projects.import_tasks(raw_project.id, request=payload, return_task_ids=True)
    )

    one_cfg = cfg.model_copy(update={"project_title": f"bench one-by-one {n}"})
    one_project = ensure_project(store, one_cfg)
    sample = payload[:one_by_one_sample]
    t_one, _ = timed(lambda: [client.projects.import_tasks(one_project.id, request=[t]) for t in sample])
    t_one_all = t_one / len(sample) * n

    print(
        f"push {n:>6} tasks: aescot {t_push:6.2f} s | raw single import_tasks {t_raw:6.2f} s | "
        f"one per call {t_one_all:7.1f} s (extrapolated from {len(sample)})"
    )
    print(
        f"  ratios: aescot/raw = {t_push / t_raw:5.2f}x   one-per-call/aescot = {t_one_all / t_push:6.1f}x   "
        f"idempotent re-push {t_repush:5.2f} s ({t_repush / t_push:4.2f}x of a push)"
    )

    # a project of n tasks, each with one annotation, imported in one bulk call (POSTing them one by one
    # like the UI does costs ~0.12 s each, minutes for 10k, and is not what is measured here)
    person = sign_up(cfg.url, cfg.api_key.get_secret_value())
    me = person.client.users.whoami().id
    col_cfg = cfg.model_copy(update={"project_title": f"bench collect {n}"})
    col_project = ensure_project(store, col_cfg)
    annotated = [
        {
            "data": task_data(i, store, col_project.storage, root),
            "annotations": [
                {"result": answer_to_result(ANSWERS[k % 2]), "completed_by": me, "lead_time": 5.0}
            ],
        }
        for k, i in enumerate(items)
    ]
    imported = client.projects.import_tasks(col_project.id, request=annotated, return_task_ids=True)
    headers = {"Authorization": f"Token {cfg.api_key.get_secret_value()}"}
    with httpx.Client(base_url=cfg.url, headers=headers, timeout=600) as http:
        t_export, raw = timed(
            lambda: (
                http.get(
                    f"/api/projects/{col_project.id}/export",
                    params={"exportType": "JSON", "download_all_tasks": "true"},
                ).content
            )
        )
    cfg = col_cfg
    t_collect, col = timed(lambda: collect_annotations(store, cfg))
    assert col.annotations_new == n, col
    t_quiet, quiet = timed(lambda: collect_annotations(store, cfg))
    assert quiet.annotations_new == 0
    changed = list(imported.task_ids)[: max(1, n // 100)]
    for tid in changed:
        person.annotate(tid, ANSWERS[0])
    t_incr, incr = timed(lambda: collect_annotations(store, cfg))
    assert incr.annotations_new == len(changed)
    print(
        f"collect {n:>6} annotated tasks: aescot {t_collect:6.2f} s | raw full export {t_export:6.2f} s "
        f"({len(raw) / 1e6:.1f} MB) -> ratio {t_collect / t_export:5.2f}x"
    )
    print(
        f"  nothing changed: {t_quiet:5.2f} s ({t_quiet / t_export:4.2f}x of a full export); "
        f"1% changed: {t_incr:5.2f} s ({t_incr / t_export:4.2f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--one-by-one-sample", type=int, default=200)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="aescot-bench-ls-"))
    (base / "datasets").mkdir()
    server = LocalServer(LocalServerConfig(data_dir=base / "ls-data", document_root=base / "datasets"))
    t_start, _ = timed(server.start)
    print(f"server started in {t_start:.1f} s (from an initialised data-dir template)")
    try:
        for n in args.sizes:
            bench(server, n, args.one_by_one_sample)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
