"""The ``build-screening-set`` flow as a project grows to 100k sources (issue 14): cost per 1k new sources.

    nice -n 10 .venv/bin/python bench/scale_flow.py [--root PATH] [--first 1000] [--step 5000]
        [--max-sources 100000] [--batch-size 250] [--size 64]

Grows one store the way a real project grows: a first run of ``--first`` new sources, then hourly-style
runs that each bring the store to the next multiple of ``--step`` (1k, 5k, 10k, ... 100k with the
defaults: every run after the first brings 5k new sources, the second 4k). Each run is the real flow
function ``build_screening_set`` in a fresh child process (as a worker runs one), with
``sources=[<this run's manifest>]``, ``generator=synthetic`` (``--size`` px product shots from
:mod:`aescot.samples`, each on its own seeded shade so none is a near-duplicate of another),
``batch_size=--batch-size``, ``labelstudio=True`` against the dataset's embedded Label Studio (SQLite,
started by this bench with ``aescot.labelstudio.server`` exactly as ``aescot labelstudio start`` does,
data in ``<root>/.labelstudio``, kept running across runs as a project's is), ``teacher=off`` and
export on (the flow's export task skips while nothing is labelled, as here: no annotations exist).

Prefect: the bench starts one ``prefect server start`` on loopback (``PREFECT_HOME`` =
``<root>-prefect``, outside the root) and every child talks to it through ``PREFECT_API_URL``, as a
worker does; the Prefect database grows with the runs as a deployment's does.

Per run, from Prefect's own records of that flow run: each task's Running time (``total_run_time``)
summed per task name (``ingest``, ``generate`` over all its batches, ``push``, ``collect``,
``export``), the generation span (first generate start to last generate end), the flow run's start to
end, and ``other`` = flow minus its tasks (the store health check, the backlog query, the summary
artifact, Prefect's own calls). Plus the child's wall time (interpreter start to exit), its peak RSS
(``VmHWM``), the Label Studio and Prefect servers' RSS, and files under the root (``os.walk``; also
under ``tables/`` and ``.labelstudio/``). Each run's row is printed when it finishes and appended to
``<root>/scale_flow.csv`` (so a partial run is usable); ``--root`` on an existing root continues from
its size. At the end: seconds per 1k new sources per stage at the first run, at 10k and at the largest
size reached, with the ratio largest/first (goal: every stage within 1.3x).

The first run's per-1k figures carry a run's fixed costs (process start, flow start, the health check)
over 1k sources, later runs over 5k: ``other`` and the child's wall per 1k fall with run size for that
reason alone, the per-stage task times much less so.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
_LS_BIN = REPO / ".venv-labelstudio" / "bin" / "label-studio"
if _LS_BIN.exists():
    os.environ.setdefault("AESCOT_LABEL_STUDIO_BIN", str(_LS_BIN))

GOAL = 1.3
CSV_NAME = "scale_flow.csv"
TASKS = ("ingest", "generate", "push", "collect", "export")
STAGES = (*TASKS, "generate_span", "other", "flow", "child")
CPU_STAGES = (*TASKS, "other", "flow")
FIELDS = [
    "run",
    "finished_utc",
    "sources_before",
    "sources_after",
    "new_sources",
    "candidates",
    "items",
    "rejected",
    "pushed",
    "generate_tasks",
    *(f"{s}_s" for s in STAGES),
    *(f"{s}_s_per_1k" for s in STAGES),
    *(f"{s}_cpu_s_per_1k" for s in CPU_STAGES),
    "child_cpu_s",
    "labelstudio_cpu_s",
    "prefect_cpu_s",
    "cpu_s_per_1k",
    "peak_rss_mb",
    *(f"{s}_rss_mb" for s in TASKS),
    "labelstudio_rss_mb",
    "prefect_rss_mb",
    "files_root",
    "files_tables",
    "files_labelstudio",
]


def _status_mb(field: str, pid: str = "self") -> float:
    """``VmHWM`` (peak) or ``VmRSS`` (now) of a process, MB. Not ``ru_maxrss``: after fork + exec it still
    holds the parent's RSS at the fork."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _tree(pid: int, what: str) -> float:
    """RSS (MB) or user + system CPU seconds of a process and its live descendants (the Label Studio and
    Prefect servers run workers)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return float("nan")
    total = 0.0
    for p in procs:
        try:
            total += p.memory_info().rss / 2**20 if what == "rss" else sum(p.cpu_times()[:2])
        except psutil.Error:
            pass
    return total


# --- the child: one flow run, as a worker runs it -------------------------------------------------------


class CpuClock:
    """This process's CPU seconds (every thread), sampled every ``every_s`` with the wall clock, so the
    CPU a task used can be read off between its recorded start and end (the flow's tasks run one at a
    time here, gpu_slots=1; Prefect's own threads are in it too)."""

    def __init__(self, every_s: float = 0.1):
        import threading

        self.samples: list[tuple[float, float]] = []
        self.rss: list[float] = []  # VmRSS (MB) at each sample: the peak of a task is read off the same way
        self._stop = threading.Event()
        self._every = every_s
        self._sample()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        u = resource.getrusage(resource.RUSAGE_SELF)
        self.samples.append((time.time(), u.ru_utime + u.ru_stime))
        self.rss.append(_status_mb("VmRSS"))

    def peak_rss(self, start: float, end: float) -> float:
        """The largest sampled RSS (MB) from ``start`` to ``end`` (and the samples either side)."""
        import bisect

        i = max(bisect.bisect_left(self.samples, (start, -1.0)) - 1, 0)
        j = bisect.bisect_right(self.samples, (end, float("inf"))) + 1
        return max(self.rss[i:j], default=float("nan"))

    def _loop(self) -> None:
        while not self._stop.wait(self._every):
            self._sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def at(self, t: float) -> float:
        """CPU seconds at wall time ``t``, interpolated between the samples around it."""
        import bisect

        i = bisect.bisect_left(self.samples, (t, -1.0))
        if i <= 0:
            return self.samples[0][1]
        if i >= len(self.samples):
            return self.samples[-1][1]
        (t0, c0), (t1, c1) = self.samples[i - 1], self.samples[i]
        return c0 + (c1 - c0) * (t - t0) / (t1 - t0) if t1 > t0 else c1


def child(root: str, manifest: str, batch_size: int) -> dict:
    t_start = float(os.environ["SCALE_FLOW_T0"])  # the parent's clock at spawn: includes imports
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from aescot.store import DatasetStore
    from flows.build_screening_set import build_screening_set

    clock = CpuClock()
    state = build_screening_set(
        root=root,
        sources=[manifest],
        generator="synthetic",
        batch_size=batch_size,
        labelstudio=True,
        teacher="off",
        return_state=True,
    )
    clock.stop()
    peak = _status_mb("VmHWM")
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    if not state.is_completed():
        raise SystemExit(f"flow run ended {state.name}: {state.message}")
    result = state.result()
    flow_run_id = state.state_details.flow_run_id
    runs = []
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)
        while True:  # the API pages task runs (200 by default)
            page = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                offset=len(runs),
                limit=200,
            )
            runs += page
            if len(page) < 200:
                break
    secs = {name: 0.0 for name in TASKS}
    cpu = {name: 0.0 for name in TASKS}
    rss = {name: 0.0 for name in TASKS}
    gen_start = gen_end = None
    n_gen = 0
    for r in runs:
        name = r.name.rsplit("-", 1)[0]
        if name not in secs:
            continue
        secs[name] += r.total_run_time.total_seconds()
        if r.start_time and r.end_time:
            cpu[name] += clock.at(r.end_time.timestamp()) - clock.at(r.start_time.timestamp())
            rss[name] = max(rss[name], clock.peak_rss(r.start_time.timestamp(), r.end_time.timestamp()))
        if name == "generate":
            n_gen += 1
            gen_start = min(gen_start or r.start_time, r.start_time)
            gen_end = max(gen_end or r.end_time, r.end_time)
    secs["generate_span"] = (gen_end - gen_start).total_seconds() if n_gen else 0.0
    secs["flow"] = (flow_run.end_time - flow_run.start_time).total_seconds()
    secs["other"] = secs["flow"] - sum(secs[t] for t in TASKS)
    cpu["flow"] = clock.at(flow_run.end_time.timestamp()) - clock.at(flow_run.start_time.timestamp())
    cpu["other"] = cpu["flow"] - sum(cpu[t] for t in TASKS)
    rss["flow_start"] = clock.peak_rss(flow_run.start_time.timestamp(), flow_run.start_time.timestamp())
    store = DatasetStore(root)
    gen = result["generate"] if isinstance(result["generate"], dict) else {}
    ingest = result.get("ingest") or {}
    push = result["push"] if isinstance(result["push"], dict) else {}
    return {
        "secs": secs,
        "cpu": cpu,
        "rss": rss,
        "child_s_before_exit": time.time() - t_start,
        "peak_rss_mb": peak,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "sources_after": store.count("sources"),
        "candidates": store.count("candidates"),
        "items": store.count("items"),
        "rejected": ingest.get("rejected", 0) + gen.get("rejected", 0),
        "pushed": push.get("pushed", 0),
        "generate_tasks": n_gen,
    }


