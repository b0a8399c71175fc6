"""Near-duplicate search at scale: multi-index hashing vs brute force, same results.

Random 64-bit hashes plus 1% planted near-copies (1-10 bits flipped). For each size the
self-search (all pairs within the radius) runs with MIH; brute force (blockwise XOR +
popcount with numpy, ~O(n^2)) runs where it fits in the time budget and is extrapolated
quadratically from the largest measured size otherwise (said so in the output). Where both
ran, the pair lists are compared for equality.

    python bench/dedupe_search.py [--sizes 10000 100000 1000000] [--radius 6] [--brute-max 100000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from aescot.dedupe.hashing import DEFAULT_THRESHOLD
from aescot.neardup.search import brute_force_search, choose_chunks, mih_search


def planted(n: int, rng: np.random.Generator) -> np.ndarray:
    base = rng.integers(0, 2**64 - 1, size=n, dtype=np.uint64, endpoint=True)
    k = n // 100
    src = rng.integers(0, n - k, size=k)
    near = base[src].copy()
    for flips in range(1, 11):
        sel = np.arange(k)[np.arange(k) % 10 == flips - 1]
        for _ in range(flips):
            near[sel] ^= np.uint64(1) << rng.integers(0, 64, size=sel.size).astype(np.uint64)
    base[n - k :] = near
    return base


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--radius", type=int, nargs="+", default=[DEFAULT_THRESHOLD])
    ap.add_argument("--brute-max", type=int, default=100_000, help="largest size brute force actually runs")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'n':>9} {'r':>3} {'m':>3} {'pairs':>8} {'mih s':>8} {'brute s':>10} {'speedup':>9}  same")
    for r in args.radius:
        brute_ref: tuple[int, float] | None = None
        for n in args.sizes:
            h = planted(n, rng)
            t0 = time.perf_counter()
            got = mih_search(h, None, r)
            t_mih = time.perf_counter() - t0
            if n <= args.brute_max:
                t0 = time.perf_counter()
                ref = brute_force_search(h, None, r)
                t_brute = time.perf_counter() - t0
                brute_ref = (n, t_brute)
                same, note = str(got.as_tuples() == ref.as_tuples()), ""
            else:
                n0, t0b = brute_ref or (n, float("nan"))
                t_brute, same, note = t0b * (n / n0) ** 2, "n/a", " (extrapolated n^2)"
            print(
                f"{n:>9} {r:>3} {choose_chunks(64, n, n, r):>3} {len(got):>8} {t_mih:>8.2f} {t_brute:>10.1f} "
                f"{t_brute / t_mih:>8.0f}x  {same}{note}",
                flush=True,
            )


if __name__ == "__main__":
    main()
