"""Decode and normalise what users send: EXIF orientation, odd modes, bombs, size limits.

`normalise_image` turns raw bytes into an RGB or RGBA Pillow image plus the list of changes
it made, or raises :class:`ImageRejected` with a short reason code and a readable detail.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError
from pydantic import BaseModel, Field

from aescot.errors import InputError

# We apply our own pixel limit before decoding; Pillow's global one stays as a backstop.
Image.MAX_IMAGE_PIXELS = 200_000_000


class ImageLimits(BaseModel):
    """What an acceptable source image looks like."""

    max_file_bytes: int = Field(64 * 1024 * 1024, gt=0, description="larger files are rejected unread")
    max_pixels: int = Field(64_000_000, gt=0, description="decompression-bomb guard, checked before decoding")
    min_side: int = Field(64, ge=1, description="images with a shorter side are rejected")
    max_side: int = Field(2048, ge=16, description="larger images are downscaled to this longest side")


class ImageRejected(InputError, ValueError):
    """The bytes are not an image aescot can use; ``reason`` is a stable code."""

    def __init__(self, reason: str, detail: str):
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}")


@dataclass
class NormalisedImage:
    image: Image.Image  # RGB or RGBA, 8 bits per channel
    original_format: str | None
    original_mode: str | None
    notes: list[str] = field(default_factory=list)


def _to_8bit(img: Image.Image) -> Image.Image:
    """16/32-bit greyscale to 8-bit L by scaling (Pillow's convert would clip)."""
    arr = np.asarray(img)
    if arr.dtype == np.uint16 or img.mode.startswith("I;16"):
        arr8 = (arr.astype(np.uint32) >> 8).astype(np.uint8)
    else:  # mode I (int32) or F: scale by the observed range
        a = arr.astype(np.float64)
        lo, hi = float(a.min()), float(a.max())
        arr8 = np.zeros(a.shape, np.uint8) if hi <= lo else ((a - lo) * (255.0 / (hi - lo))).astype(np.uint8)
    return Image.fromarray(arr8, mode="L")


def _to_srgb(img: Image.Image, notes: list[str]) -> Image.Image:
    """Colour-manage CMYK (and tagged RGB) to sRGB when an ICC profile is embedded."""
    icc = img.info.get("icc_profile")
    if icc and img.mode in ("CMYK", "RGB"):
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            out = ImageCms.profileToProfile(img, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
            if out is not None:
                notes.append("icc_to_srgb")
                return out
        except (ImageCms.PyCMSError, OSError):
            notes.append("icc_ignored_invalid")
    if img.mode == "CMYK":
        notes.append("cmyk_to_rgb")
        return img.convert("RGB")
    return img


def _normalise_mode(img: Image.Image, notes: list[str]) -> Image.Image:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        notes.append(f"{mode}_to_8bit")
        img, mode = _to_8bit(img), "L"
    if mode == "P":
        has_alpha = "transparency" in img.info or img.palette is not None and img.palette.mode == "RGBA"
        notes.append("palette_to_rgba" if has_alpha else "palette_to_rgb")
        return img.convert("RGBA" if has_alpha else "RGB")
    if mode in ("LA", "PA", "La", "RGBa"):
        notes.append(f"{mode}_to_rgba")
        return img.convert("RGBA")
    if mode in ("1", "L"):
        notes.append(f"{mode}_to_rgb")
        return img.convert("RGB")
    if mode in ("CMYK", "RGB"):
        return _to_srgb(img, notes)
    if mode == "RGBA":
        return img
    if mode in ("YCbCr", "LAB", "HSV", "RGBX"):
        notes.append(f"{mode}_to_rgb")
        return img.convert("RGB")
    raise ImageRejected("unsupported_mode", f"pixel mode {mode!r} is not supported")


def _drop_opaque_alpha(img: Image.Image, notes: list[str]) -> Image.Image:
    """An alpha channel that is fully opaque carries no mask: store RGB."""
    if img.mode == "RGBA" and img.getchannel("A").getextrema()[0] == 255:
        notes.append("opaque_alpha_dropped")
        return img.convert("RGB")
    return img


def normalise_image(data: bytes, limits: ImageLimits | None = None) -> NormalisedImage:
    """Decode ``data`` and return a normalised RGB/RGBA image, or raise :class:`ImageRejected`."""
    limits = limits or ImageLimits()
    if not data:
        raise ImageRejected("empty_file", "the file has zero bytes")
    if len(data) > limits.max_file_bytes:
        raise ImageRejected("file_too_large", f"{len(data):,} bytes > limit {limits.max_file_bytes:,}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            fmt, mode = img.format, img.mode
            w, h = img.size
            if w * h > limits.max_pixels:
                raise ImageRejected(
                    "too_many_pixels",
                    f"{w}x{h} = {w * h:,} pixels > limit {limits.max_pixels:,} (decompression-bomb guard)",
                )
            notes: list[str] = []
            if getattr(img, "n_frames", 1) > 1:
                notes.append(f"animated_{img.n_frames}_frames_first_kept")
                img.seek(0)
            img.load()
    except ImageRejected:
        raise
    except UnidentifiedImageError:
        raise ImageRejected("not_an_image", "the bytes are not an image format Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected("too_many_pixels", str(exc)) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected("corrupt_image", f"decoding failed: {exc}") from None

    orientation = _exif_orientation(img)
    try:
        oriented = ImageOps.exif_transpose(img)
        if orientation not in (None, 1):
            notes.append("exif_rotated")
    except Exception:  # noqa: BLE001 - a broken EXIF block must not lose the image
        oriented = img
        notes.append("exif_unreadable")
    img = _drop_opaque_alpha(_normalise_mode(oriented, notes), notes)

    w, h = img.size
    if min(w, h) < limits.min_side:
        raise ImageRejected("too_small", f"{w}x{h}: the shorter side is below {limits.min_side} px")
    if max(w, h) > limits.max_side:
        scale = limits.max_side / max(w, h)
        img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)
        notes.append(f"downscaled_from_{w}x{h}")
    return NormalisedImage(img, fmt, mode, notes)


def _exif_orientation(img: Image.Image) -> int | None:
    try:
        return img.getexif().get(0x0112)
    except Exception:  # noqa: BLE001
        return None


def encode_png(img: Image.Image) -> bytes:
    """Deterministic PNG bytes (no metadata), so equal pixels give an equal content id."""
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)  # fast; still deterministic
    return buf.getvalue()


def decode_png(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img
