"""Hamming-radius search over perceptual hashes: multi-index hashing (MIH), vectorised.

Brute force compares every pair: O(n^2), fine for 10^4 hashes, hopeless for 10^6. Multi-index
hashing (Norouzi, Punjani & Fleet, CVPR 2012) splits each ``b``-bit hash into ``m`` disjoint
chunks. By the pigeonhole principle, two hashes within ``r`` bits differ by at most ``r // m``
bits in at least one chunk, so it suffices to probe, per chunk, every key within ``r // m``
bits of the query's chunk in a bucket table, and to verify the few pairs found on the whole
hash. Results are exactly those of brute force (no approximation); ``m`` is chosen per call
by a cost model of probes vs. verified pairs.

Everything is numpy on whole arrays: one probe of one chunk handles all queries at once.
A pair found through several chunks is kept only in the first chunk where it qualifies,
so results carry no duplicates and need no set operations.

This module is the one place where Hamming distances are computed: :func:`hamming` for one pair,
:func:`radius_search` / :func:`near_pairs` for sets, :class:`HammingIndex` for incremental checks
(ingest's near-duplicate sources, the dedupe stage, the export's split grouping and leak check).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from math import ceil, comb
from typing import Literal

import numpy as np

Method = Literal["auto", "mih", "brute"]
MAX_CHUNK_BITS = 24  # a dense bucket table of 2**24 offsets (64 MiB at int32) is the largest we build
BRUTE_FORCE_BELOW = 2_048  # pairs of smaller sets are cheaper to compare all at once


def hashes_to_words(hashes: Sequence[str] | np.ndarray) -> np.ndarray:
    """Hex hashes of equal length -> ``(n, w)`` uint64, one 64-bit word per 16 hex digits.

    A length that is not a multiple of 16 (e.g. a 4x4 hash) is left-padded with zeros, which
    changes no distance. An ``(n,)`` or ``(n, w)`` unsigned integer array is passed through.
    """
    if isinstance(hashes, np.ndarray):
        arr = hashes.astype(np.uint64, copy=False)
        return arr.reshape(-1, 1) if arr.ndim == 1 else arr
    hashes = list(hashes)
    if not hashes:
        return np.zeros((0, 1), dtype=np.uint64)
    width = len(hashes[0])
    if width == 0 or any(len(h) != width for h in hashes):
        bad = next((h for h in hashes if len(h) != width), hashes[0])
        raise ValueError(f"hashes must all have the same length (hex digits); got {bad!r}")
    padded = -(-width // 16) * 16
    joined = "".join(hashes) if padded == width else "".join(h.rjust(padded, "0") for h in hashes)
    try:
        raw = bytes.fromhex(joined)
    except ValueError as exc:
        raise ValueError(f"not a hex hash: {exc}") from None
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64).reshape(len(hashes), padded // 16)


@dataclass(frozen=True)
class NearPairs:
    """Pairs within the radius: ``left[k]`` and ``right[k]`` are row indices, ``distance[k]`` their bits apart.

    For a self-search ``left < right``; rows are sorted by (left, right).
    """

    left: np.ndarray
    right: np.ndarray
    distance: np.ndarray

    def __len__(self) -> int:
        return int(self.left.shape[0])

    def as_tuples(self) -> list[tuple[int, int, int]]:
        return list(zip(self.left.tolist(), self.right.tolist(), self.distance.tolist()))

    @staticmethod
    def build(left: np.ndarray, right: np.ndarray, distance: np.ndarray) -> NearPairs:
        order = np.lexsort((right, left))
        return NearPairs(
            left[order].astype(np.int64), right[order].astype(np.int64), distance[order].astype(np.int64)
        )


def _rows(words: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Rows in ``order``; 64-bit hashes become a flat array (the fast path)."""
    out = words[order]
    return out[:, 0].copy() if out.shape[1] == 1 else out


def _take(words: np.ndarray, pos: np.ndarray) -> np.ndarray:
    return words[pos]


