"""Hashing throughput: aescot's candidate hashing vs a plain PIL decode of the same files, and vs
imagededup's PHash on the same files.

Writes N rendered 512x512 PNGs to a temp folder, then times, single-threaded:
  * decode: ``Image.open(f).load()`` (the floor: a hash needs the pixels),
  * aescot: decode + ``hash_image`` (imagehash phash, 64 bits),
  * imagededup: ``PHash().encode_image(image_file=f)`` (when importable, see below).

imagededup 0.3.3 imports torchvision at package import (for its CNN method), and the PyPI
torchvision wheel does not load against torch 2.13 here. Its hashing code does not need it, so
this script loads ``imagededup.methods.PHash`` with the CNN/model modules stubbed out. Install it
beside the venv without touching it, then point AESCOT_BENCH_DEPS at the folder:

    pip install --target .bench-deps --no-deps imagededup==0.3.3.post2 PyWavelets scikit-learn narwhals threadpoolctl
    AESCOT_BENCH_DEPS=.bench-deps python bench/dedupe_hashing.py [--n 300]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import types
from pathlib import Path

from PIL import Image

from aescot.dedupe.hashing import DedupeConfig, hash_image
from aescot.neardup import hamming
from aescot.samples import render_product_shot


def load_imagededup_phash():
    extra = os.environ.get("AESCOT_BENCH_DEPS")
    if extra:
        sys.path.append(str(Path(extra).resolve()))
    for name in ("imagededup.methods.cnn", "imagededup.utils.models"):
        stub = types.ModuleType(name)
        stub.CNN = stub.CustomModel = None
        sys.modules.setdefault(name, stub)
    try:
        from imagededup.methods import PHash
    except ImportError as exc:
        return None, f"imagededup not importable ({exc}); see this script's docstring"
    return PHash(verbose=False), None


def timed(fn, files) -> tuple[float, list]:
    t0 = time.perf_counter()
    out = [fn(f) for f in files]
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args()
    cfg = DedupeConfig()
    folder = Path(tempfile.mkdtemp(prefix="aescot-bench-hash-"))
    files = []
    for i in range(args.n):
        img, _ = render_product_shot(i, args.size)
        files.append(folder / f"{i:05d}.png")
        img.save(files[-1])

    def decode(f):
        with Image.open(f) as im:
            im.load()
            return im.size

    def ours(f):
        with Image.open(f) as im:
            return hash_image(im, cfg)

    decode(files[0]), ours(files[0])  # warm up imports and caches
    t_dec, _ = timed(decode, files)
    t_ours, h_ours = timed(ours, files)
    print(f"{args.n} PNGs {args.size}x{args.size}, one thread")
    print(f"  PIL decode only        {args.n / t_dec:8.1f} img/s")
    print(
        f"  aescot phash           {args.n / t_ours:8.1f} img/s   time ratio vs decode: {t_ours / t_dec:.2f}x"
    )
    phash, why = load_imagededup_phash()
    if phash is None:
        print(f"  imagededup PHash       skipped: {why}")
        return
    phash.encode_image(image_file=str(files[0]))
    t_idd, h_idd = timed(lambda f: phash.encode_image(image_file=str(f)), files)
    agree = sum(hamming(a, b) <= 2 for a, b in zip(h_ours, h_idd)) / len(files)
    print(
        f"  imagededup PHash       {args.n / t_idd:8.1f} img/s   time ratio vs decode: {t_idd / t_dec:.2f}x"
    )
    print(
        f"  aescot speed / imagededup speed: {t_idd / t_ours:.2f}x;  hashes within 2 bits of each other: {agree:.0%}"
    )


if __name__ == "__main__":
    main()
