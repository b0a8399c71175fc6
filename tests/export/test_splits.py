"""Grouping near-duplicates, stratification, seeds, stickiness and the leak check."""

from __future__ import annotations

from collections import Counter

import pytest

from aescot.export.splits import assign_splits, check_leaks, group_sources, near_duplicate_pairs, stratum

RATIOS = {"train": 0.8, "validation": 0.1, "test": 0.1}


def _h(bits: int) -> str:
    return f"{bits:016x}"


def test_near_duplicate_pairs_match_brute_force():
    import random

    rnd = random.Random(0)
    base = [rnd.getrandbits(64) for _ in range(300)]
    hashes = [_h(b) for b in base] + [_h(b ^ (1 << 3) ^ (1 << 40)) for b in base[:50]]  # 50 two-bit variants
    found = {(i, j) for i, j, _ in near_duplicate_pairs(hashes, 4, block=64)}  # small block: crosses blocks
    brute = {
        (i, j)
        for i in range(len(hashes))
        for j in range(i + 1, len(hashes))
        if (int(hashes[i], 16) ^ int(hashes[j], 16)).bit_count() <= 4
    }
    assert found == brute and len(brute) >= 50


@pytest.mark.parametrize("max_bits", [0, 3, 8, 12])
def test_multi_index_search_finds_exactly_the_brute_force_pairs(max_bits):
    import random

    rnd = random.Random(max_bits)
    hub = rnd.getrandbits(64)
    hashes = [rnd.getrandbits(64) for _ in range(150)]
    hashes += [
        hub ^ (1 << rnd.randrange(64)) ^ (1 << rnd.randrange(64)) for _ in range(100)
    ]  # a dense cluster
    hashes += [h ^ (1 << rnd.randrange(64)) for h in hashes[:40]]  # one-bit variants
    hexes = [_h(h) for h in hashes] + [
        f"{rnd.getrandbits(256):064x}" for _ in range(30)
    ]  # other length: blocked
    found = sorted(near_duplicate_pairs(hexes, max_bits, block=32))
    brute = sorted(
        (i, j, (int(hexes[i], 16) ^ int(hexes[j], 16)).bit_count())
        for i in range(len(hexes))
        for j in range(i + 1, len(hexes))
        if len(hexes[i]) == len(hexes[j]) and (int(hexes[i], 16) ^ int(hexes[j], 16)).bit_count() <= max_bits
    )
    assert found == brute and (max_bits == 0 or brute)


def test_near_duplicates_group_transitively_and_not_across_lengths():
    groups = group_sources(
        {"a": _h(0), "b": _h(0b11), "c": _h(0b1111), "d": _h(2**63 + 2**40 - 1), "e": "0" * 64}, max_bits=2
    )
    assert (
        groups["a"] == groups["b"] == groups["c"] == "a"
    )  # a~b, b~c: one group though a, c differ by 4 bits
    assert groups["d"] == "d" and groups["e"] == "e"


def _items(n_sources: int, per_source: int = 2):
    items, phash = {}, {}
    dims = ["appearance_deformation", "lighting_shadow", "placement_layout", "extension_rationality"]
    for s in range(n_sources):
        src = f"s{s:04d}"
        phash[src] = _h((s * 0x9E3779B97F4A7C15) % 2**64)
        for k in range(per_source):
            items[f"{src}-{k}"] = (src, [dims[s % 4]] if s % 5 else [])
    return items, phash


def test_groups_never_cross_splits_and_strata_are_balanced():
    items, phash = _items(200)
    phash["s0001"] = phash["s0000"][:-1] + ("1" if phash["s0000"][-1] != "1" else "0")  # near-duplicate pair
    plan = assign_splits(items, phash, RATIOS, seed=0, near_duplicate_bits=4)
    assert plan.split_of_source["s0000"] == plan.split_of_source["s0001"]
    counts = plan.counts()
    assert abs(counts["test"] - 40) <= 4 and abs(counts["validation"] - 40) <= 4
    per_stratum = Counter(
        (plan.stratum_of_group[plan.group_of_source[src]], plan.split_of_item[i])
        for i, (src, _) in items.items()
    )
    for st in {k[0] for k in per_stratum}:
        total = sum(v for (s, _), v in per_stratum.items() if s == st)
        assert abs(per_stratum[(st, "test")] - total * 0.1) <= 2, (st, per_stratum)


def test_same_seed_same_split_other_seed_other_split():
    items, phash = _items(100)
    a = assign_splits(items, phash, RATIOS, 7, 4).split_of_item
    b = assign_splits(dict(reversed(list(items.items()))), phash, RATIOS, 7, 4).split_of_item
    c = assign_splits(items, phash, RATIOS, 8, 4).split_of_item
    assert a == b
    assert a != c and Counter(a.values()) == Counter(c.values())


def test_known_sources_keep_their_split_and_bridged_conflicts_go_to_train():
    items, phash = _items(50)
    first = assign_splits(items, phash, RATIOS, 0, 4)
    test_src = next(s for s, sp in first.split_of_source.items() if sp == "test")
    train_src = next(s for s, sp in first.split_of_source.items() if sp == "train")
    more, more_hash = _items(80)
    second = assign_splits(more, more_hash, RATIOS, 0, 4, previous=first.split_of_source)
    assert all(second.split_of_source[s] == sp for s, sp in first.split_of_source.items())
    # a new source that is a near-duplicate of both a test and a train source merges their groups
    bridge = dict(more_hash)
    bridge[test_src] = _h(0b0)
    bridge[train_src] = _h(0b1111)
    bridge["zz-bridge"] = _h(0b11)
    more["zz-bridge-0"] = ("zz-bridge", [])
    third = assign_splits(more, bridge, RATIOS, 0, 2, previous=first.split_of_source)
    assert third.split_of_source[test_src] == third.split_of_source[train_src] == "train"
    assert third.conflicts and test_src in third.new_sources


def test_stratum_is_the_most_frequent_dimension():
    assert stratum([["lighting_shadow"], ["lighting_shadow", "placement_layout"]]) == "lighting_shadow"
    assert stratum([[], []]) == "none"


def test_leak_check_finds_shared_items_sources_and_near_duplicates():
    phash = {"s1": _h(0), "s2": _h(0b1), "s3": _h(2**64 - 1)}
    clean = check_leaks([("i1", "s1", "train"), ("i2", "s2", "train"), ("i3", "s3", "test")], phash, 4)
    assert clean.ok and clean.n_items == 3
    leaky = check_leaks(
        [("i1", "s1", "train"), ("i2", "s2", "test"), ("i3", "s3", "test"), ("i3", "s3", "train")], phash, 4
    )
    assert not leaky.ok
    assert leaky.items_in_several_splits == ["i3"] and leaky.sources_in_several_splits == ["s3"]
    assert [(a, b) for a, _, b, _, _ in leaky.near_duplicates_across_splits] == [("s1", "s2")]
    assert "LEAK" in leaky.summary()
