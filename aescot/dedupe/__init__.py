"""The dedupe stage: candidates hashed and checked in their group, set-wide near-duplicate reports.

Hashes and search come from the near-duplicate engine, :mod:`aescot.neardup`.
"""

from aescot.dedupe.hashing import (
    DEFAULT_COLOUR_THRESHOLD,
    DEFAULT_THRESHOLD,
    DedupeConfig,
    colour_of,
    group_duplicates,
    hash_image,
)
from aescot.dedupe.report import DedupeReport, near_duplicate_report
from aescot.neardup import HammingIndex, NearPairs, radius_search

__all__ = [
    "DEFAULT_COLOUR_THRESHOLD",
    "DEFAULT_THRESHOLD",
    "DedupeConfig",
    "DedupeReport",
    "HammingIndex",
    "NearPairs",
    "colour_of",
    "group_duplicates",
    "hash_image",
    "near_duplicate_report",
    "radius_search",
]
