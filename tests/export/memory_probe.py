"""Run one export in a fresh process and print its peak RSS growth (MB) and output bytes as JSON.

Used by test_memory.py and bench/export_speed_memory.py: ``python memory_probe.py N_ITEMS [FORMATS]``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: make `tests` importable

from aescot.export import ExportConfig, export_dataset
from aescot.store import DatasetStore
from tests.export.demo_store import DemoSpec, build_demo_store


def main(n_items: int, formats: list[str]) -> dict:
    root = Path(tempfile.mkdtemp(prefix="aescot-memprobe-"))
    store = DatasetStore(root / "ds")
    build_demo_store(store, DemoSpec(n_items=n_items, image_pool=64, image_side=64, validate=False))
    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.005)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    t0 = time.perf_counter()
    summary = export_dataset(store, ExportConfig(out=str(root / "out"), formats=formats, plots=False))
    seconds = time.perf_counter() - t0
    done.set()
    watcher.join()
    out_bytes = sum(p.stat().st_size for p in (root / "out").rglob("*.parquet"))
    payload = 0  # image bytes that went through the writer (before Parquet compression)
    for path in (root / "out").rglob("*.parquet"):
        images = pq.read_table(path, columns=["images"]).column("images").combine_chunks()
        payload += pc.sum(pc.binary_length(images.flatten().field("bytes"))).as_py() or 0
    return {
        "n_items": n_items,
        "rows": sum(sum(v.values()) for v in summary.rows.values()),
        "growth_mb": (peak[0] - base) / 2**20,
        "out_mb": out_bytes / 2**20,
        "payload_mb": payload / 2**20,
        "seconds": seconds,
    }


if __name__ == "__main__":
    fmts = sys.argv[2].split(",") if len(sys.argv) > 2 else ["rl"]
    print(json.dumps(main(int(sys.argv[1]), fmts)))
