"""Export time and peak memory against the floor of the same work: read the images, write the rows.

For each size, a demo store is built (untimed), then in fresh processes (so peak RSS is the run's own):

* **export**: ``export_dataset`` (``rl`` format, images embedded, no plots): pins and tags the table
  versions, reads the split-plan columns, plans grouped splits, reads each batch's rows by key,
  reads every image from the store, builds the rows, writes sharded Parquet, runs the leak check on
  the written files, writes the card and the manifest;
* **baseline**: the same bytes by the shortest path: read every image the export's rows reference
  from the store (a plain ``open().read()`` per image, in row order) plus one ``pq.write_table`` of
  the very rows the export wrote (read back into memory beforehand, untimed).

Prints seconds and peak RSS growth of both and the ratios export / baseline at each size. The
machines are shared and noisy: compare the ratios, not the seconds.

    nice -n 10 python bench/export_throughput.py              # 1k and 10k items
    nice -n 10 python bench/export_throughput.py 1000 16000
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Self

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the demo store builder lives in tests/


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


def run_build(n: int, root: str) -> dict:
    from aescot.store import DatasetStore
    from tests.export.demo_store import DemoSpec, build_demo_store

    t0 = time.perf_counter()
    build_demo_store(DatasetStore(Path(root) / "ds"), DemoSpec(n_items=n, image_pool=256, validate=False))
    return {"build_s": time.perf_counter() - t0}


def run_export(root: str) -> dict:
    from aescot.export import ExportConfig, export_dataset
    from aescot.store import DatasetStore

    store = DatasetStore(Path(root) / "ds")
    cfg = ExportConfig(out=str(Path(root) / "out"), formats=["rl"], plots=False)
    # Imports are not the export's work (a trainer process pays them once): the card module (matplotlib
    # itself is not loaded without plots) and Lance, which the store imports at its first table access.
    import lance  # noqa: F401

    import aescot.export.card  # noqa: F401

    with PeakRSS() as mem:
        t0 = time.perf_counter()
        summary = export_dataset(store, cfg)
        seconds = time.perf_counter() - t0
    return {"rows": sum(summary.rows["rl"].values()), "seconds": seconds, "growth_mb": mem.growth_mb}


def run_baseline(root: str) -> dict:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from aescot.store import DatasetStore

    store = DatasetStore(Path(root) / "ds")
    files = sorted((Path(root) / "out" / "rl").rglob("*.parquet"))
    schema = pq.read_schema(files[0])
    table = pa.concat_tables([pq.read_table(f, schema=schema) for f in files])
    names = table.column("images").combine_chunks().flatten().field("path").to_pylist()
    keys = [store.image_key(*name.rsplit(".", 1)) for name in names]  # the store key of each embedded image
    payload = (
        pc.sum(pc.binary_length(table.column("images").combine_chunks().flatten().field("bytes"))).as_py()
    ) or 0
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        read = 0
        for key in keys:
            with open(os.path.join(store.path, key), "rb") as fh:
                read += len(fh.read())
        images_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        pq.write_table(table, Path(root) / "raw.parquet", compression="zstd")
        write_s = time.perf_counter() - t0
    assert read == payload, (read, payload)  # the baseline read exactly the bytes the export embedded
    return {
        "rows": table.num_rows,
        "images_s": images_s,
        "write_s": write_s,
        "seconds": images_s + write_s,
        "growth_mb": mem.growth_mb,
        "payload_mb": payload / 2**20,
    }


def _child(mode: str, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(sizes: list[int]) -> None:
    print(
        f"{'items':>7} {'export s':>9} {'images s':>9} {'write s':>8} {'base s':>7} {'time x':>7} "
        f"{'export MB':>10} {'base MB':>8} {'payload MB':>11}"
    )
    ratios = []
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="aescot-bench-export-") as root:
            _child("build", str(n), root)
            exp = _child("export", root)
            base = _child("baseline", root)
        assert exp["rows"] == base["rows"] == n, (exp, base)
        ratio = exp["seconds"] / base["seconds"]
        ratios.append((n, ratio))
        print(
            f"{n:>7} {exp['seconds']:>9.2f} {base['images_s']:>9.2f} {base['write_s']:>8.2f} "
            f"{base['seconds']:>7.2f} {ratio:>7.1f} {exp['growth_mb']:>10.0f} {base['growth_mb']:>8.0f} "
            f"{base['payload_mb']:>11.0f}",
            flush=True,
        )
    print(
        "export / (read the images + raw pyarrow write): " + ", ".join(f"{r:.1f}x at {n}" for n, r in ratios)
    )


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        mode, args = sys.argv[2], sys.argv[3:]
        if mode == "build":
            result = run_build(int(args[0]), args[1])
        elif mode == "export":
            result = run_export(args[0])
        else:
            result = run_baseline(args[0])
        print(json.dumps(result))
    else:
        main([int(a) for a in sys.argv[1:]] or [1_000, 10_000])
