"""Generation on a Prefect process work pool: the `local` deployment on 1 pool worker vs 2.

    python bench/generate_pool.py [--sizes 32 64] [--runs 2] [--batch-size 4] [--seconds-per-call 0.5]

A pool worker runs whole flow runs (each in its own process, its tasks on that worker's host), so a
pool scales by running several flow runs at once: N workers need N runs at once (4 pool workers, 4
runs; this bench uses --runs 2). Each worker stands for one GPU host: with W workers the global
limit `aescot-gpu` has W slots (gpu_slots=W) and each worker takes one run at a time (--limit 1).

It starts `prefect server start` on loopback, creates the process pool `aescot-process`, deploys
`local` from prefect.yaml (`prefect --no-prompt deploy`), then for each size, for W in (1, 2):
writes and ingests --runs fresh dataset roots of `size` sources each (not timed), starts W
`prefect worker start --pool aescot-process --limit 1` processes, creates the --runs flow runs at
once (generator=latency, labelstudio=false, teacher=off) and times until every run is final.

Printed per configuration: wall seconds from creating the runs to the last run's end; the runs' span
and the generation span (first generate task start to last end) from Prefect's records; the sleep
bound (batches / slots x the batch's device time); CPU seconds of the server, the workers and their
flow-run processes; and the checks: every run completed, each root has 4 candidates per source and
no (source, slot) twice, every source generated once (from the generate tasks' slot log lines), and
no GPU slot left held. The speed-up is the 1-worker time over the 2-worker time, measured in the same
run. With C CPU seconds on K cores a configuration cannot take less than C / K seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PREFECT = str(Path(sys.executable).with_name("prefect"))
POOL = "aescot-process"
RELEASING = re.compile(r"gpu slot releasing: batch (\w+) \(generated (\d+), skipped (\d+) of (\d+)\)")


def children_cpu() -> float:
    """CPU seconds of waited-for children (the workers) and theirs (their flow-run processes)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def start_server(env: dict, home: Path) -> tuple[subprocess.Popen, str]:
    from flows.prefect_api import PrefectUnavailable, start_prefect_server

    try:
        return start_prefect_server(env, home / "server.log", timeout_s=300, new_session=True)
    except PrefectUnavailable as exc:
        raise SystemExit(f"{exc}: {(home / 'server.log').read_text()[-2000:]}") from None


def cli(env: dict, *args: str) -> None:
    done = subprocess.run([PREFECT, *args], env=env, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"prefect {' '.join(args)} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")


def root_checks(root: Path, n: int) -> bool:
    from aescot.generate.groups import GROUPS
    from aescot.store import DatasetStore

    store = DatasetStore(root)
    tab = store.read_arrow("candidates", ["candidate_id", "source_id", "params"])
    pairs = Counter(
        (s, json.loads(p)["slot"])
        for s, p in zip(tab.column("source_id").to_pylist(), tab.column("params").to_pylist())
    )
    per_source = Counter(s for s, _ in pairs)
    groups = store.read_arrow(GROUPS.name, ["source_id"]).column("source_id").to_pylist()
    return (
        tab.num_rows == len(set(tab.column("candidate_id").to_pylist())) == len(pairs) == 4 * n
        and set(per_source.values()) == {4}
        and len(per_source) == n
        and len(groups) == len(set(groups)) == n
    )


