"""Export speed and peak memory at 1k / 10k / 100k rows, against a raw pyarrow write of the same table.

For each size, in fresh processes (so peak RSS is the run's own):
* **export**: ``export_dataset`` of a demo store (``rl`` format, images embedded) — reads the tables,
  plans grouped splits, reads every image from the store, writes sharded Parquet, runs the leak
  check on the written files;
* **raw**: ``pq.write_table`` of the very table the export wrote (read back fully into memory first),
  the floor a non-streaming writer would need.

Prints seconds and peak RSS growth for both and the ratios export/raw.

    python bench/export_throughput.py            # 1k, 10k, 100k
    python bench/export_throughput.py 1000 10000
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Self

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the demo store builder lives in tests/


class PeakRSS:
    """Samples this process's RSS every 5 ms; ``growth_mb`` is the peak above the start."""

    def __enter__(self) -> Self:
        self.proc = psutil.Process()
        self.base = self.peak = self.proc.memory_info().rss
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.base) / 2**20


def run_export(n: int, root: str) -> dict:
    from aescot.export import ExportConfig, export_dataset
    from aescot.store import DatasetStore
    from tests.export.demo_store import DemoSpec, build_demo_store

    store = DatasetStore(Path(root) / "ds")
    t0 = time.perf_counter()
    build_demo_store(store, DemoSpec(n_items=n, image_pool=256, validate=False))
    build_s = time.perf_counter() - t0
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        summary = export_dataset(
            store, ExportConfig(out=str(Path(root) / "out"), formats=["rl"], plots=False)
        )
        seconds = time.perf_counter() - t0
    return {
        "rows": sum(summary.rows["rl"].values()),
        "seconds": seconds,
        "growth_mb": mem.growth_mb,
        "build_s": build_s,
    }


def run_raw(root: str) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted((Path(root) / "out" / "rl").rglob("*.parquet"))
    schema = pq.read_schema(files[0])
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        table = pa.concat_tables([pq.read_table(f, schema=schema) for f in files])
        read_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        pq.write_table(table, Path(root) / "raw.parquet", compression="zstd")
        seconds = time.perf_counter() - t0
    payload = table.column("images").combine_chunks().flatten().field("bytes")
    import pyarrow.compute as pc

    return {
        "rows": table.num_rows,
        "seconds": seconds,
        "read_s": read_s,
        "growth_mb": mem.growth_mb,
        "payload_mb": (pc.sum(pc.binary_length(payload)).as_py() or 0) / 2**20,
    }


def _child(mode: str, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, *args], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(sizes: list[int]) -> None:
    print(
        f"{'rows':>8} {'export s':>9} {'raw s':>7} {'time x':>7} {'export MB':>10} {'raw MB':>8} {'mem x':>7} "
        f"{'payload MB':>11}"
    )
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="aescot-bench-export-") as root:
            exp = _child("export", str(n), root)
            raw = _child("raw", root)
        print(
            f"{exp['rows']:>8} {exp['seconds']:>9.2f} {raw['seconds']:>7.2f} {exp['seconds'] / raw['seconds']:>7.1f} "
            f"{exp['growth_mb']:>10.0f} {raw['growth_mb']:>8.0f} {exp['growth_mb'] / max(raw['growth_mb'], 1):>7.2f} "
            f"{raw['payload_mb']:>11.0f}",
            flush=True,
        )


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        mode = sys.argv[2]
        result = run_export(int(sys.argv[3]), sys.argv[4]) if mode == "export" else run_raw(sys.argv[3])
        print(json.dumps(result))
    else:
        main([int(a) for a in sys.argv[1:]] or [1_000, 10_000, 100_000])
