"""Perceptual hashes (imagehash) as hex strings, and their Hamming distance."""

from __future__ import annotations

import imagehash
from PIL import Image

HASHES = {
    "phash": imagehash.phash,
    "dhash": imagehash.dhash,
    "ahash": imagehash.average_hash,
    "whash": imagehash.whash,
}


def phash_hex(img: Image.Image, hash_size: int = 8, method: str = "phash") -> str:
    """The perceptual hash of ``img`` as hex (``hash_size**2`` bits). Alpha is composited on white."""
    if img.mode in ("RGBA", "LA", "P"):
        rgba = img.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        img = flat
    try:
        fn = HASHES[method]
    except KeyError:
        raise ValueError(f"unknown hash method {method!r}; choose one of {', '.join(HASHES)}") from None
    return str(fn(img, hash_size=hash_size))


def hamming(a_hex: str, b_hex: str) -> int:
    """Bits that differ between two hex hashes of equal length."""
    if len(a_hex) != len(b_hex):
        raise ValueError(f"hashes differ in length: {len(a_hex)} vs {len(b_hex)} hex digits")
    return (int(a_hex, 16) ^ int(b_hex, 16)).bit_count()
