"""Images as ``data:`` URLs for Chat Completions requests, downscaled to a max side."""

from __future__ import annotations

import base64
import io
from typing import Literal

from PIL import Image, UnidentifiedImageError

from aescot.errors import InputError

ImageFormat = Literal["jpeg", "png", "webp"]


class ImageUnreadable(InputError, ValueError):
    """The bytes could not be decoded as an image."""


def image_data_url(data: bytes, max_side: int = 768, fmt: ImageFormat = "jpeg", quality: int = 90) -> str:
    """``data:image/<fmt>;base64,...`` of ``data`` with its longest side at most ``max_side``.

    Images are only ever shrunk (Lanczos), never enlarged. JPEG drops alpha by compositing on
    white. ``max_side <= 0`` keeps the original size.
    """
    try:
        with Image.open(io.BytesIO(data)) as src:
            src.load()
            img = src.copy()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageUnreadable(f"cannot decode image: {exc}") from exc
    if max_side > 0 and max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    if fmt == "jpeg":
        if img.mode in ("RGBA", "LA", "P"):
            rgba = img.convert("RGBA")
            img = Image.new("RGB", rgba.size, (255, 255, 255))
            img.paste(rgba, mask=rgba.getchannel("A"))
        elif img.mode != "RGB":
            img = img.convert("RGB")
    elif img.mode not in ("RGB", "RGBA", "L"):
        img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
    buf = io.BytesIO()
    params = {"quality": quality} if fmt in ("jpeg", "webp") else {"optimize": False}
    img.save(buf, format=fmt.upper(), **params)
    return f"data:image/{fmt};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def decode_data_url(url: str) -> bytes:
    """The bytes inside a ``data:...;base64,`` URL (the inverse of :func:`image_data_url`)."""
    head, sep, payload = url.partition(",")
    if not sep or not head.startswith("data:") or not head.endswith(";base64"):
        raise ValueError(f"not a base64 data URL: {url[:40]!r}")
    return base64.b64decode(payload)
