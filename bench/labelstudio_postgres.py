"""Label Studio on PostgreSQL (issue 14 item 4): push N tasks and collect M annotations against a real
local server whose database is a real PostgreSQL cluster (started here, on loopback), at a small and a
large size; seconds per 1k tasks at each, the ratio large/small (goal <= 1.5x), and the server's RSS
(the label-studio process tree, psutil).

Push: ``push_items`` of N new items into a fresh project (chunks of 1,000). Collect: M of those tasks get
one annotation each (one bulk import of annotated tasks through the same server), then the first
``collect_annotations`` (one export of everything annotated).

    AESCOT_LABEL_STUDIO_BIN=$PWD/.venv-labelstudio/bin/label-studio \\
        nice -n 10 .venv/bin/python bench/labelstudio_postgres.py --sizes 1000 100000 --collect 1000 10000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aescot.labelstudio import LabelStudioConfig, collect_annotations, ensure_project, push_items
from aescot.labelstudio.mapping import answer_to_result, task_data
from aescot.labelstudio.project import document_root
from aescot.labelstudio.server import LocalServer, LocalServerConfig
from aescot.store import DatasetStore
from tests.labelstudio.helpers import GOLD_ANSWER, admin, make_items, sign_up
from tests.pgcluster import PgCluster

ANSWER = GOLD_ANSWER  # valid under the answer rules (an invalid one is requeued: one DELETE each)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def rss_mb(pid: int) -> float:
    import psutil

    proc = psutil.Process(pid)
    procs = [proc, *proc.children(recursive=True)]
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def bench_push(server: LocalServer, n: int) -> float:
    store = DatasetStore(server.document_root / f"push-{n}")
    cfg = LabelStudioConfig(
        url=server.url,
        api_key=server.token,
        document_root=server.document_root,
        project_title=f"bench pg push {n}",
        chunk_size=1000,
        gold_share=0.0,
    )
    ensure_project(store, cfg)
    make_items(store, 1)
    assert push_items(store, cfg).pushed == 1  # set up; the map knows the project from now on
    make_items(store, n)
    t, report = timed(lambda: push_items(store, cfg))
    assert report.pushed == n, report
    per_k = 1000 * t / n
    print(f"push {n:>7} tasks: {t:8.2f} s = {per_k:.3f} s per 1k tasks ({report.chunks} chunks)", flush=True)
    return per_k


def bench_collect(server: LocalServer, m: int, annotator) -> float:
    store = DatasetStore(server.document_root / f"collect-{m}")
    cfg = LabelStudioConfig(
        url=server.url,
        api_key=server.token,
        document_root=server.document_root,
        project_title=f"bench pg collect {m}",
    )
    items = make_items(store, m)
    project = ensure_project(store, cfg)
    root = document_root(store, cfg)
    result = answer_to_result(ANSWER)
    client = admin(cfg)
    for k in range(0, m, 1000):
        client.projects.import_tasks(
            project.id,
            request=[
                {
                    "data": task_data(i, store, project.storage, root),
                    "annotations": [{"result": result, "completed_by": annotator, "lead_time": 5.0}],
                }
                for i in items[k : k + 1000]
            ],
        )
    time.sleep(cfg.cursor_overlap_s + 1.0)  # a pull within the overlap of a change lists it again
    t, col = timed(lambda: collect_annotations(store, cfg))
    assert col.annotations_new == m, col
    per_k = 1000 * t / m
    print(f"collect {m:>7} annotations: {t:8.2f} s = {per_k:.3f} s per 1k tasks", flush=True)
    return per_k


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[1000, 100000], help="push sizes: small large")
    parser.add_argument(
        "--collect", type=int, nargs=2, default=[1000, 10000], help="collect sizes: small large"
    )
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="aescot-bench-lspg-"))
    (base / "datasets").mkdir()
    cluster = PgCluster()
    server = LocalServer(
        LocalServerConfig(
            data_dir=base / "ls-data",
            document_root=base / "datasets",
            database=cluster.database,
            startup_timeout_s=900,
        )
    )
    try:
        t_start, running = timed(server.start)
        print(
            f"server started in {t_start:.1f} s (Label Studio on PostgreSQL, first start migrates)",
            flush=True,
        )
        print(f"server RSS after start: {rss_mb(running.pid):.0f} MB", flush=True)
        push = [bench_push(server, n) for n in args.sizes]
        print(f"  push per-1k ratio {args.sizes[1]}/{args.sizes[0]}: {push[1] / push[0]:.2f}x (goal <= 1.5x)")
        print(f"server RSS after push: {rss_mb(running.pid):.0f} MB", flush=True)
        person = sign_up(server.url, server.token.get_secret_value())
        me = person.client.users.whoami().id
        col = [bench_collect(server, m, me) for m in args.collect]
        print(
            f"  collect per-1k ratio {args.collect[1]}/{args.collect[0]}: {col[1] / col[0]:.2f}x (goal <= 1.5x)"
        )
        print(f"server RSS after collect: {rss_mb(running.pid):.0f} MB")
        tasks = cluster.query("SELECT count(*) FROM task")
        print(
            f"PostgreSQL holds {tasks} tasks; data dir SQLite files: {list((base / 'ls-data').glob('*.sqlite3'))}"
        )
    finally:
        server.stop()
        cluster.destroy()


if __name__ == "__main__":
    main()