def one_config(
    env: dict, api: str, server_pid: int, roots: list[Path], workers: int, args, logs: Path
) -> dict:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterTaskRunId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.limits import GPU_LIMIT, active_slots

    procs = []
    for i in range(workers):
        log = open(logs / f"worker-{roots[0].name}-{i}.log", "wb")  # noqa: SIM115
        procs.append(
            subprocess.Popen(
                [PREFECT, "worker", "start", "--pool", POOL, "--name", f"bench-w{i}", "--limit", "1"],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    time.sleep(3)  # the workers have registered and poll: their start-up is not timed
    import psutil

    server = psutil.Process(server_pid)
    srv0 = sum(server.cpu_times()[:2])
    kids0 = children_cpu()
    try:
        with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
            dep = client.read_deployment_by_name("build-screening-set/local")
            t = time.time()
            ids = []
            for root in roots:
                params = {
                    "root": str(root),
                    "generator": "latency",
                    "seconds_per_call": args.seconds_per_call,
                    "batch_size": args.batch_size,
                    "gpu_slots": workers,
                    "labelstudio": False,
                    "teacher": "off",
                }
                ids.append(client.create_flow_run_from_deployment(dep.id, parameters=params).id)
            while True:
                runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
                if len(runs) == len(ids) and all(r.state and r.state.is_final() and r.end_time for r in runs):
                    break
                time.sleep(0.5)
            wall = max(r.end_time.timestamp() for r in runs) - t  # creating the runs -> the last one's end
            gen = [
                r
                for r in client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
                if r.name.startswith("generate")
            ]
            ran = [tr for tr in gen if tr.state.name != "Cached"]
            deadline = time.monotonic() + 60  # a run's last log lines arrive as its process exits
            while True:
                found = [
                    [
                        m
                        for log in client.read_logs(
                            log_filter=LogFilter(task_run_id=LogFilterTaskRunId(any_=[tr.id]))
                        )
                        if (m := RELEASING.search(log.message))
                    ]
                    for tr in ran
                ]
                if all(found) or time.monotonic() > deadline:
                    break
                time.sleep(1)
            generated = sum(int(m.group(2)) for ms in found for m in ms)
            held = active_slots(GPU_LIMIT)
    finally:
        for proc in procs:  # an idle Prefect 3.8.8 worker ignores SIGTERM: kill its group
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(30)
    cpu = (children_cpu() - kids0) + (sum(server.cpu_times()[:2]) - srv0)
    starts = [r.start_time for r in runs if r.start_time]
    ends = [r.end_time for r in runs if r.end_time]
    return {
        "workers": workers,
        "wall_s": wall,
        "runs_s": (max(ends) - min(starts)).total_seconds(),
        "gen_s": (max(r.end_time for r in gen) - min(r.start_time for r in gen)).total_seconds(),
        "cpu_s": cpu,
        "completed": all(r.state.is_completed() for r in runs),
        "generated": generated,
        "slots_held": held,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64], help="sources per run (per root)")
    ap.add_argument("--runs", type=int, default=2, help="flow runs at once, each on its own root")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--seconds-per-call", type=float, default=0.5)
    ap.add_argument("--source-size", type=int, default=96, help="px of the sample sources")
    ap.add_argument(
        "--slot-wait",
        type=float,
        default=None,
        help="the server's PREFECT_SERVER_CONCURRENCY_MAXIMUM_CONCURRENCY_SLOT_WAIT_SECONDS (Prefect: 30): "
        "the longest a denied slot request is told to wait before it asks again",
    )
    args = ap.parse_args()

    from aescot.ingest import ingest
    from aescot.samples import write_sample_sources
    from aescot.store import DatasetStore

    tmp = Path(tempfile.mkdtemp(prefix="aescot-bench-pool-"))
    home = tmp / "prefect-home"
    home.mkdir()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "HF_HUB_OFFLINE": "1",
    }
    env.pop("PREFECT_API_URL", None)
    if args.slot_wait is not None:
        env["PREFECT_SERVER_CONCURRENCY_MAXIMUM_CONCURRENCY_SLOT_WAIT_SECONDS"] = str(args.slot_wait)
    server, api = start_server(env, home)
    env["PREFECT_API_URL"] = api
    cores = os.cpu_count() or 1
    print(
        f"latency backend {args.seconds_per_call} s per source call, batch {args.batch_size} sources, "
        f"{args.runs} flow runs at once, each on its own root; {cores} CPU cores; longest slot retry wait "
        f"{args.slot_wait if args.slot_wait is not None else 'Prefect default (30)'} s"
    )
    summary = []
    try:
        cli(env, "work-pool", "create", POOL, "--type", "process", "--overwrite")
        cli(env, "--no-prompt", "deploy", "--name", "local")
        for n in args.sizes:
            manifest = write_sample_sources(tmp / f"src-{n}", n=n, size=args.source_size)
            results = []
            for workers in (1, 2):
                roots = [tmp / f"ds-{n}-{workers}-{i}" for i in range(args.runs)]
                for root in roots:
                    ingest(DatasetStore(root), [str(manifest)])  # not timed: the same in both
                r = one_config(env, api, server.pid, roots, workers, args, tmp)
                batches = args.runs * -(-n // args.batch_size)
                r["sleep_bound_s"] = -(-batches // workers) * args.batch_size * args.seconds_per_call
                r["failed"] = [
                    name
                    for name, good in (
                        ("a run did not complete", r["completed"]),
                        (f"generated {r['generated']} of {args.runs * n}", r["generated"] == args.runs * n),
                        (f"{r['slots_held']} GPU slots left held", r["slots_held"] == 0),
                        ("candidates or ledger", all(root_checks(root, n) for root in roots)),
                    )
                    if not good
                ]
                r["ok"] = not r["failed"]
                results.append(r)
            print(
                f"{'sources/run':>11s} {'workers':>7s} {'wall s':>7s} {'runs s':>7s} {'gen s':>6s} "
                f"{'sleep-bound s':>13s} {'CPU s':>6s} {'CPU-bound s':>11s} {'checks':>6s}"
            )
            for r in results:
                print(
                    f"{n:11d} {r['workers']:7d} {r['wall_s']:7.1f} {r['runs_s']:7.1f} {r['gen_s']:6.1f} "
                    f"{r['sleep_bound_s']:13.1f} {r['cpu_s']:6.1f} {r['cpu_s'] / cores:11.1f} "
                    f"{'ok' if r['ok'] else 'FAILED':>6s} {'; '.join(r['failed'])}"
                )
            one, two = results
            summary.append(
                (n, one["wall_s"] / two["wall_s"], one["gen_s"] / two["gen_s"], one["ok"] and two["ok"])
            )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
    for n, wall_x, gen_x, ok in summary:
        print(
            f"SUMMARY {n} sources x {args.runs} runs: 2 pool workers vs 1: wall {wall_x:.2f}x, "
            f"generation span {gen_x:.2f}x, checks {'ok' if ok else 'FAILED'}"
        )
    print(f"(4 pool workers would need 4 flow runs at once: --runs 4; not run here) logs in {tmp}")


if __name__ == "__main__":
    main()
