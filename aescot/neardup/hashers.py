"""Perceptual hashes as hex strings: one base class, each hash overrides one method (after imagededup).

``PHash(hash_size=8).hash(img)`` gives 64 bits as 16 hex digits; ``get_hasher("dhash", 16)`` a
256-bit difference hash. Distances and search live in :mod:`aescot.neardup.search`.

These hashes see grey levels only: the same product in another colour hashes alike. The colour
signature (:func:`colour_hash`: a saturation-weighted, softly binned hue histogram) tells those
apart; :func:`colour_match` is the
second half of a near-duplicate decision, applied only to pairs the grey hash already found near.

A pHash moves with the frame: a copy cropped by 2 % per side is 16-62 bits from its original's
256-bit pHash. :func:`object_hash` hashes the image reframed on its object instead (the box two
standard deviations around the centre of whatever stands out from the border's colour), so a copy
cropped, padded, shifted or resized around the same object hashes alike.
"""

from __future__ import annotations

import imagehash
import numpy as np
from PIL import Image

COLOUR_BINS = 12  # hue bins of the colour signature (30 degrees each), one byte each: 24 hex digits
COLOUR_SIDE = 64  # the colour signature is taken on the image box-reduced to this longest side
COLOURFUL = 0.05  # mean saturation weight at and above which an image's histogram has its full mass
OBJECT_SIDE = 128  # the object's frame is found on a copy box-reduced to about this longest side
OBJECT_LIFT = 30  # a pixel weighs its RGB distance (L1, 0-765) to the border's colour minus this
OBJECT_SIGMAS = 2.0  # the frame: the weighted centre +- this many weighted standard deviations per axis
OBJECT_OUT = 256  # the framed copy's longest side at most (never upsampled) before the hash reduces it


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


def object_frame(img: Image.Image) -> tuple[tuple[float, float, float, float], tuple[int, ...]] | None:
    """The box (x0, y0, x1, y1, in pixels of ``img``) framing its object, and the background colour;
    None when nothing stands out from the background (a blank image).

    The background is the median colour of the border pixels; each pixel weighs its RGB distance to
    it less :data:`OBJECT_LIFT` (so JPEG noise and a backdrop's gradient weigh nothing), and the box
    is the weighted centre plus and minus :data:`OBJECT_SIGMAS` weighted standard deviations on each
    axis: soft moments, which a few stray pixels barely move (a mask's bounding box moved up to 8 px
    under JPEG q75, measured). Found on a copy box-reduced to about :data:`OBJECT_SIDE` px.
    """
    return _frame(_on_white(img).convert("RGB"))


def _frame(rgb: Image.Image) -> tuple[tuple[float, float, float, float], tuple[int, ...]] | None:
    """:func:`object_frame` of an RGB image."""
    factor = max(1, max(rgb.size) // OBJECT_SIDE)
    small = rgb.reduce(factor) if factor > 1 else rgb
    a = np.asarray(small, dtype=np.float32)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    bg = np.median(border, axis=0)
    weight = np.clip(np.abs(a - bg).sum(axis=2) - OBJECT_LIFT, 0, None)
    total = float(weight.sum())
    if total <= 0:
        return None
    xs, ys = np.arange(a.shape[1]) + 0.5, np.arange(a.shape[0]) + 0.5
    wx, wy = weight.sum(axis=0), weight.sum(axis=1)
    cx, cy = float(wx @ xs) / total, float(wy @ ys) / total
    sx = max(0.5, float(np.sqrt(wx @ (xs - cx) ** 2 / total)))
    sy = max(0.5, float(np.sqrt(wy @ (ys - cy) ** 2 / total)))
    fx, fy = rgb.width / small.width, rgb.height / small.height
    k = OBJECT_SIGMAS
    box = ((cx - k * sx) * fx, (cy - k * sy) * fy, (cx + k * sx) * fx, (cy + k * sy) * fy)
    return box, tuple(int(v) for v in bg)


def object_hash(img: Image.Image, hasher: Hasher) -> str | None:
    """``hasher``'s hash of ``img`` reframed on its object (:func:`object_frame`; the frame may reach
    past the image, filled with the background colour); None for a blank image.

    A crop that leaves the object whole, padding, a shift or a resize change the frame with the
    object, not the framed picture. Measured (bench/colour_pairs.py): 2 % and 4 % border crops of
    rendered products are a median of 2-4 bits from their original's 256-bit object hash, where the
    plain pHash puts them 16-62 bits apart. The framed copy is at most :data:`OBJECT_OUT` px and never
    upsampled (upsampling small frames to 256 px cost 2-5x the time and caught 2 more of 480 crops).
    """
    rgb = _on_white(img).convert("RGB")
    frame = _frame(rgb)
    if frame is None:
        return None
    box, bg = frame
    side = max(
        16, min(OBJECT_OUT, round(max(box[2] - box[0], box[3] - box[1])))
    )  # never upsampled: see above
    framed = rgb.transform((side, side), Image.Transform.EXTENT, box, Image.Resampling.BILINEAR, fillcolor=bg)
    return hasher.hash(framed)
