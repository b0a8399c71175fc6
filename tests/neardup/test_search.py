from itertools import pairwise

import numpy as np
import pytest

from aescot.neardup.search import (
    HammingIndex,
    brute_force_search,
    choose_chunks,
    hashes_to_words,
    mih_search,
    radius_search,
)


def _planted(n: int, n_near: int, max_flips: int, words: int = 1, seed: int = 0):
    """Random hashes plus near copies of some of them (1..max_flips random bits flipped)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2**64 - 1, size=(n, words), dtype=np.uint64, endpoint=True)
    src = rng.integers(0, n, size=n_near)
    near = base[src].copy()
    for k in range(n_near):
        for bit in rng.choice(64 * words, size=rng.integers(1, max_flips + 1), replace=False):
            near[k, bit // 64] ^= np.uint64(1) << np.uint64(63 - bit % 64)
    return base, near


@pytest.mark.parametrize("radius", [0, 1, 3, 6, 8, 10, 12])
def test_mih_self_search_equals_brute_force(radius):
    base, near = _planted(4000, 400, 12)
    allh = np.concatenate([base, near])
    expected = brute_force_search(allh, None, radius).as_tuples()
    assert mih_search(allh, None, radius).as_tuples() == expected
    if radius >= 3:  # the planted pairs are found: the comparison is not vacuous
        assert len(expected) > 10


@pytest.mark.parametrize("chunks", [3, 4, 5, 8, 13])
def test_every_chunking_is_exact(chunks):
    base, near = _planted(1500, 300, 9, seed=1)
    allh = np.concatenate([base, near])
    assert (
        mih_search(allh, None, 9, chunks=chunks).as_tuples() == brute_force_search(allh, None, 9).as_tuples()
    )


def test_cross_search_and_wide_hashes_equal_brute_force():
    base, near = _planted(3000, 500, 10, seed=2)
    assert mih_search(near, base, 8).as_tuples() == brute_force_search(near, base, 8).as_tuples()
    wide, wnear = _planted(1000, 200, 30, words=4, seed=3)  # 256-bit hashes (hash_size=16)
    allw = np.concatenate([wide, wnear])
    expected = brute_force_search(allw, None, 24).as_tuples()
    assert len(expected) > 100
    assert mih_search(allw, None, 24).as_tuples() == expected


def test_duplicates_and_clusters():
    # many identical hashes: every pair must come out exactly once
    h = ["0f" * 8] * 30 + ["ff" * 8] * 5
    pairs = radius_search(h, None, 0, method="mih").as_tuples()
    assert len(pairs) == 30 * 29 // 2 + 5 * 4 // 2
    assert pairs == radius_search(h, None, 0, method="brute").as_tuples()


def test_hex_parsing_and_errors():
    words = hashes_to_words(["8000000000000001", "0000000000000000"])
    assert words.tolist() == [[0x8000000000000001], [0]]
    assert radius_search(["8000000000000001", "0000000000000000"], None, 2).as_tuples() == [(0, 1, 2)]
    with pytest.raises(ValueError, match="same length"):
        hashes_to_words(["00" * 8, "00" * 16])
    with pytest.raises(ValueError, match="hex"):
        hashes_to_words(["zz" * 8])
    with pytest.raises(ValueError, match="radius"):
        radius_search(["00" * 8], None, -1)
    assert len(radius_search([], None, 3)) == 0


def test_chunk_choice_keeps_tables_bounded():
    for n in (1_000, 100_000, 1_000_000):
        assert 64 / choose_chunks(64, n, n, 8) <= 24
    with pytest.raises(ValueError, match="chunks"):
        mih_search(np.zeros(4, np.uint64), None, 2, chunks=2)


def test_hamming_index_nearest():
    idx = HammingIndex(["0000000000000000", "00000000000000ff"], ["a", "b"])
    assert idx.nearest("0000000000000003", 4) == ("a", 2)
    assert idx.nearest("00000000000000fe", 4) == ("b", 1)
    assert idx.nearest("ffffffffffffffff", 4) is None
    idx.add("ffffffffffffffff", "c")
    assert idx.search(["fffffffffffffff0"], 4) == [[("c", 4)]]


@pytest.mark.parametrize(("words", "radius"), [(1, 6), (4, 12), (4, 24)])
def test_hamming_index_extended_batch_by_batch_equals_brute_force(monkeypatch, words, radius):
    """Built once from an Arrow column, then extended batch by batch past several sorted levels
    and their merges: every search is exactly brute force over what was added before it."""
    import pyarrow as pa

    from aescot.neardup import search

    monkeypatch.setattr(search, "TAIL_ROWS", 64)  # levels form (and merge) after 64 rows, not 2048
    base, near = _planted(1500, 500, radius + 2, words=words, seed=7)
    allw = np.concatenate([base, near])
    hexes = ["".join(f"{int(x):016x}" for x in row) for row in allw]
    idx = HammingIndex.from_arrow(pa.array(hexes[:200]), pa.array([f"s{i}" for i in range(200)]))
    found = 0
    for start in range(200, len(hexes), 90):
        batch = hexes[start : start + 90]
        ref = brute_force_search(hashes_to_words(batch), allw[:start], radius)
        expected = [[] for _ in batch]
        for q, x, d in sorted(ref.as_tuples(), key=lambda t: (t[0], t[2], t[1])):
            expected[q].append((f"s{x}", d))
        assert idx.search(batch, radius) == expected
        found += len(ref)
        idx.add_many(batch, [f"s{i}" for i in range(start, start + len(batch))])
    levels = idx._tables[16 * words].levels[radius].levels
    assert len(idx) == len(hexes) and len(levels) >= 2 and found > 100
    sizes = [hi - lo for lo, hi, _ in levels]  # merged as a binary counter: each level > 2x the next
    assert all(a > 2 * b for a, b in pairwise(sizes)) and sizes[0] > 64


def test_a_few_queries_are_brute_forced_and_the_levels_sorted_once_many_come(monkeypatch):
    """A small batch against a large index compares by brute force (no sort of the store); once
    more than SORT_AFTER_QUERIES queries came, the rows are sorted into levels. Same answers."""
    from aescot.neardup import search

    monkeypatch.setattr(search, "TAIL_ROWS", 64)
    base, near = _planted(1500, 300, 6, words=1, seed=3)
    allw = np.concatenate([base, near])
    hexes = [f"{int(row[0]):016x}" for row in allw]
    idx = HammingIndex(hexes[:1500], [f"s{i}" for i in range(1500)])
    table = idx._tables[16]
    for start in range(1500, 1800, 30):  # 10 batches of 30 queries, none added
        batch = hexes[start : start + 30]
        ref = brute_force_search(hashes_to_words(batch), allw[:1500], 6)
        expected = [[] for _ in batch]
        for q, x, d in sorted(ref.as_tuples(), key=lambda t: (t[0], t[2], t[1])):
            expected[q].append((f"s{x}", d))
        assert idx.search(batch, 6) == expected
        assert bool(table.levels) == (start - 1500 + 30 > search.SORT_AFTER_QUERIES)


def test_arrow_column_with_nulls_and_two_widths():
    import pyarrow as pa

    col = pa.chunked_array([["0" * 16, None], ["", "0" * 63 + "1", "0" * 15 + "3"]])
    idx = HammingIndex.from_arrow(col, pa.array(["a", "b", "c", "d", "e"]))
    assert len(idx) == 3
    assert idx.nearest_many(["0" * 15 + "1", "0" * 64, "f" * 16], 2) == [("a", 1), ("d", 1), None]
    with pytest.raises(ValueError, match="hex"):
        HammingIndex.from_arrow(pa.array(["zz" * 8]), pa.array(["x"]))


def test_packed_words_round_trip_with_mixed_widths_and_missing_hashes():
    """The stored form of hashes (words + hex width per row) reads back as the parsed hex does,
    for one width (the zero-copy path) and for several widths and missing hashes side by side."""
    import pyarrow as pa

    from aescot.neardup.search import arrow_hashes_to_words, pack_words, unpack_words

    rng = np.random.default_rng(7)

    def hexes(n, digits):
        return ["".join(rng.choice(list("0123456789abcdef"), digits)) for _ in range(n)]

    one = pa.array(hexes(50, 64))
    mixed = pa.array(hexes(3, 64) + [None, ""] + hexes(2, 16) + hexes(2, 9) + hexes(1, 64))
    for column in (one, mixed):
        want = arrow_hashes_to_words(column)
        got = unpack_words(*pack_words(want, len(column)))
        assert sorted(got) == sorted(want)
        for width, (pos, words) in want.items():
            assert got[width][0].tolist() == pos.tolist()
            assert got[width][1].tolist() == words.tolist()
        index = HammingIndex.from_groups(got, list(range(len(column))))
        probe = column[0].as_py()
        assert index.nearest(probe, radius=0) == (0, 0)
