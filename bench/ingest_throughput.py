"""Ingest throughput vs plain PIL decoding of the same files (the unavoidable baseline).

    python bench/ingest_throughput.py [--n 200] [--size 512]

Prints files/s and ms per image for: PIL open+load, PIL + convert + phash, full ingest
(normalise, mask, phash, PNG encode, content-addressed store, Lance upsert), and the ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from PIL import Image

from aescot.ingest import IngestConfig, ingest
from aescot.neardup import PHash
from aescot.samples import render_product_shot
from aescot.store import DatasetStore


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="aescot-bench-ingest-"))
    src = tmp / "src"
    src.mkdir()
    for i in range(args.n):
        render_product_shot(i, args.size)[0].save(src / f"p{i:05d}.jpg", quality=90)
    files = sorted(src.iterdir())

    def timed(fn) -> float:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    def pil_decode():
        for f in files:
            with Image.open(f) as im:
                im.load()

    def pil_phash():
        for f in files:
            with Image.open(f) as im:
                PHash().hash(im.convert("RGB"))

    results = {"PIL decode": timed(pil_decode), "PIL decode + phash": timed(pil_phash)}
    for workers in (1, 2):
        store = DatasetStore(tmp / f"ds{workers}")
        cfg = IngestConfig(workers=workers, near_duplicate_distance=-1)
        results[f"aescot ingest ({workers} thread{'s' if workers > 1 else ''})"] = timed(
            lambda store=store, cfg=cfg: ingest(store, [str(src)], cfg)
        )
    rerun = DatasetStore(tmp / "ds2")
    results["aescot re-ingest (nothing new)"] = timed(lambda: ingest(rerun, [str(src)], IngestConfig()))

    base = results["PIL decode"]
    print(f"{args.n} JPEG files, {args.size}x{args.size}")
    print(f"{'step':34s} {'files/s':>9s} {'ms/img':>8s} {'x PIL decode':>13s}")
    for name, secs in results.items():
        print(f"{name:34s} {args.n / secs:9.1f} {1000 * secs / args.n:8.2f} {secs / base:13.1f}")


if __name__ == "__main__":
    main()
