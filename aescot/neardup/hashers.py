"""Perceptual hashes as hex strings: one base class, each hash overrides one method (after imagededup).

``PHash(hash_size=8).hash(img)`` gives 64 bits as 16 hex digits; ``get_hasher("dhash", 16)`` a
256-bit difference hash. Distances and search live in :mod:`aescot.neardup.search`.

These hashes see grey levels only: the same product in another colour hashes alike. The colour
signature (:func:`colour_hash`: a saturation-weighted, softly binned hue histogram) tells those
apart; :func:`colour_match` is the
second half of a near-duplicate decision, applied only to pairs the grey hash already found near.

A pHash moves with the frame: a copy cropped by 2 % per side is 16-62 bits from its original's
256-bit pHash. :func:`crop_hashes` gives the pHashes of an image's central crops (1 %, 2 %, ...
:data:`CROP_PERCENT` % off each side); an image whose crop hash is near another's plain pHash
holds it as a crop, and the crop hash at :data:`CROP_PERCENT` (stored with each source) meets the
crops of a copy cropped from it.
"""

from __future__ import annotations

from collections.abc import Sequence

import imagehash
import numpy as np
from PIL import Image

COLOUR_BINS = 12  # hue bins of the colour signature (30 degrees each), one byte each: 24 hex digits
COLOUR_SIDE = 64  # the colour signature is taken on the image box-reduced to this longest side
COLOURFUL = 0.05  # mean saturation weight at and above which an image's histogram has its full mass
CROP_PERCENT = 5  # crop hashes: central crops of 1 .. CROP_PERCENT % off each side; the last is stored
CROP_SIDE = 512  # crop hashes are taken on a grey copy box-reduced to at least this longest side


def _on_white(img: Image.Image) -> Image.Image:
    """``img`` with its alpha composited on white (transparent pixels count as white)."""
    if img.mode in ("RGBA", "LA", "P"):
        rgba = img.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return img


class Hasher:
    """A perceptual hash of ``hash_size**2`` bits. Subclasses implement :meth:`_hash_algo` only."""

    method: str = ""

    def __init__(self, hash_size: int = 8):
        self.hash_size = hash_size

    def __repr__(self) -> str:
        return f"{type(self).__name__}(hash_size={self.hash_size})"

    def _hash_algo(self, img: Image.Image) -> imagehash.ImageHash:
        raise NotImplementedError

    def hash(self, img: Image.Image) -> str:
        """The hash of ``img`` as hex (``hash_size**2`` bits). Alpha is composited on white first."""
        return str(self._hash_algo(_on_white(img)))


class PHash(Hasher):
    """DCT hash: robust to re-encoding, resizing and small brightness changes (the default)."""

    method = "phash"

    def _hash_algo(self, img: Image.Image) -> imagehash.ImageHash:
        return imagehash.phash(img, hash_size=self.hash_size)


class DHash(Hasher):
    """Difference hash: gradients between neighbouring pixels."""

    method = "dhash"

    def _hash_algo(self, img: Image.Image) -> imagehash.ImageHash:
        return imagehash.dhash(img, hash_size=self.hash_size)


class AHash(Hasher):
    """Average hash: each pixel above or below the mean."""

    method = "ahash"

    def _hash_algo(self, img: Image.Image) -> imagehash.ImageHash:
        return imagehash.average_hash(img, hash_size=self.hash_size)


class WHash(Hasher):
    """Wavelet (Haar) hash."""

    method = "whash"

    def _hash_algo(self, img: Image.Image) -> imagehash.ImageHash:
        return imagehash.whash(img, hash_size=self.hash_size)


HASHERS: dict[str, type[Hasher]] = {h.method: h for h in (PHash, DHash, AHash, WHash)}


def get_hasher(method: str = "phash", hash_size: int = 8) -> Hasher:
    """The hasher called ``method`` (phash, dhash, ahash, whash) for ``hash_size``."""
    try:
        return HASHERS[method](hash_size)
    except KeyError:
        raise ValueError(f"unknown hash method {method!r}; choose one of {', '.join(HASHERS)}") from None


