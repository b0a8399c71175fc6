"""Teacher client throughput against a loopback Chat Completions server with fixed latency.

N calls at each concurrency; the ideal wall time is N x latency / concurrency. Prints, per
concurrency, the achieved calls/s, efficiency = ideal / achieved time, and the speed-up over
concurrency 1 measured in the same run. A last row runs the whole rationale stage (images
read from a store and encoded, records validated and written to Parquet) at the highest
concurrency, to show what the stage adds on top of the client.

    python bench/teacher_throughput.py                   # 1000 calls, 50 ms, concurrency 1/8/32
    python bench/teacher_throughput.py --calls 200 --latency 0.02 --concurrency 1 8 32
"""

from __future__ import annotations

import argparse
import asyncio
import io
import multiprocessing
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from PIL import Image

from aescot.demo.chat_server import chat_server, oracle
from aescot.ids import derive_id, item_id
from aescot.store import DatasetStore
from aescot.teacher.client import TeacherClient
from aescot.teacher.config import RationaleConfig, TeacherSettings
from aescot.teacher.images import image_data_url
from aescot.teacher.prompts import teacher_prompt
from aescot.teacher.rationales import generate_rationales
from aescot.timeutil import now_iso

ANSWER = {
    "acceptable": ["A", "C"],
    "best": "C",
    "dimensions": {"A": [], "B": ["lighting_shadow"], "C": [], "D": ["appearance_deformation"]},
}


def png(rng: random.Random, side: int = 256) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (side, side), tuple(rng.randrange(256) for _ in range(3))).save(buf, "PNG")
    return buf.getvalue()


def settings(base_url: str, concurrency: int) -> TeacherSettings:
    return TeacherSettings(
        base_url=base_url,
        model="bench",
        api_key="bench-key",
        concurrency=concurrency,
        timeout_s=30,
        image_max_side=128,
        price_input_per_mtok=1.0,
        price_output_per_mtok=4.0,
    )


async def client_run(base_url: str, n: int, concurrency: int) -> float:
    rng = random.Random(0)
    messages = teacher_prompt("blind").messages([image_data_url(png(rng), 128) for _ in range(5)])
    async with TeacherClient(settings(base_url, concurrency)) as client:
        t0 = time.perf_counter()
        results = await asyncio.gather(
            *[
                client.complete(messages, {"X-Aescot-Item-Id": "bench", "X-Aescot-Sample-Index": str(i)})
                for i in range(n)
            ]
        )
        elapsed = time.perf_counter() - t0
    failed = sum(r.error is not None for r in results)
    if failed:
        raise SystemExit(f"{failed} calls failed")
    return elapsed


def stage_run(base_url: str, n: int, concurrency: int, k: int = 4) -> float:
    rng = random.Random(1)
    store = DatasetStore(tempfile.mkdtemp(prefix="aescot-bench-teacher-"))
    items, labels = [], []
    for i in range(n // k):
        _, src = store.put_image(png(rng))
        cands = [
            {"letter": L, "candidate_id": derive_id("bench", i, L), "image_key": store.put_image(png(rng))[1]}
            for L in "ABCD"
        ]
        iid = item_id(derive_id("bench-src", i), [c["candidate_id"] for c in cands])
        items.append(
            {
                "item_id": iid,
                "source_id": derive_id("bench-src", i),
                "source_image_key": src,
                "candidates": cands,
                "generator": "bench",
                "gold": False,
                "known_answer": None,
                "created_at": now_iso(),
            }
        )
        labels.append(
            {
                "item_id": iid,
                **ANSWER,
                "scores": dict.fromkeys("ABCD"),
                "method": "single",
                "n_annotations": 1,
                "agreement": 1.0,
                "annotation_ids": ["a"],
                "updated_at": now_iso(),
            }
        )
    store.upsert("items", items)
    store.upsert("labels", labels)
    config = RationaleConfig(teacher=settings(base_url, concurrency), samples=k, flush_every=64)
    t0 = time.perf_counter()
    report = generate_rationales(store, config)
    elapsed = time.perf_counter() - t0
    assert report.ok == len(items) * k, report
    assert generate_rationales(store, config).calls == 0  # and the re-run is free
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--latency", type=float, default=0.05, help="server latency per call, seconds")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--no-stage", action="store_true", help="skip the whole-stage row")
    args = ap.parse_args()
    n, lat = args.calls, args.latency
    print(f"teacher throughput: {n} calls, server latency {lat * 1000:.0f} ms, {os.cpu_count()} CPUs")
    print(
        f"{'what':<26}{'conc':>5}{'wall s':>9}{'ideal s':>9}{'calls/s':>9}{'efficiency':>12}{'vs conc 1':>11}"
    )
    base_rate = None
    # The server runs in its own process so it does not share the client's GIL (as a real endpoint would not).
    ctx = multiprocessing.get_context("fork")
    ready, stop = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=serve, args=(lat, ready, stop), daemon=True)
    proc.start()
    base_url = ready.get(timeout=30)
    try:
        rows = [("client (TeacherClient)", c, client_run_sync(base_url, n, c)) for c in args.concurrency]
        if not args.no_stage:
            c = max(args.concurrency)
            rows.append(("stage (store + Parquet)", c, stage_run(base_url, n, c)))
        for what, c, wall in rows:
            ideal = n * lat / c
            rate = n / wall
            if base_rate is None and c == 1:
                base_rate = rate
            speedup = f"{rate / base_rate:.1f}x" if base_rate else "-"
            print(f"{what:<26}{c:>5}{wall:>9.2f}{ideal:>9.2f}{rate:>9.1f}{ideal / wall:>11.0%}{speedup:>11}")
        stop.set()
        print(f"server saw at most {ready.get(timeout=30)} requests in flight")
    finally:
        stop.set()
        proc.join(timeout=10)


def serve(latency: float, ready: Any, stop: Any) -> None:
    """Child process: run the loopback server until ``stop`` is set, then report its peak concurrency."""
    with chat_server(oracle({"bench": ANSWER}), latency=latency, keep_requests=False) as srv:
        ready.put(srv.base_url)
        stop.wait()
        ready.put(srv.max_in_flight)


def client_run_sync(base_url: str, n: int, c: int) -> float:
    return asyncio.run(client_run(base_url, n, c))


if __name__ == "__main__":
    main()
