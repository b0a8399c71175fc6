"""The near-duplicate engine: perceptual hashes and exact Hamming-radius search, used by ingest
(near-duplicate sources), the dedupe stage (candidates) and the export (split groups, leak check).

* :mod:`aescot.neardup.hashers`: :class:`Hasher` and its family (phash, dhash, ahash, whash), and
  the colour signature that tells a recoloured product from a copy (:func:`colour_hash`,
  :func:`colour_match`), and the hashes of its central crops that catch a cropped copy
  (:func:`crop_hashes`);
* :mod:`aescot.neardup.search`: :func:`hamming`, :func:`radius_search` (``method`` = auto, mih,
  brute: swappable, identical results), :func:`near_pairs`, :class:`HammingIndex`.
"""

from aescot.neardup.hashers import (
    COLOUR_BINS,
    CROP_PERCENT,
    HASHERS,
    AHash,
    DHash,
    Hasher,
    PHash,
    WHash,
    colour_apart,
    colour_difference,
    colour_hash,
    colour_match,
    crop_hashes,
    get_hasher,
)
from aescot.neardup.search import HammingIndex, NearPairs, hamming, near_pairs, radius_search

__all__ = [
    "COLOUR_BINS",
    "CROP_PERCENT",
    "HASHERS",
    "AHash",
    "DHash",
    "HammingIndex",
    "Hasher",
    "NearPairs",
    "PHash",
    "WHash",
    "colour_apart",
    "colour_difference",
    "colour_hash",
    "colour_match",
    "crop_hashes",
    "get_hasher",
    "hamming",
    "near_pairs",
    "radius_search",
]
