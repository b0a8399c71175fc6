"""Perceptual hashes of candidates, and the near-duplicate checks done inside one group.

A group is one source's candidates. A candidate is a *degenerate* generation when its hash is
within the threshold of the source's (the model gave the input back), and a *near-duplicate*
when within the threshold of an earlier candidate of its group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from PIL import Image
from pydantic import BaseModel, Field

from aescot.neardup import get_hasher, hamming, near_pairs

# Measured by bench/dedupe_threshold.py (phash, 64 bits, 60 rendered product shots at 256 px):
# perturbed copies of one image (JPEG q70, half-size round trip, blur, noise, +5% brightness)
# stay within 4 bits, a 2% crop within 8 (99.4% of all copies within 6); distinct candidates
# of one source are never closer than 8 bits (synthetic pairs: min 8, p1 12; tiny-diffusers
# background replacements, which keep the product in place: min 8, p50 16; either vs its
# source: min 10). 6 catches the copies and flags no distinct candidate of that measurement.
DEFAULT_THRESHOLD = 6


class DedupeConfig(BaseModel):
    """How near-duplicates are found."""

    method: Literal["phash", "dhash", "ahash", "whash"] = Field("phash", description="imagehash method")
    hash_size: Literal[8, 16] = Field(8, description="hash side: 8 -> 64-bit hashes, 16 -> 256-bit")
    threshold: int = Field(
        DEFAULT_THRESHOLD,
        ge=0,
        description="Hamming distance at or below which two images are near-duplicates",
    )
    max_regenerations: int = Field(3, ge=0, description="new seeds tried per candidate slot before giving up")


def hash_image(img: Image.Image, cfg: DedupeConfig) -> str:
    """The configured perceptual hash of ``img`` as hex."""
    return get_hasher(cfg.method, cfg.hash_size).hash(img)


@dataclass(frozen=True)
class GroupDuplicate:
    """Candidate ``index`` is too close to ``other`` (``None`` = the source) by ``distance`` bits."""

    index: int
    other: int | None
    distance: int

    @property
    def reason(self) -> str:
        return "near_duplicate_of_source" if self.other is None else "near_duplicate_in_group"


def group_duplicates(
    hashes: Sequence[str], source_hash: str | None, threshold: int, n_fixed: int = 0
) -> list[GroupDuplicate]:
    """Which of ``hashes`` must be regenerated: those within ``threshold`` of the source or of an
    earlier kept hash of the group (the earlier one stays). The first ``n_fixed`` hashes are
    already accepted and are never flagged."""
    out: list[GroupDuplicate] = []
    kept: list[int] = list(range(min(n_fixed, len(hashes))))
    for i in range(n_fixed, len(hashes)):
        h = hashes[i]
        if source_hash is not None and (d := hamming(h, source_hash)) <= threshold:
            out.append(GroupDuplicate(i, None, d))
            continue
        near = [(hamming(h, hashes[k]), k) for k in kept]
        near = [t for t in near if t[0] <= threshold]
        if near:
            d, k = min(near)
            out.append(GroupDuplicate(i, k, d))
        else:
            kept.append(i)
    return out


def near_duplicate_pairs(hashes: Sequence[str], threshold: int) -> list[tuple[int, int, int]]:
    """All ``(i, j, distance)`` with ``i < j`` within ``threshold`` (multi-index hashing at scale)."""
    return near_pairs(list(hashes), threshold)