def _distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Hamming distance of two ``(k,)`` or ``(k, w)`` uint64 arrays."""
    bits = np.bitwise_count(a ^ b)
    return bits.astype(np.int64) if bits.ndim == 1 else bits.sum(axis=1, dtype=np.int64)


def hamming(a_hex: str, b_hex: str) -> int:
    """Bits that differ between two hex hashes of equal length."""
    if len(a_hex) != len(b_hex):
        raise ValueError(f"hashes differ in length: {len(a_hex)} vs {len(b_hex)} hex digits")
    return int(_distance(hashes_to_words([a_hex]), hashes_to_words([b_hex]))[0])


# --- brute force (the reference, and the fast path for small sets) ----------------------------------


def brute_force_search(queries, index=None, radius: int = 8, block: int = 4096) -> NearPairs:
    """All pairs within ``radius`` by comparing every pair, in blocks (O(n*m) time, O(block*m) memory).

    With ``index=None`` it is a self-search and returns each pair once (``left < right``).
    """
    q = hashes_to_words(queries)
    x = q if index is None else hashes_to_words(index)
    _check_widths(q, x)
    lefts, rights, dists = [], [], []
    for start in range(0, q.shape[0], block):
        qb = q[start : start + block]
        d = np.zeros((qb.shape[0], x.shape[0]), dtype=np.int64)
        for w in range(q.shape[1]):
            d += np.bitwise_count(qb[:, w, None] ^ x[None, :, w])
        if index is None:  # keep j > i only
            d[np.arange(qb.shape[0])[:, None] + start >= np.arange(x.shape[0])[None, :]] = radius + 1
        i, j = np.nonzero(d <= radius)
        lefts.append(i + start)
        rights.append(j)
        dists.append(d[i, j])
    if not lefts:
        return NearPairs.build(*(np.zeros(0, np.int64) for _ in range(3)))
    return NearPairs.build(np.concatenate(lefts), np.concatenate(rights), np.concatenate(dists))


# --- multi-index hashing ----------------------------------------------------------------------------


def _chunk_bounds(nbits: int, m: int) -> list[tuple[int, int]]:
    """``m`` contiguous chunks covering ``nbits`` bits as evenly as possible: (start, length)."""
    base, extra = divmod(nbits, m)
    out, start = [], 0
    for c in range(m):
        length = base + (1 if c < extra else 0)
        out.append((start, length))
        start += length
    return out


def _extract(words: np.ndarray, start: int, length: int) -> np.ndarray:
    """Bits ``[start, start+length)`` (MSB-first across the words) of every row, as uint64 (length <= 32)."""
    w0, off = divmod(start, 64)
    end = off + length
    if end <= 64:
        key = words[:, w0] >> np.uint64(64 - end)
    else:  # spans two words
        spill = end - 64
        key = (words[:, w0] << np.uint64(spill)) | (words[:, w0 + 1] >> np.uint64(64 - spill))
    return key & np.uint64((1 << length) - 1)


def _flip_masks(length: int, s: int) -> np.ndarray:
    """Every ``length``-bit mask with at most ``s`` bits set (0 first)."""
    masks = [0]
    for k in range(1, s + 1):
        masks.extend(sum(1 << b for b in bits) for bits in combinations(range(length), k))
    return np.array(masks, dtype=np.uint64)


def choose_chunks(nbits: int, n_index: int, n_queries: int, radius: int) -> int:
    """The number of chunks ``m`` minimising probes + expected verified pairs (uniform-hash model)."""
    best_m, best_cost = None, float("inf")
    for m in range(1, nbits + 1):
        length = ceil(nbits / m)
        if length > MAX_CHUNK_BITS:
            continue
        s = radius // m
        probes = sum(comb(length, k) for k in range(s + 1))
        # every probe touches every query (~1 unit); each candidate pair costs ~2 units to verify
        cost = m * probes * n_queries * (1.0 + 2.0 * n_index / 2.0**length)
        if cost < best_cost:
            best_m, best_cost = m, cost
    assert best_m is not None
    return best_m


def mih_search(queries, index=None, radius: int = 8, chunks: int | None = None) -> NearPairs:
    """All pairs within ``radius`` by multi-index hashing; identical to :func:`brute_force_search`."""
    q = hashes_to_words(queries)
    x = q if index is None else hashes_to_words(index)
    _check_widths(q, x)
    self_search = index is None
    nbits = 64 * q.shape[1]
    if q.shape[0] == 0 or x.shape[0] == 0:
        return NearPairs.build(*(np.zeros(0, np.int64) for _ in range(3)))
    m = chunks or choose_chunks(nbits, x.shape[0], q.shape[0], radius)
    bounds = _chunk_bounds(nbits, m)
    if max(n for _, n in bounds) > MAX_CHUNK_BITS:
        raise ValueError(
            f"{m} chunks of a {nbits}-bit hash exceed {MAX_CHUNK_BITS} bits each; use more chunks"
        )
    s = radius // m
    qkeys = [_extract(q, a, n) for a, n in bounds]
    xkeys = qkeys if self_search else [_extract(x, a, n) for a, n in bounds]
    lefts, rights, dists = [], [], []
    for c, (_, length) in enumerate(bounds):
        # bucket table: rows of x sorted by chunk key; offsets[key]..offsets[key+1] per key, and an
        # occupancy bitmap (1 byte per key: small enough to stay in cache) to skip empty buckets fast
        xk = xkeys[c].astype(np.int64)
        order = np.argsort(xk, kind="stable")
        counts = np.bincount(xk, minlength=1 << length)
        offsets = np.zeros((1 << length) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        occupied = counts > 0
        # queries sorted by their key: key ^ mask then walks the tables in long ascending runs, and
        # both sides' hashes are laid out in table order so the verifying gathers are near-sequential
        qorder = np.argsort(qkeys[c], kind="stable")
        qk_sorted = qkeys[c][qorder].astype(np.int64)
        q_sorted, x_sorted = _rows(q, qorder), _rows(x, order)
        for mask in _flip_masks(length, s).astype(np.int64):
            probe = qk_sorted ^ mask
            hit = np.flatnonzero(occupied[probe])
            if hit.size == 0:
                continue
            hit_keys = probe[hit]
            reps = counts[hit_keys]
            qpos = np.repeat(hit, reps)
            # table positions lo[h] .. lo[h]+reps[h]-1 for every hit query h, flattened
            xpos = np.repeat(offsets[hit_keys] - (np.cumsum(reps) - reps), reps) + np.arange(qpos.shape[0])
            # verify on the whole hash first: almost every candidate fails here, cheaply
            d = _distance(_take(q_sorted, qpos), _take(x_sorted, xpos))
            ok = np.flatnonzero(d <= radius)
            if ok.size == 0:
                continue
            qi, xi, d = qorder[qpos[ok]], order[xpos[ok]], d[ok]
            keep = qi < xi if self_search else np.ones(qi.shape[0], dtype=bool)
            # a pair already qualifying in an earlier chunk was reported there
            for e in range(c):
                keep &= np.bitwise_count(qkeys[e][qi] ^ xkeys[e][xi]) > s
            lefts.append(qi[keep])
            rights.append(xi[keep])
            dists.append(d[keep])
    if not lefts:
        return NearPairs.build(*(np.zeros(0, np.int64) for _ in range(3)))
    return NearPairs.build(np.concatenate(lefts), np.concatenate(rights), np.concatenate(dists))


def radius_search(queries, index=None, radius: int = 8, method: Method = "auto") -> NearPairs:
    """Pairs within ``radius`` bits: ``index=None`` searches ``queries`` against themselves.

    ``method="auto"`` uses brute force for small inputs and multi-index hashing otherwise;
    both give identical results.
    """
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    if method == "brute":
        return brute_force_search(queries, index, radius)
    if method == "mih":
        return mih_search(queries, index, radius)
    q = hashes_to_words(queries)
    x = q if index is None else hashes_to_words(index)
    if q.shape[0] * x.shape[0] <= BRUTE_FORCE_BELOW**2:
        return brute_force_search(q, None if index is None else x, radius)
    return mih_search(q, None if index is None else x, radius)


def near_pairs(hashes: Sequence[str | None], radius: int) -> list[tuple[int, int, int]]:
    """Every ``(i, j, distance)`` with ``i < j`` and both hashes within ``radius`` bits, sorted.

    Only hashes of the same length are compared (another length is another hash size, never
    near); empty or missing hashes are left out.
    """
    by_len: dict[int, list[int]] = {}
    for i, h in enumerate(hashes):
        if h:
            by_len.setdefault(len(h), []).append(i)
    out: list[tuple[int, int, int]] = []
    for idx in by_len.values():
        if len(idx) < 2:
            continue
        pairs = radius_search([hashes[i] for i in idx], None, radius)
        out.extend((idx[i], idx[j], d) for i, j, d in pairs.as_tuples())
    return sorted(out) if len(by_len) > 1 else out


def _check_widths(q: np.ndarray, x: np.ndarray) -> None:
    if q.shape[0] and x.shape[0] and q.shape[1] != x.shape[1]:
        raise ValueError(f"hash widths differ: {64 * q.shape[1]} vs {64 * x.shape[1]} bits")


class HammingIndex:
    """A growing set of labelled hashes with nearest-within-radius lookup (for incremental checks).

    Hashes of different lengths (hash sizes) live side by side and are only compared with their
    own length; missing hashes are left out. Adding is amortised O(1): the word matrix grows by
    doubling, never rebuilt.

    >>> idx = HammingIndex(["a" * 16], ["src1"]); idx.nearest("a" * 15 + "b", radius=4)
    ('src1', 1)
    """

    def __init__(self, hashes: Sequence[str] = (), labels: Sequence[str] = ()):
        if len(hashes) != len(labels):
            raise ValueError("one label per hash")
        # per hash length: [words (capacity, w), rows used, labels]
        self._tables: dict[int, list] = {}
        self._n = 0
        by_len: dict[int, tuple[list[str], list[str]]] = {}
        for h, label in zip(hashes, labels):
            if not h:  # an unhashed row (None or ""): nothing to be near
                continue
            hs, ls = by_len.setdefault(len(h), ([], []))
            hs.append(h)
            ls.append(label)
        for width, (hs, ls) in by_len.items():
            words = hashes_to_words(hs)
            self._tables[width] = [words, len(hs), ls]
            self._n += len(hs)

    def __len__(self) -> int:
        return self._n

    def add(self, h: str, label: str) -> None:
        row = hashes_to_words([h])
        table = self._tables.get(len(h))
        if table is None:
            self._tables[len(h)] = [row.copy(), 1, [label]]
        else:
            words, n, labels = table
            if n == words.shape[0]:
                grown = np.zeros((max(2 * n, 16), words.shape[1]), dtype=np.uint64)
                grown[:n] = words[:n]
                table[0] = words = grown
            words[n] = row[0]
            table[1] = n + 1
            labels.append(label)
        self._n += 1

    def search(self, queries: Sequence[str], radius: int) -> list[list[tuple[str, int]]]:
        """For each query, the ``(label, distance)`` of every indexed hash within ``radius``, nearest
        first (equally near: in the order they were added)."""
        if radius < 0:
            raise ValueError(f"radius must be >= 0, got {radius}")
        out: list[list[tuple[str, int]]] = [[] for _ in queries]
        by_len: dict[int, list[int]] = {}
        for qi, q in enumerate(queries):
            by_len.setdefault(len(q), []).append(qi)
        for width, qis in by_len.items():
            table = self._tables.get(width)
            if table is None:
                continue
            words, n, labels = table
            found: dict[int, list[tuple[int, int]]] = {}
            pairs = radius_search(hashes_to_words([queries[i] for i in qis]), words[:n], radius)
            for qi, xi, d in pairs.as_tuples():
                found.setdefault(qis[qi], []).append((d, xi))
            for qi, hits in found.items():
                out[qi] = [(labels[xi], d) for d, xi in sorted(hits)]
        return out

    def nearest(self, h: str, radius: int) -> tuple[str, int] | None:
        """The closest indexed hash within ``radius`` of ``h`` as ``(label, distance)``, or None."""
        hits = self.search([h], radius)[0]
        return hits[0] if hits else None
