"""Generation on a Dask cluster: the flow on 1 worker process vs 4, with the latency backend.

    python bench/generate_cluster.py [--sizes 64 128] [--batch-size 4] [--seconds-per-call 0.5] [--workers 4]

The ``latency`` backend sleeps ``--seconds-per-call`` per source (one GPU call for its 4 slots) and
writes 64 px synthetic images, so a batch of 4 sources is ~2 s of device time and little CPU: what a
GPU backend costs the orchestrator. For each size, on fresh stores with the sources already ingested,
the ``build-screening-set`` flow (Label Studio and teacher off) runs on a
``distributed.LocalCluster`` of 1 worker process (gpu_slots=1) and of ``--workers`` processes
(gpu_slots=workers, so that many batches are in flight), one thread each. Printed per run: the whole
flow's seconds, the generation span (first generate task start to last end, from the Prefect API),
the CPU seconds every process used (flow, API server, workers), candidates, and the checks: every
source has exactly 4 candidates, no (source, slot) was written twice, every source was generated once
(the batches' ``generated`` sum to the sources, none ``skipped``) and no GPU slot is left held.

CPU bound: with C CPU seconds over the machine's cores the run cannot take less than C / cores
seconds; the sleep bound is batches / slots x the batch's device time. The speed-up is the 1-worker
time over the N-worker time, of the flow and of the generation span.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="aescot-bench-prefect-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and every live descendant (cluster, API server)."""
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            pass
    return total


def candidate_checks(root: Path, n_sources: int) -> dict:
    """Physical candidate rows: per source, per (source, slot) and per id (a duplicate row would show)."""
    from aescot.store import DatasetStore

    tab = DatasetStore(root).read_arrow("candidates", ["candidate_id", "source_id", "params"])
    ids = tab.column("candidate_id").to_pylist()
    pairs = Counter(
        (s, json.loads(p)["slot"])
        for s, p in zip(tab.column("source_id").to_pylist(), tab.column("params").to_pylist())
    )
    per_source = Counter(s for s, _ in pairs.elements())
    return {
        "rows": len(ids),
        "duplicate_ids": len(ids) - len(set(ids)),
        "duplicate_source_slots": sum(c - 1 for c in pairs.values()),
        "sources_with_4": sum(1 for c in per_source.values() if c == 4),
        "sources_missing": n_sources - len(per_source),
    }


