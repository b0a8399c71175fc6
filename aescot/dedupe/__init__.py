"""Perceptual-hash dedupe: hashing candidates, exact Hamming-radius search at scale, near-dup reports."""

from aescot.dedupe.hashing import DEFAULT_THRESHOLD, DedupeConfig, group_duplicates, hash_image
from aescot.dedupe.index import HammingIndex, NearPairs, radius_search
from aescot.dedupe.report import DedupeReport, near_duplicate_report

__all__ = [
    "DEFAULT_THRESHOLD",
    "DedupeConfig",
    "DedupeReport",
    "HammingIndex",
    "NearPairs",
    "group_duplicates",
    "hash_image",
    "near_duplicate_report",
    "radius_search",
]