# --- the parent: servers, sources, runs, rows --------------------------------------------------------------


def start_prefect(home: Path) -> tuple[subprocess.Popen, str]:
    """``prefect server start`` on loopback with ``home`` as ``PREFECT_HOME``; its API URL once healthy."""
    from flows.prefect_api import PrefectUnavailable, start_prefect_server

    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_UI_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    try:
        return start_prefect_server(env, home / "server.log", timeout_s=300)
    except PrefectUnavailable as exc:
        raise SystemExit(str(exc)) from None


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def count_files(path: Path) -> int:
    return sum(len(names) for _, _, names in os.walk(path))


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as fh:
        return [
            {k: (v if k == "finished_utc" or v in ("", None) else float(v)) for k, v in r.items()}
            for r in csv.DictReader(fh)
        ]


def append_row(path: Path, row: dict) -> None:
    new = not path.exists()
    fields = FIELDS
    if not new:  # a root started by an earlier version of this bench keeps its columns
        with path.open(newline="") as fh:
            fields = next(csv.reader(fh))
    with path.open("a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow(row)
        fh.flush()
        os.fsync(fh.fileno())


def one_run(root: Path, incoming: Path, run_no: int, have: int, n: int, args, env: dict) -> dict:
    from store_scale import write_sources  # the same distinct-shot sources as bench/store_scale.py

    folder = incoming / f"run-{run_no:03d}"
    shutil.rmtree(folder, ignore_errors=True)
    manifest = write_sources(folder, n, args.size, seed=1_000 * run_no)
    t0 = time.time()
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(root), str(manifest), str(args.batch_size)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        env={**env, "SCALE_FLOW_T0": repr(t0)},
    )
    child_s = time.time() - t0
    if out.returncode != 0:
        raise SystemExit(
            f"run {run_no} failed (rc {out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
        )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    shutil.rmtree(folder)  # the store holds its own copies now
    secs = {**got["secs"], "child": child_s}
    per_1k = 1000 / n
    row = {
        "run": run_no,
        "finished_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "sources_before": have,
        "new_sources": n,
        **{
            k: got[k]
            for k in ("sources_after", "candidates", "items", "rejected", "pushed", "generate_tasks")
        },
        **{f"{s}_s": round(secs[s], 3) for s in STAGES},
        **{f"{s}_s_per_1k": round(secs[s] * per_1k, 3) for s in STAGES},
        **{f"{s}_cpu_s_per_1k": round(got["cpu"][s] * per_1k, 3) for s in CPU_STAGES},
        "peak_rss_mb": round(got["peak_rss_mb"], 1),
        **{f"{s}_rss_mb": round(got["rss"][s], 1) for s in TASKS},
        "child_cpu_s": round(got["cpu_s"], 2),
        "files_root": count_files(root),
        "files_tables": count_files(root / "tables"),
        "files_labelstudio": count_files(root / ".labelstudio"),
    }
    return row