def generate_span(flow_run_id) -> tuple[float, int]:
    """(seconds from the first generate task's start to the last one's end, generate task runs)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    gen = [r for r in runs if r.name.startswith("generate")]
    start = min(r.start_time for r in gen)
    end = max(r.end_time for r in gen)
    return (end - start).total_seconds(), len(gen)


def one_run(root: Path, workers: int, args) -> dict:
    from distributed import Client, LocalCluster
    from prefect_dask import DaskTaskRunner

    from flows.build_screening_set import build_screening_set
    from flows.limits import GPU_LIMIT, active_slots

    t = time.perf_counter()
    cluster = LocalCluster(n_workers=workers, processes=True, threads_per_worker=1, dashboard_address=None)
    with Client(cluster) as client:  # warm workers, as a standing cluster's are: imports not timed
        client.run(importlib.import_module, "flows.tasks")
    started = time.perf_counter() - t
    try:
        runner = DaskTaskRunner(address=cluster.scheduler_address)
        cpu0, t = cpu_seconds(), time.perf_counter()
        state = build_screening_set.with_options(task_runner=runner)(
            root=str(root),
            generator="latency",
            seconds_per_call=args.seconds_per_call,
            batch_size=args.batch_size,
            gpu_slots=workers,
            labelstudio=False,
            teacher="off",
            return_state=True,
        )
        secs = time.perf_counter() - t
        cpu = cpu_seconds() - cpu0  # before the cluster closes: its processes must be alive to count
    finally:
        cluster.close()
    assert state.is_completed(), state.message
    gen = state.result()["generate"]
    span, tasks = generate_span(state.state_details.flow_run_id)
    return {
        "workers": workers,
        "cluster_start_s": started,
        "flow_s": secs,
        "generate_s": span,
        "tasks": tasks,
        "cpu_s": cpu,
        "generated": gen["generated"],
        "skipped": gen["skipped"],
        "candidates": gen["candidates"],
        "regenerations": gen["regenerations"],
        "gpu_slots_held_after": active_slots(GPU_LIMIT),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128], help="sources per run")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--seconds-per-call", type=float, default=0.5)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--source-size", type=int, default=128, help="px of the sample sources")
    args = ap.parse_args()

    from prefect.testing.utilities import prefect_test_harness

    from aescot.ingest import ingest
    from aescot.samples import write_sample_sources
    from aescot.store import DatasetStore

    cores = os.cpu_count() or 1
    tmp = Path(tempfile.mkdtemp(prefix="aescot-bench-cluster-"))
    print(
        f"latency backend {args.seconds_per_call} s per source call, batch {args.batch_size} sources "
        f"({args.seconds_per_call * args.batch_size:.1f} s device time per batch), {cores} CPU cores"
    )
    header = (
        f"{'sources':>7s} {'workers':>7s} {'flow s':>7s} {'gen s':>6s} {'sleep-bound s':>13s} "
        f"{'CPU s':>6s} {'CPU-bound s':>11s} {'cands':>6s} {'dup':>4s} {'gen/skip':>8s} {'slots held':>10s}"
    )
    summary = []
    with prefect_test_harness(server_startup_timeout=180):
        for n in args.sizes:
            manifest = write_sample_sources(tmp / f"src-{n}", n=n, size=args.source_size)
            results = []
            for workers in (1, args.workers):
                root = tmp / f"ds-{n}-{workers}"
                ingest(DatasetStore(root), [str(manifest)])  # not timed: the same in both runs
                r = one_run(root, workers, args)
                r.update(candidate_checks(root, n))
                batches = -(-n // args.batch_size)
                r["sleep_bound_s"] = -(-batches // workers) * args.batch_size * args.seconds_per_call
                results.append(r)
            print(header)
            for r in results:
                print(
                    f"{n:7d} {r['workers']:7d} {r['flow_s']:7.1f} {r['generate_s']:6.1f} "
                    f"{r['sleep_bound_s']:13.1f} {r['cpu_s']:6.1f} {r['cpu_s'] / cores:11.1f} "
                    f"{r['rows']:6d} {r['duplicate_source_slots'] + r['duplicate_ids']:4d} "
                    f"{r['generated']:>4d}/{r['skipped']:<3d} {r['gpu_slots_held_after']:10d}"
                )
            one, many = results
            ok = all(
                r["sources_with_4"] == n
                and r["sources_missing"] == 0
                and r["duplicate_ids"] == r["duplicate_source_slots"] == 0
                and r["generated"] == n
                and r["skipped"] == 0
                and r["tasks"] == -(-n // args.batch_size)
                and r["gpu_slots_held_after"] == 0
                for r in results
            )
            flow_x, gen_x = one["flow_s"] / many["flow_s"], one["generate_s"] / many["generate_s"]
            summary.append((n, flow_x, gen_x, ok))
            print(
                f"  {n} sources: speed-up {args.workers} workers vs 1: flow {flow_x:.2f}x, generation span "
                f"{gen_x:.2f}x (goal >= 3.5x); cluster start {one['cluster_start_s']:.1f} s / "
                f"{many['cluster_start_s']:.1f} s (not timed); checks "
                + ("passed" if ok else "FAILED")
                + f" (each source 4 candidates, 0 duplicate (source, slot), generated once, "
                f"{-(-n // args.batch_size)} generate task runs, 0 slots held)"
            )
    for n, flow_x, gen_x, ok in summary:
        print(
            f"SUMMARY {n} sources: flow {flow_x:.2f}x, generation {gen_x:.2f}x, checks {'ok' if ok else 'FAILED'}"
        )


if __name__ == "__main__":
    main()
