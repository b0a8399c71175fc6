"""Perceptual hashes as hex strings: one base class, each hash overrides one method (after imagededup).

``PHash(hash_size=8).hash(img)`` gives 64 bits as 16 hex digits; ``get_hasher("dhash", 16)`` a
256-bit difference hash. Distances and search live in :mod:`aescot.neardup.search`.
"""

from __future__ import annotations

import imagehash
from PIL import Image


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
        if img.mode in ("RGBA", "LA", "P"):
            rgba = img.convert("RGBA")
            flat = Image.new("RGB", rgba.size, (255, 255, 255))
            flat.paste(rgba, mask=rgba.getchannel("A"))
            img = flat
        return str(self._hash_algo(img))


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