def print_row(row: dict) -> None:
    print(
        f"run {int(row['run'])}: {int(row['sources_after']):,} sources (+{int(row['new_sources']):,}), "
        f"{int(row['candidates']):,} candidates, {int(row['pushed']):,} pushed; s/1k: "
        + " ".join(f"{s} {row[f'{s}_s_per_1k']:.2f}" for s in STAGES)
        + "; CPU s/1k: "
        + " ".join(f"{s} {row[f'{s}_cpu_s_per_1k']:.2f}" for s in CPU_STAGES)
        + f", all {row['cpu_s_per_1k']:.2f} (child {row['child_cpu_s']:.0f} s, LS {row['labelstudio_cpu_s']:.0f} s, "
        f"Prefect {row['prefect_cpu_s']:.0f} s); peak RSS {row['peak_rss_mb']:.0f} MB, LS {row['labelstudio_rss_mb']:.0f} MB, "
        f"Prefect {row['prefect_rss_mb']:.0f} MB; files {int(row['files_root']):,} "
        f"(tables {int(row['files_tables']):,}, .labelstudio {int(row['files_labelstudio']):,})",
        flush=True,
    )


def print_table(rows: list[dict], args) -> None:
    if not rows:
        return
    first, last = rows[0], rows[-1]
    picks = [first]
    mid = [r for r in rows if int(r["sources_after"]) == 10 * int(first["sources_after"])]
    if mid and mid[0] is not last and mid[0] is not first:
        picks.append(mid[0])
    if last is not first:
        picks.append(last)
    label = {
        "ingest": "ingest",
        "generate": "generate (sum over batches)",
        "generate_span": "generate (wall span)",
        "push": "push",
        "collect": "collect",
        "export": "export",
        "other": "flow, outside tasks",
        "flow": "flow (Prefect start to end)",
        "child": "child process wall",
    }
    order = ("ingest", "generate", "generate_span", "push", "collect", "export", "other", "flow", "child")
    sizes = [f"{int(r['sources_after']):,}" for r in picks]
    print(
        f"\n`build-screening-set`, one fresh process per run, synthetic {args.size} px sources, batch_size "
        f"{args.batch_size}, Label Studio (SQLite) on, teacher off; seconds per 1k new sources of the run "
        f"that ended at each store size ({len(rows)} runs, {int(last['candidates']):,} candidates):\n"
    )
    ratio_head = f"{sizes[-1]} / {sizes[0]}" if len(picks) > 1 else "ratio"
    # the first run is 1k new sources and Label Studio's first pull (nothing to list yet): its per-1k
    # costs are not those of a 5k run; the run that reached 10k is, so its ratio is printed beside
    same = len(picks) > 2
    tail = f" | {sizes[-1]} / {sizes[1]} |" if same else " |"
    print("| stage | " + " | ".join(f"at {s}" for s in sizes) + f" | {ratio_head}{tail}")
    print("|---|" + "---:|" * (len(picks) + 1 + same))

    def ratio_text(a: float, b: float, goal: bool) -> str:
        if not a > 0:
            return "n/a"  # nothing at the baseline size (a stage that had no work then)
        ratio = b / a
        return f"{ratio:.2f}x" + (" **over 1.3x**" if goal and ratio > GOAL else "")

    def line(name: str, values: list[float], fmt: str, goal: bool) -> None:
        if len(values) == 1:
            print(f"| {name} | {format(values[0], fmt)} | |")
            return
        ratios = ratio_text(values[0], values[-1], goal) + (
            f" | {ratio_text(values[1], values[-1], goal)}" if same else ""
        )
        print(f"| {name} | " + " | ".join(format(v, fmt) for v in values) + f" | {ratios} |")

    for s in order:
        line(label[s], [r[f"{s}_s_per_1k"] for r in picks], ".2f", s in TASKS or s == "generate_span")
    for s in CPU_STAGES:
        line(f"{label[s]}, CPU s", [r[f"{s}_cpu_s_per_1k"] for r in picks], ".2f", s in TASKS)
    line("CPU s (run + both servers)", [r["cpu_s_per_1k"] for r in picks], ".2f", False)
    line("peak RSS of the run, MB", [r["peak_rss_mb"] for r in picks], ".0f", True)
    for s in TASKS:
        if all(r.get(f"{s}_rss_mb") not in (None, "") for r in picks):
            line(f"  peak RSS during {s}, MB", [r[f"{s}_rss_mb"] for r in picks], ".0f", False)
    line("Label Studio server RSS, MB", [r["labelstudio_rss_mb"] for r in picks], ".0f", False)
    line("Prefect server RSS, MB", [r["prefect_rss_mb"] for r in picks], ".0f", False)
    line("files under the root", [r["files_root"] for r in picks], ",.0f", False)
    line("  of which tables/", [r["files_tables"] for r in picks], ",.0f", False)
    over = [
        label[s]
        for s in (*TASKS, "generate_span")
        if len(picks) > 1
        and picks[0][f"{s}_s_per_1k"] > 0
        and picks[-1][f"{s}_s_per_1k"] / picks[0][f"{s}_s_per_1k"] > GOAL
    ]
    if len(picks) > 1:
        print(f"\nstages over {GOAL}x: " + (", ".join(over) if over else "none"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=None, help="dataset root; an existing one is continued")
    ap.add_argument("--first", type=int, default=1000, help="new sources in the first run")
    ap.add_argument(
        "--step", type=int, default=5000, help="each later run brings the store to the next multiple"
    )
    ap.add_argument("--max-sources", type=int, default=100_000)
    ap.add_argument("--batch-size", type=int, default=250, help="sources per generate task")
    ap.add_argument("--size", type=int, default=64, help="source image side, px")
    ap.add_argument("--keep", action="store_true", help="keep a root the bench created (default: removed)")
    ap.add_argument("--child", nargs=3, metavar=("ROOT", "MANIFEST", "BATCH"), help=argparse.SUPPRESS)
    ap.add_argument("--table", action="store_true", help="print the table of --root's runs; run nothing")
    args = ap.parse_args()
    if args.table:
        if args.root is None:
            ap.error("--table needs --root")
        print_table(read_rows(args.root / CSV_NAME), args)
        return
    if args.child:
        root, manifest, batch = args.child
        got = child(root, manifest, int(batch))
        with open(
            Path(root) / "scale_flow_runs.jsonl", "a"
        ) as fh:  # the raw record, whatever the parent keeps
            fh.write(json.dumps({"manifest": manifest, **got}) + "\n")
        print(json.dumps(got))
        return

    from aescot.labelstudio.server import local_server_config, start_server, stop_server
    from aescot.store import DatasetStore

    created = args.root is None
    if created:
        import tempfile

        args.root = Path(tempfile.mkdtemp(prefix="aescot-bench-scale-flow-")) / "ds"
    root = args.root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    incoming = Path(f"{root}-incoming")
    csv_path = root / CSV_NAME
    rows = read_rows(csv_path)
    for r in rows:
        print_row(r)
    print(f"root {root}; rows in {csv_path}", flush=True)

    t = time.perf_counter()
    prefect_proc, api = start_prefect(Path(f"{root}-prefect"))
    print(f"prefect server {api} healthy in {time.perf_counter() - t:.0f} s", flush=True)
    env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_HOME": f"{root}-prefect"}
    try:
        t = time.perf_counter()
        ls = start_server(local_server_config(root, port=0))
        print(f"label studio {ls.url} (pid {ls.pid}) healthy in {time.perf_counter() - t:.0f} s", flush=True)
        try:
            store = DatasetStore(root)
            # the schedule follows the shots brought (not the sources kept: ingest may reject one)
            while (brought := int(sum(r["new_sources"] for r in rows))) < args.max_sources:
                have = store.count("sources")
                target = args.first if brought < args.first else (brought // args.step + 1) * args.step
                n = min(target, args.max_sources) - brought
                run_no = len(rows) + 1
                ls_cpu, prefect_cpu = _tree(ls.pid, "cpu"), _tree(prefect_proc.pid, "cpu")
                row = one_run(root, incoming, run_no, have, n, args, env)
                row["labelstudio_cpu_s"] = round(_tree(ls.pid, "cpu") - ls_cpu, 2)
                row["prefect_cpu_s"] = round(_tree(prefect_proc.pid, "cpu") - prefect_cpu, 2)
                row["cpu_s_per_1k"] = round(
                    (row["child_cpu_s"] + row["labelstudio_cpu_s"] + row["prefect_cpu_s"]) * 1000 / n, 2
                )
                row["labelstudio_rss_mb"] = round(_tree(ls.pid, "rss"), 1)
                row["prefect_rss_mb"] = round(_tree(prefect_proc.pid, "rss"), 1)
                append_row(csv_path, row)
                rows.append(row)
                print_row(row)
                if int(row["sources_after"]) <= have:
                    raise SystemExit(f"run {run_no} added no sources; stopping")
        finally:
            stop_server(root / ".labelstudio")
    finally:
        stop(prefect_proc)
    print_table(rows, args)
    if created and not args.keep:
        shutil.rmtree(root.parent, ignore_errors=True)
        shutil.rmtree(incoming, ignore_errors=True)
        shutil.rmtree(f"{root}-prefect", ignore_errors=True)


if __name__ == "__main__":
    main()
