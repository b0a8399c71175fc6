"""Where to put the near-duplicate threshold: phash distances of true near-duplicates vs distinct candidates.

Positives (must be caught): one rendered product shot after JPEG re-encoding, down/up-scaling,
blur, mild noise, a 2% crop, a 5% brightness change. Negatives (must not be caught): the
synthetic backend's candidates of one source against each other and against the source, the
tiny diffusers pipeline's candidates (background mode: the product is kept, only the backdrop
changes, the hardest case) against each other and the source, and different sources.

    python bench/dedupe_threshold.py [--n 60]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
from itertools import combinations
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test helpers live in tests/

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from aescot.dedupe.hashing import DEFAULT_THRESHOLD, DedupeConfig, hash_image
from aescot.generate import DiffusersConfig, DiffusersGenerator, SourceImage, SyntheticGenerator
from aescot.neardup import hamming
from aescot.samples import render_product_shot
from tests.generate.tiny_pipeline import save_tiny_inpaint_pipeline


def perturbations(img: Image.Image, rng: np.random.Generator) -> dict[str, Image.Image]:
    w, h = img.size
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=70)
    noisy = np.clip(np.asarray(img, np.float32) + rng.normal(0, 3, (h, w, 3)), 0, 255).astype(np.uint8)
    c = round(0.01 * w)
    return {
        "jpeg70": Image.open(io.BytesIO(buf.getvalue())).convert("RGB"),
        "half_resize": img.resize((w // 2, h // 2), Image.Resampling.BILINEAR).resize((w, h)),
        "blur1": img.filter(ImageFilter.GaussianBlur(1)),
        "noise3": Image.fromarray(noisy),
        "crop2pct": img.crop((c, c, w - c, h - c)).resize((w, h)),
        "bright5": ImageEnhance.Brightness(img).enhance(1.05),
    }


def summary(name: str, d: list[int]) -> str:
    a = np.array(d)
    return (
        f"{name:<34} n={a.size:<5} min={a.min():<3} p1={np.percentile(a, 1):<5.1f} p50={np.median(a):<5.1f} "
        f"p99={np.percentile(a, 99):<5.1f} max={a.max()}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=60, help="sources")
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    cfg = DedupeConfig()
    rng = np.random.default_rng(0)
    pipe_dir = save_tiny_inpaint_pipeline(os.path.join(tempfile.gettempdir(), "aescot-bench-tiny-inpaint"))
    diff = DiffusersGenerator(DiffusersConfig(model=str(pipe_dir), size=128, steps=4))
    synth = SyntheticGenerator()
    per_kind: dict[str, list[int]] = {}
    pos, syn_pairs, syn_src, dif_pairs, dif_src, cross = [], [], [], [], [], []
    src_hashes = []
    for i in range(args.n):
        img, mask = render_product_shot(1000 + i, args.size)
        h0 = hash_image(img, cfg)
        src_hashes.append(h0)
        for kind, p in perturbations(img, rng).items():
            d = hamming(h0, hash_image(p, cfg))
            pos.append(d)
            per_kind.setdefault(kind, []).append(d)
        src = SourceImage(f"{i:064x}", img, mask)
        sh = [
            hash_image(g.image, cfg)
            for g in synth.generate(src, [0, 1, 2, 3], [10 * i + k for k in range(4)])
        ]
        syn_pairs += [hamming(a, b) for a, b in combinations(sh, 2)]
        syn_src += [hamming(a, h0) for a in sh]
        if i < 20:
            dh = [
                hash_image(g.image, cfg)
                for g in diff.generate(src, [0, 1, 2, 3], [10 * i + k for k in range(4)])
            ]
            dif_pairs += [hamming(a, b) for a, b in combinations(dh, 2)]
            dif_src += [hamming(a, hash_image(img.resize((128, 128)), cfg)) for a in dh]
    cross = [hamming(a, b) for a, b in combinations(src_hashes, 2)]
    print(
        f"phash {cfg.hash_size}x{cfg.hash_size} ({cfg.hash_size**2} bits), {args.n} sources at {args.size}px\n"
    )
    print("must be caught (same image, perturbed):")
    print(summary("  perturbed copies vs original", pos))
    for kind, d in per_kind.items():
        print(summary(f"    {kind}", d))
    print("must not be caught (distinct images):")
    for name, d in (
        ("  synthetic candidate pairs", syn_pairs),
        ("  synthetic candidate vs source", syn_src),
        ("  tiny-diffusers candidate pairs", dif_pairs),
        ("  tiny-diffusers cand. vs source", dif_src),
        ("  different sources", cross),
    ):
        print(summary(name, d))
    negatives = syn_pairs + syn_src + dif_pairs + dif_src + cross
    print("\nthreshold  caught(perturbed)  false-positives(distinct)")
    for t in range(2, 16, 2):
        print(f"{t:>9}  {np.mean(np.array(pos) <= t):>16.1%}  {np.mean(np.array(negatives) <= t):>24.2%}")
    print(f"\ndefault threshold: {DEFAULT_THRESHOLD}")


if __name__ == "__main__":
    main()
