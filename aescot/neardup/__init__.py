"""The near-duplicate engine: perceptual hashes and exact Hamming-radius search, used by ingest
(near-duplicate sources), the dedupe stage (candidates) and the export (split groups, leak check).

* :mod:`aescot.neardup.hashers`: :class:`Hasher` and its family (phash, dhash, ahash, whash), and
  the colour signature that tells a recoloured product from a copy (:func:`colour_hash`,
  :func:`colour_match`), and the hash of the image reframed on its object that catches a cropped,
  padded or shifted copy (:func:`object_hash`);
* :mod:`aescot.neardup.search`: :func:`hamming`, :func:`radius_search` (``method`` = auto, mih,
  brute: swappable, identical results), :func:`near_pairs`, :class:`HammingIndex`.
"""

from aescot.neardup.hashers import (
    COLOUR_BINS,
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
    get_hasher,
    object_frame,
    object_hash,
)
from aescot.neardup.search import HammingIndex, NearPairs, hamming, near_pairs, radius_search

__all__ = [
    "COLOUR_BINS",
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
    "get_hasher",
    "hamming",
    "near_pairs",
    "object_frame",
    "object_hash",
    "radius_search",
]
