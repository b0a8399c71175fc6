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
(ingest's near-duplicate sources, the dedupe stage's new items against the checked ones). The
index keeps the same chunks in sorted levels that grow with the rows added (O(log n) probes per
query), so checking a batch against a store costs the batch, not the store; its first few dozen
queries are compared by brute force instead, which is cheaper than sorting a large store for them.
"""

from __future__ import annotations

from bisect import bisect_right
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
        # A pair within the radius is within it on every word, so the first word alone (8-bit counts)
        # screens all pairs and only the few that pass have their other words compared.
        ok = np.bitwise_count(qb[:, 0, None] ^ x[None, :, 0]) <= radius
        if index is None:  # keep j > i only
            ok &= np.arange(qb.shape[0])[:, None] + start < np.arange(x.shape[0])[None, :]
        i, j = np.nonzero(ok)
        d = _distance(qb[i], x[j])
        keep = d <= radius
        lefts.append(i[keep] + start)
        rights.append(j[keep])
        dists.append(d[keep])
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


TAIL_ROWS = 2_048  # rows an index holds unsorted (compared by brute force) before sorting them into a level
# Queries an index answers by brute force before it sorts its rows into levels at all. Sorting 128k
# rows costs what ~80 brute-force queries do (measured: 75 ms vs 30 ms per 32 queries), so a call that
# asks a few dozen questions of a large store (one small ingest batch) never pays for the sort, and
# one that asks many pays at most this many queries' worth extra before the levels take over.
SORT_AFTER_QUERIES = 64


def arrow_hashes_to_words(column) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """An Arrow column of hex hashes -> ``{hex width: (row positions, (k, w) uint64 words)}``.

    Reads the string data buffer directly (no Python string per row); null and empty hashes are
    left out. The projected hash column of a table becomes an index this way at C speed.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not len(arr):
        return {}
    arr = arr.cast(pa.large_string())
    lengths = pc.fill_null(pc.utf8_length(arr), 0).to_numpy(zero_copy_only=False)
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for width in np.unique(lengths[lengths > 0]).tolist():
        pos = np.flatnonzero(lengths == width)
        sub = arr.take(pa.array(pos))
        if width % 16:  # a hash size whose hex is not whole 64-bit words: the padding path
            out[width] = (pos, hashes_to_words(sub.to_pylist()))
            continue
        data = sub.buffers()[2]
        start = int(np.frombuffer(sub.buffers()[1], dtype=np.int64)[sub.offset])
        raw = data.to_pybytes()[start : start + width * len(pos)]
        try:
            words = np.frombuffer(bytes.fromhex(raw.decode("ascii")), dtype=">u8")
        except (UnicodeDecodeError, ValueError) as exc:
            raise ValueError(f"not a hex hash: {exc}") from None
        out[width] = (pos, words.astype(np.uint64).reshape(len(pos), width // 16))
    return out


def pack_words(groups: dict[int, tuple[np.ndarray, np.ndarray]], n: int):
    """The stored form of :func:`arrow_hashes_to_words`' groups for ``n`` rows: two Arrow arrays, each
    row's native-order uint64 words as bytes (empty: no hash) and its hex width (0: none).
    :func:`unpack_words` reads them back without parsing hex."""
    import pyarrow as pa

    widths = np.zeros(n, dtype=np.uint16)
    nbytes = np.zeros(n, dtype=np.int64)
    for width, (pos, words) in groups.items():
        widths[pos] = width
        nbytes[pos] = 8 * words.shape[1]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(nbytes, out=offsets[1:])
    data = np.zeros(int(offsets[-1]), dtype=np.uint8)
    for pos, words in groups.values():
        size = 8 * words.shape[1]
        if len(pos) == n:  # one width for every row (the usual case): the words are the data
            data = np.ascontiguousarray(words).view(np.uint8).ravel()
            break
        data[offsets[pos][:, None] + np.arange(size)] = (
            np.ascontiguousarray(words).view(np.uint8).reshape(-1, size)
        )
    packed = pa.Array.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    return packed, pa.array(widths)


def unpack_words(packed, widths) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """:func:`pack_words`' arrays -> ``{hex width: (row positions, (k, w) uint64 words)}``, zero-copy
    when every row has a hash of one width."""
    import pyarrow as pa

    if isinstance(packed, pa.ChunkedArray):
        packed = packed.combine_chunks()
    if isinstance(widths, pa.ChunkedArray):
        widths = widths.combine_chunks()
    n = len(packed)
    if not n:
        return {}
    packed = packed.cast(pa.large_binary())
    offsets = np.frombuffer(packed.buffers()[1], dtype=np.int64)[packed.offset : packed.offset + n + 1]
    data = np.frombuffer(packed.buffers()[2], dtype=np.uint8)
    hex_widths = widths.to_numpy(zero_copy_only=False)
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for width in np.unique(hex_widths[hex_widths > 0]).tolist():
        pos = np.flatnonzero(hex_widths == width)
        w = -(-int(width) // 16)
        if len(pos) == n:
            words = data[offsets[0] : offsets[0] + 8 * w * n].view(np.uint64).reshape(n, w)
        else:
            words = data[offsets[pos][:, None] + np.arange(8 * w)].reshape(-1).view(np.uint64).reshape(-1, w)
        out[int(width)] = (pos, words)
    return out


class _Levels:
    """Multi-index tables of one radius over rows ``[0, hi)`` of a growing word matrix.

    Each level covers a contiguous run of rows and holds one sorted uint64 array of
    ``chunk number << 56 | chunk key << 32 | row`` for every chunk of every row: a probe is a
    binary search, so a level is never rebuilt to add rows, and building one is a plain (SIMD)
    sort. New rows are brute-forced until :data:`TAIL_ROWS` of them make a new level; a level at
    least half the size of the one before is merged into it (a binary counter), so each row is
    re-sorted O(log n) times in all and a search visits O(log n) levels.
    """

    ROW_BITS = 32

    def __init__(self, nbits: int, radius: int, n_hint: int):
        self.m = choose_chunks(nbits, max(n_hint, 1 << 16), 1, radius)
        self.bounds = _chunk_bounds(nbits, self.m)
        self.s = radius // self.m
        self.flips = [_flip_masks(length, self.s) for _, length in self.bounds]
        self.levels: list[tuple[int, int, np.ndarray]] = []  # (lo, hi, sorted packed entries)

    @property
    def hi(self) -> int:
        return self.levels[-1][1] if self.levels else 0

    def _keys(self, words: np.ndarray) -> np.ndarray:
        """``(m, k)`` keys: the chunk number (< 256) above the chunk's bits (<= 24)."""
        return np.stack(
            [(np.uint64(c) << np.uint64(24)) | _extract(words, a, n) for c, (a, n) in enumerate(self.bounds)]
        )

    def _level(self, words: np.ndarray, lo: int, hi: int) -> tuple[int, int, np.ndarray]:
        packed = (self._keys(words[lo:hi]) << np.uint64(self.ROW_BITS)) | np.arange(lo, hi, dtype=np.uint64)
        return lo, hi, np.sort(packed.ravel())

    def catch_up(self, words: np.ndarray, n: int) -> None:
        if n >= 1 << self.ROW_BITS:
            raise ValueError(f"an index holds fewer than 2**{self.ROW_BITS} hashes")
        lag = n - self.hi
        if lag < TAIL_ROWS:
            return
        self.levels.append(self._level(words, self.hi, self.hi + lag // TAIL_ROWS * TAIL_ROWS))
        while len(self.levels) >= 2:
            (lo0, hi0, _), (lo1, hi1, _) = self.levels[-2:]
            if hi0 - lo0 > 2 * (hi1 - lo1):
                break
            del self.levels[-2:]
            self.levels.append(self._level(words, lo0, hi1))

    def search(self, q: np.ndarray, words: np.ndarray, radius: int):
        """Candidate ``(query, row, distance)`` within ``radius`` among the levels' rows (a pair may
        come once per chunk it matches in; the caller drops repeats)."""
        qkeys = self._keys(q)
        k = q.shape[0]
        probes = np.concatenate([(qkeys[c][:, None] ^ f[None, :]).ravel() for c, f in enumerate(self.flips)])
        qidx = np.concatenate([np.repeat(np.arange(k), f.shape[0]) for f in self.flips])
        shift = np.uint64(self.ROW_BITS)
        first, last = probes << shift, (probes << shift) | np.uint64((1 << self.ROW_BITS) - 1)
        out = []
        for _, _, packed in self.levels:
            left = np.searchsorted(packed, first, "left")
            counts = np.searchsorted(packed, last, "right") - left
            hit = np.flatnonzero(counts)
            if hit.size == 0:
                continue
            reps = counts[hit]
            qpos = np.repeat(qidx[hit], reps)
            xpos = np.repeat(left[hit] - (np.cumsum(reps) - reps), reps) + np.arange(qpos.shape[0])
            xrow = (packed[xpos] & np.uint64((1 << self.ROW_BITS) - 1)).astype(np.int64)
            d = _distance(q[qpos], words[xrow])
            ok = np.flatnonzero(d <= radius)
            out.append((qpos[ok], xrow[ok], d[ok]))
        return out


class _Table:
    """The hashes of one hex width: a word matrix grown by doubling, labels, MIH levels per radius."""

    def __init__(self, w: int):
        self.words = np.zeros((0, w), dtype=np.uint64)
        self.n = 0
        self.starts: list[int] = []  # label segments: labels of rows starts[i].. are segments[i]
        self.segments: list = []
        self.levels: dict[int, _Levels] = {}
        self.queries = 0  # answered so far (see SORT_AFTER_QUERIES)

    def append(self, words: np.ndarray, labels) -> None:
        k = words.shape[0]
        if not k:
            return
        if self.n + k > self.words.shape[0]:
            grown = np.zeros((max(2 * self.words.shape[0], self.n + k, 16), words.shape[1]), dtype=np.uint64)
            grown[: self.n] = self.words[: self.n]
            self.words = grown
        self.words[self.n : self.n + k] = words
        self.starts.append(self.n)
        self.segments.append(labels)
        self.n += k

    def label(self, row: int):
        seg = bisect_right(self.starts, row) - 1
        value = self.segments[seg][row - self.starts[seg]]
        if hasattr(value, "as_py"):  # an Arrow scalar
            return value.as_py()
        return value.item() if isinstance(value, np.generic) else value

    def search(self, q: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every ``(query, row, distance)`` within ``radius``, once, sorted by (query, distance, row)."""
        words = self.words[: self.n]
        parts = []
        lo = 0
        self.queries += q.shape[0]
        if self.n >= TAIL_ROWS and self.queries > SORT_AFTER_QUERIES:
            lv = self.levels.get(radius)
            if lv is None:
                lv = self.levels[radius] = _Levels(64 * words.shape[1], radius, self.n)
            lv.catch_up(words, self.n)
            parts = lv.search(q, words, radius)
            lo = lv.hi
        if lo < self.n:
            # ~1M pairs per block: its 64-bit XOR temporary is 8 MB whatever the store's size
            tail = brute_force_search(q, words[lo:], radius, block=max(1, (1 << 20) // (self.n - lo)))
            parts.append((tail.left, tail.right + lo, tail.distance))
        if not parts:
            return (np.zeros(0, np.int64),) * 3
        qi, row, d = (np.concatenate(x) for x in zip(*parts))
        if len(parts) > 1 or lo > 0:  # found through several chunks: keep one
            _, first = np.unique(qi * self.n + row, return_index=True)
            qi, row, d = qi[first], row[first], d[first]
        order = np.lexsort((row, d, qi))
        return qi[order], row[order], d[order]


class HammingIndex:
    """A growing set of labelled hashes with within-radius lookup, for incremental checks.

    Built once (from hex strings, or from an Arrow column with :meth:`from_arrow`, at C speed) and
    then extended: adding rows never rebuilds what is indexed (see :class:`_Levels`), and a
    search of ``k`` queries costs O(k log n) probes plus the pairs it verifies, not O(k n).
    Results are exact: those of brute force.

    Hashes of different lengths (hash sizes) live side by side and are only compared with their
    own length; missing hashes are left out.

    >>> idx = HammingIndex(["a" * 16], ["src1"]); idx.nearest("a" * 15 + "b", radius=4)
    ('src1', 1)
    """

    def __init__(self, hashes: Sequence[str | None] = (), labels: Sequence = ()):
        self._tables: dict[int, _Table] = {}
        self._n = 0
        self.add_many(hashes, labels)

    @classmethod
    def from_arrow(cls, hashes, labels) -> HammingIndex:
        """An index of an Arrow column of hex hashes, labelled by ``labels`` (an Arrow array or a
        sequence of the same length), without a Python object per row."""
        if len(hashes) != len(labels):
            raise ValueError("one label per hash")
        return cls.from_groups(arrow_hashes_to_words(hashes), labels)

    @classmethod
    def from_groups(cls, groups: dict[int, tuple[np.ndarray, np.ndarray]], labels) -> HammingIndex:
        """An index of hashes already in words (:func:`arrow_hashes_to_words`, :func:`unpack_words`),
        labelled by ``labels`` (indexed by row position)."""
        index = cls()
        index.add_groups(groups, labels)
        return index

    def add_groups(self, groups: dict[int, tuple[np.ndarray, np.ndarray]], labels) -> None:
        """Index hashes already in words (as :meth:`from_groups` takes them), after those indexed."""
        import pyarrow as pa

        if isinstance(labels, pa.ChunkedArray):
            labels = labels.combine_chunks()
        for width, (pos, words) in groups.items():
            if len(pos) == len(labels):  # every row has a hash of this width
                picked = labels
            elif isinstance(labels, pa.Array):
                picked = labels.take(pa.array(pos))
            elif isinstance(labels, np.ndarray):
                picked = labels[pos]
            else:
                picked = [labels[i] for i in pos]
            self._table(width, words.shape[1]).append(words, picked)
            self._n += words.shape[0]

    def __len__(self) -> int:
        return self._n

    def _table(self, width: int, w: int) -> _Table:
        table = self._tables.get(width)
        if table is None:
            table = self._tables[width] = _Table(w)
        return table

    def add(self, h: str, label) -> None:
        self.add_many([h], [label])

    def add_many(self, hashes: Sequence[str | None], labels: Sequence) -> None:
        """Index ``hashes`` (None or empty ones are skipped) under ``labels``."""
        if len(hashes) != len(labels):
            raise ValueError("one label per hash")
        by_len: dict[int, tuple[list[str], list]] = {}
        for h, label in zip(hashes, labels):
            if not h:  # an unhashed row (None or ""): nothing to be near
                continue
            hs, ls = by_len.setdefault(len(h), ([], []))
            hs.append(h)
            ls.append(label)
        for width, (hs, ls) in by_len.items():
            words = hashes_to_words(hs)
            self._table(width, words.shape[1]).append(words, ls)
            self._n += len(hs)

    def search(self, queries: Sequence[str], radius: int) -> list[list[tuple[object, int]]]:
        """For each query, the ``(label, distance)`` of every indexed hash within ``radius``, nearest
        first (equally near: in the order they were added)."""
        if radius < 0:
            raise ValueError(f"radius must be >= 0, got {radius}")
        out: list[list[tuple[object, int]]] = [[] for _ in queries]
        by_len: dict[int, list[int]] = {}
        for qi, q in enumerate(queries):
            if q:
                by_len.setdefault(len(q), []).append(qi)
        for width, qis in by_len.items():
            table = self._tables.get(width)
            if table is None or not table.n:
                continue
            qi, row, d = table.search(hashes_to_words([queries[i] for i in qis]), radius)
            for a, b, dist in zip(qi.tolist(), row.tolist(), d.tolist()):
                out[qis[a]].append((table.label(b), dist))
        return out

    def nearest_many(self, queries: Sequence[str], radius: int) -> list[tuple[object, int] | None]:
        """For each query, the closest indexed ``(label, distance)`` within ``radius``, or None."""
        return [hits[0] if hits else None for hits in self.search(queries, radius)]

    def nearest(self, h: str, radius: int) -> tuple[object, int] | None:
        """The closest indexed hash within ``radius`` of ``h`` as ``(label, distance)``, or None."""
        return self.nearest_many([h], radius)[0]
