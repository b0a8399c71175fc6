"""End-to-end wall time per 1,000 sources with the synthetic backend, and Prefect's share of it.

    python bench/flow_overhead.py [--n 1000] [--size 256] [--batch-size 32]

Runs the same work twice on fresh stores: (a) the stage functions called directly (ingest,
generate + items per batch), (b) the ``build-screening-set`` flow on an ephemeral Prefect API
(Label Studio and teacher off). Prints seconds, per-1,000-source figures and the ratio b/a.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="aescot-bench-prefect-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def direct(root: Path, manifest: Path, batch_size: int) -> None:
    from aescot.generate import GenerateConfig, generate_candidates
    from aescot.ingest import ingest
    from aescot.items import build_items
    from aescot.store import DatasetStore

    store = DatasetStore(root)
    ingest(store, [str(manifest)])
    ids = [r["source_id"] for r in store.read("sources", columns=["source_id"])]
    for i in range(0, len(ids), batch_size):
        generate_candidates(store, GenerateConfig(), ids[i : i + batch_size])
        build_items(store, ids[i : i + batch_size])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()

    from prefect.testing.utilities import prefect_test_harness

    from aescot.samples import write_sample_sources
    from aescot.store import DatasetStore
    from flows.build_screening_set import build_screening_set

    tmp = Path(tempfile.mkdtemp(prefix="aescot-bench-flow-"))
    manifest = write_sample_sources(tmp / "src", n=args.n, size=args.size)

    t = time.perf_counter()
    direct(tmp / "direct", manifest, args.batch_size)
    t_direct = time.perf_counter() - t

    with prefect_test_harness(server_startup_timeout=180):
        t = time.perf_counter()
        build_screening_set(
            root=str(tmp / "flow"),
            sources=[str(manifest)],
            batch_size=args.batch_size,
            labelstudio=False,
            teacher="off",
        )
        t_flow = time.perf_counter() - t
        t = time.perf_counter()
        build_screening_set(
            root=str(tmp / "flow"),
            sources=[str(manifest)],
            batch_size=args.batch_size,
            labelstudio=False,
            teacher="off",
        )
        t_rerun = time.perf_counter() - t

    items_direct = DatasetStore(tmp / "direct").count("items")
    items_flow = DatasetStore(tmp / "flow").count("items")
    per_k = 1000 / args.n
    print(
        f"{args.n} sources {args.size}px, batch {args.batch_size}: items direct={items_direct} flow={items_flow}"
    )
    print(f"{'run':28s} {'seconds':>9s} {'s per 1k sources':>17s} {'x direct':>9s}")
    for name, secs in (
        ("stages called directly", t_direct),
        ("build-screening-set flow", t_flow),
        ("flow re-run (nothing to do)", t_rerun),
    ):
        print(f"{name:28s} {secs:9.2f} {secs * per_k:17.2f} {secs / t_direct:9.2f}")
    print(f"Prefect's share of the flow run: {max(0.0, t_flow - t_direct) / t_flow:.1%}")


if __name__ == "__main__":
    main()
