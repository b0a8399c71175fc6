"""Perceptual hashes of candidates, and the near-duplicate checks done inside one group.

A group is one source's candidates. A candidate is a *degenerate* generation when its hash is
within the threshold of the source's (the model gave the input back), and a *near-duplicate*
when within the threshold of an earlier candidate of its group. Either way the colour signatures
must agree too (within ``colour_threshold`` percent): the same picture in another colour is
another image. A missing colour signature (a row stored before them) leaves the grey hash alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from PIL import Image
from pydantic import BaseModel, Field

from aescot.neardup import colour_apart, colour_hash, colour_match, get_hasher, hamming, near_pairs

# Measured by bench/dedupe_threshold.py (phash, 64 bits, 60 rendered product shots at 256 px):
# perturbed copies of one image (JPEG q70, half-size round trip, blur, noise, +5% brightness)
# stay within 4 bits, a 2% crop within 8 (99.4% of all copies within 6); distinct candidates
# of one source are never closer than 8 bits (synthetic pairs: min 8, p1 12; tiny-diffusers
# background replacements, which keep the product in place: min 8, p50 16; either vs its
# source: min 10). 6 catches the copies and flags no distinct candidate of that measurement.
DEFAULT_THRESHOLD = 6
# Measured by bench/colour_pairs.py (120 rendered products at 256 and at 128 px, 64-bit pHash
# within 6 bits): copies the grey rule merges are 0-13 % apart in colour, recolours 22-100 %, but
# distinct products the 64-bit hash finds grey-near (138 and 134 of 7140) start at 2 %. The fewest
# errors over both sizes (145, against 691 for the grey rule alone) are at 12 and 13 %; 12 keeps
# 817 of the 818 grey-near copies merged and merges no recolour and 2 of 14280 distinct pairs.
DEFAULT_COLOUR_THRESHOLD = 12


class DedupeConfig(BaseModel):
    """How near-duplicates are found."""

    method: Literal["phash", "dhash", "ahash", "whash"] = Field("phash", description="imagehash method")
    hash_size: Literal[8, 16] = Field(8, description="hash side: 8 -> 64-bit hashes, 16 -> 256-bit")
    threshold: int = Field(
        DEFAULT_THRESHOLD,
        ge=0,
        description="Hamming distance at or below which two images are near-duplicates",
    )
    colour_threshold: int = Field(
        DEFAULT_COLOUR_THRESHOLD,
        ge=-1,
        description="a grey-near pair is a near-duplicate only if its colour signatures are at most this "
        "many percent apart (a recoloured candidate is another image); -1: the grey hash alone",
    )
    max_regenerations: int = Field(3, ge=0, description="new seeds tried per candidate slot before giving up")


def hash_image(img: Image.Image, cfg: DedupeConfig) -> str:
    """The configured perceptual hash of ``img`` as hex."""
    return get_hasher(cfg.method, cfg.hash_size).hash(img)


def colour_of(img: Image.Image) -> str:
    """The colour signature of ``img`` (:func:`aescot.neardup.colour_hash`), stored beside its hash."""
    return colour_hash(img)


@dataclass(frozen=True)
class GroupDuplicate:
    """Candidate ``index`` is too close to ``other`` (``None`` = the source) by ``distance`` bits,
    its colour ``colour`` percent from it (None: compared on the grey hash alone)."""

    index: int
    other: int | None
    distance: int
    colour: int | None = None

    @property
    def reason(self) -> str:
        return "near_duplicate_of_source" if self.other is None else "near_duplicate_in_group"


def group_duplicates(
    hashes: Sequence[str],
    source_hash: str | None,
    threshold: int,
    n_fixed: int = 0,
    colours: Sequence[str | None] | None = None,
    source_colour: str | None = None,
    colour_threshold: int = -1,
) -> list[GroupDuplicate]:
    """Which of ``hashes`` must be regenerated: those within ``threshold`` of the source or of an
    earlier kept hash of the group (the earlier one stays) whose colour signatures (``colours``,
    ``source_colour``) are also within ``colour_threshold`` percent (-1, or a signature missing:
    the grey hash alone). The first ``n_fixed`` hashes are already accepted and are never flagged."""
    out: list[GroupDuplicate] = []
    kept: list[int] = list(range(min(n_fixed, len(hashes))))
    col = list(colours) if colours is not None else [None] * len(hashes)

    for i in range(n_fixed, len(hashes)):
        h = hashes[i]
        if (
            source_hash is not None
            and (d := hamming(h, source_hash)) <= threshold
            and colour_match(col[i], source_colour, colour_threshold)
        ):
            out.append(GroupDuplicate(i, None, d, colour_apart(col[i], source_colour, colour_threshold)))
            continue
        near = [(hamming(h, hashes[k]), k) for k in kept]
        near = [t for t in near if t[0] <= threshold and colour_match(col[i], col[t[1]], colour_threshold)]
        if near:
            d, k = min(near)
            out.append(GroupDuplicate(i, k, d, colour_apart(col[i], col[k], colour_threshold)))
        else:
            kept.append(i)
    return out


def near_duplicate_pairs(hashes: Sequence[str], threshold: int) -> list[tuple[int, int, int]]:
    """All ``(i, j, distance)`` with ``i < j`` within ``threshold`` (multi-index hashing at scale)."""
    return near_pairs(list(hashes), threshold)