def colour_hash(img: Image.Image) -> str:
    """The colour signature of ``img`` as hex: a hue histogram (:data:`COLOUR_BINS` bins, one byte
    each) of the image composited on white and box-reduced to :data:`COLOUR_SIDE` pixels.

    Each pixel counts by its saturation above 10 % (faded out below a quarter of full value: dark
    pixels have no reliable hue), split linearly between its two nearest hue bins, so no threshold
    flips a bin; the histogram sums to 255 for a colourful image and shrinks towards zero as the
    image greys (below :data:`COLOURFUL` mean weight), so grey images all look alike. Measured
    against ``imagehash.colorhash`` by bench/colour_pairs.py: colorhash's hard saturation and hue
    bin edges put JPEG copies 7 bits apart and some recolours 2 bits apart; here copies stay
    within 13 % and recolours start at 22 %.
    """
    img = _on_white(img).convert("RGB")
    scale = COLOUR_SIDE / max(img.size)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    hsv = np.asarray(img.resize(size, Image.Resampling.BOX).convert("HSV"), dtype=np.float32).reshape(-1, 3)
    hue = hsv[:, 0] * (COLOUR_BINS / 256.0)
    weight = np.clip((hsv[:, 1] / 255.0 - 0.1) / 0.9, 0, 1) * np.clip(hsv[:, 2] / 255.0 * 4, 0, 1)
    lo = np.floor(hue).astype(np.int64)
    frac = hue - lo
    hist = np.bincount(lo % COLOUR_BINS, weight * (1 - frac), COLOUR_BINS) + np.bincount(
        (lo + 1) % COLOUR_BINS, weight * frac, COLOUR_BINS
    )
    mass = float(hist.sum())
    confidence = min(1.0, mass / max(1, weight.shape[0]) / COLOURFUL)
    return np.round(hist / max(mass, 1e-12) * confidence * 255).astype(np.uint8).tobytes().hex()


def colour_difference(a: str | None, b: str | None) -> int | None:
    """How far apart two colour signatures are, in percent (the share of the colour that sits at
    other hues: half the L1 distance of the histograms), or None when either is missing or they
    are of different sizes (not comparable: the decision falls back to the grey hash alone)."""
    if not a or not b or len(a) != len(b):
        return None
    x = np.frombuffer(bytes.fromhex(a), dtype=np.uint8).astype(np.int64)
    y = np.frombuffer(bytes.fromhex(b), dtype=np.uint8).astype(np.int64)
    return round(int(np.abs(x - y).sum()) * 50 / 255)


def colour_match(a: str | None, b: str | None, max_difference: int) -> bool:
    """Whether the colours allow two grey-near images to be one: within ``max_difference`` percent,
    or not comparable (a signature missing: a row stored before colour signatures, the grey rule
    alone), or the colour check off (``max_difference < 0``)."""
    d = colour_apart(a, b, max_difference)
    return d is None or d <= max_difference


def colour_apart(a: str | None, b: str | None, max_difference: int) -> int | None:
    """The colour difference a decision with ``max_difference`` records: :func:`colour_difference`,
    or None when the colour check is off (``max_difference < 0``)."""
    return colour_difference(a, b) if max_difference >= 0 else None


def crop_hashes(img: Image.Image, hasher: Hasher, percents: Sequence[int] = ()) -> list[str]:
    """``hasher``'s hashes of the central crops of ``img`` with each of ``percents`` (default 1 ..
    :data:`CROP_PERCENT`) per cent of the width and of the height cut off each side.

    Taken on a grey copy composited on white and box-reduced by a whole factor while its longest
    side stays at least :data:`CROP_SIDE` (the hash resizes each crop to its small DCT input
    anyway, so a 2048 px photo costs five hashes of a 512 px one).
    A copy cropped ``c`` % per side and then cropped ``a`` % more is about ``c + a`` % off its
    original: the crops of a copy meet the original's crop hash at :data:`CROP_PERCENT`.
    """
    grey = _on_white(img).convert("L")
    factor = max(1, max(grey.size) // CROP_SIDE)
    if factor > 1:
        grey = grey.reduce(factor)
    w, h = grey.size
    out = []
    for p in percents or range(1, CROP_PERCENT + 1):
        dx, dy = round(w * p / 100), round(h * p / 100)
        out.append(hasher.hash(grey.crop((dx, dy, max(dx + 1, w - dx), max(dy + 1, h - dy)))))
    return out
