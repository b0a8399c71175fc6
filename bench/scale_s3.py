"""Object storage at scale: the ``build-screening-set`` flow with its root on an S3-compatible server
(moto's server mode, a ``moto_server`` process on loopback) vs on local disk, at two sizes.

    nice -n 10 python bench/scale_s3.py [--sizes 1000 10000] [--batch-size 128]

For each size the same synthetic sources (64 px product shots and masks, written once to local disk)
are ingested by the flow into a fresh root, first ``<tmp>/ds-N`` on local disk, then
``s3://aescot/ds-N`` on the S3 server (endpoint from ``AWS_ENDPOINT_URL``, as a user sets it), with
the synthetic generator, Label Studio off (``labelstudio=False``: push and collect are not part of
the storage comparison; they talk to Label Studio, not to the store) and no teacher. Export is
skipped by the flow when nothing is labelled, so it is not measured either.

Per stage, seconds per 1k sources:

* ``ingest``: the flow's ingest task run (Prefect's record: start to end);
* ``generate``: time inside ``generate_candidates`` over all generate task runs (4 candidates per
  source, dedupe), and ``items``: time inside ``build_items`` (both run inside the flow's generate
  task; the bench wraps the real functions with a timer to split the task's time between them);
* ``flow``: the whole run, Prefect's start to end.

Then the S3/local ratio per stage and size, and the checks: every source has exactly 4 candidates
and one item, 0 duplicated candidate ids. The S3 server is a Python process on the same 2 cores, so
its own CPU is part of the S3 figures (a real object store runs elsewhere).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="aescot-bench-prefect-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

STAGES = ("ingest", "generate", "items", "flow")


def start_moto(log: Path) -> tuple[subprocess.Popen, str]:
    """A ``moto_server`` process on loopback with the bucket ``aescot``; its endpoint URL."""
    import boto3

    from aescot.labelstudio.server import free_port

    port = free_port()
    exe = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            boto3.client("s3", endpoint_url=url).create_bucket(Bucket="aescot")
            return proc, url
        except Exception:  # noqa: BLE001 - not up yet
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise SystemExit(f"moto_server did not start; log: {log}") from None
            time.sleep(0.3)


class StageTimers:
    """Seconds spent inside the real ``generate_candidates`` and ``build_items`` the flow's tasks call."""

    def __init__(self):
        from flows import tasks

        self.tasks = tasks
        self.seconds = Counter()
        self.orig = {name: getattr(tasks, name) for name in ("generate_candidates", "build_items")}
        for name, fn in self.orig.items():
            setattr(tasks, name, self._timed(name, fn))

    def _timed(self, name, fn):
        stage = {"generate_candidates": "generate", "build_items": "items"}[name]

        def timed(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.seconds[stage] += time.perf_counter() - t

        return timed

    def take(self) -> dict[str, float]:
        out = dict(self.seconds)
        self.seconds.clear()
        return out


def task_seconds(flow_run_id) -> dict[str, float]:
    """Seconds per task name (summed over its runs) and the flow run's own, from the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        flow_run = client.read_flow_run(flow_run_id)
    out: Counter = Counter()
    for r in runs:
        if r.start_time and r.end_time:
            out[r.name.split("-")[0]] += (r.end_time - r.start_time).total_seconds()
    out["flow"] = (flow_run.end_time - flow_run.start_time).total_seconds()
    return dict(out)


def checks(root: str) -> dict:
    from aescot.store import DatasetStore

    store = DatasetStore(root)
    sources = store.read_arrow("sources", ["source_id"]).column("source_id").to_pylist()
    cand = store.read_arrow("candidates", ["candidate_id", "source_id"])
    ids = cand.column("candidate_id").to_pylist()
    per_source = Counter(cand.column("source_id").to_pylist())
    items = Counter(store.read_arrow("items", ["source_id"]).column("source_id").to_pylist())
    return {
        "sources": len(sources),
        "candidates": len(ids),
        "duplicate_candidates": len(ids) - len(set(ids)),
        "sources_with_4": sum(1 for s in sources if per_source.get(s) == 4),
        "sources_with_1_item": sum(1 for s in sources if items.get(s) == 1),
    }


def one_run(root: str, manifest: Path, timers: StageTimers, batch_size: int) -> dict:
    from flows.build_screening_set import build_screening_set

    state = build_screening_set(
        root=root,
        sources=[str(manifest)],
        generator="synthetic",
        batch_size=batch_size,
        labelstudio=False,
        teacher="off",
        return_state=True,
    )
    assert state.is_completed(), state.message
    inner = timers.take()
    recorded = task_seconds(state.state_details.flow_run_id)
    out = {
        "ingest": recorded["ingest"],
        "generate": inner.get("generate", 0.0),
        "items": inner.get("items", 0.0),
        "generate_task": recorded.get("generate", 0.0),
        "flow": recorded["flow"],
    }
    out.update(checks(root))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000], help="sources per run")
    ap.add_argument("--batch-size", type=int, default=128, help="sources per generate task")
    ap.add_argument("--source-size", type=int, default=64, help="px of the synthetic sources")
    args = ap.parse_args()

    from prefect.testing.utilities import prefect_test_harness

    from aescot.samples import write_sample_sources

    tmp = Path(tempfile.mkdtemp(prefix="aescot-bench-s3-"))
    for k, v in (
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        os.environ.setdefault(k, v)
    proc, endpoint = start_moto(tmp / "moto.log")
    os.environ["AWS_ENDPOINT_URL"] = endpoint  # how the store (s3fs and Lance) finds the server
    print(
        f"S3: moto_server at {endpoint}; local: {tmp}; {os.cpu_count()} CPU cores; "
        f"{args.source_size} px sources, batch {args.batch_size}, Label Studio off, no teacher",
        flush=True,
    )
    results: dict[tuple[int, str], dict] = {}
    try:
        with prefect_test_harness(server_startup_timeout=180):
            timers = StageTimers()
            for n in args.sizes:
                t = time.perf_counter()
                manifest = write_sample_sources(tmp / f"src-{n}", n=n, size=args.source_size)
                print(f"{n} sources written in {time.perf_counter() - t:.1f} s (not timed)", flush=True)
                for where, root in (("local", str(tmp / f"ds-{n}")), ("s3", f"s3://aescot/ds-{n}")):
                    r = one_run(root, manifest, timers, args.batch_size)
                    results[(n, where)] = r
                    ok = (
                        r["sources_with_4"] == r["sources"] == r["sources_with_1_item"]
                        and r["duplicate_candidates"] == 0
                        and r["candidates"] == 4 * r["sources"]
                    )
                    r["ok"] = ok
                    print(
                        f"  {n:6d} {where:5s} "
                        + " ".join(f"{s} {r[s]:7.1f} s" for s in STAGES)
                        + f" | sources {r['sources']} candidates {r['candidates']} "
                        f"dup {r['duplicate_candidates']} checks {'passed' if ok else 'FAILED'}",
                        flush=True,
                    )
    finally:
        proc.terminate()
        proc.wait(30)

    print("\nseconds per 1k sources (S3/local ratio)")
    print(
        f"{'sources':>7s} " + " ".join(f"{s + ' local':>12s} {s + ' s3':>10s} {'ratio':>6s}" for s in STAGES)
    )
    for n in args.sizes:
        if (n, "s3") not in results:
            continue
        loc, s3 = results[(n, "local")], results[(n, "s3")]
        cells = []
        for s in STAGES:
            a, b = loc[s] / n * 1000, s3[s] / n * 1000
            cells.append(f"{a:12.2f} {b:10.2f} {b / a if a else float('nan'):5.2f}x")
        print(f"{n:7d} " + " ".join(cells))
    if len(args.sizes) >= 2:
        lo, hi = args.sizes[0], args.sizes[-1]
        print(f"\nper-1k growth {hi} vs {lo} sources (1.0 = linear)")
        for where in ("local", "s3"):
            cells = []
            for s in STAGES:
                a = results[(lo, where)][s] / lo
                b = results[(hi, where)][s] / hi
                cells.append(f"{s} {b / a if a else float('nan'):.2f}x")
            print(f"  {where:5s} " + "  ".join(cells))
    bad = [k for k, r in results.items() if not r["ok"]]
    print("checks: " + ("all passed" if not bad else f"FAILED for {bad}"))
    raise SystemExit(1 if bad else 0)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
