"""A corpus of awkward inputs, generated on the fly: what users really send."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from aescot.samples import render_product_shot


def _png(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kw)
    return buf.getvalue()


def make_awkward_corpus(folder: Path) -> dict[str, str | None]:
    """Write the corpus; returns {file name: expected reject reason, or None if it must be accepted}."""
    folder.mkdir(parents=True, exist_ok=True)
    shot, _ = render_product_shot(11, 160)
    expected: dict[str, str | None] = {}

    def write(name: str, data: bytes, reason: str | None) -> None:
        (folder / name).write_bytes(data)
        expected[name] = reason

    good = _png(shot)
    # files are processed in sorted order: the first copy is kept, the second is the duplicate
    write("copy of good.png", good, None)
    write("good.png", good, "exact_duplicate")
    write("truncated.png", good[: len(good) // 2], "corrupt_image")
    write("zero.png", b"", "empty_file")
    write("notes.png", b"this is a text file, not a PNG\n", "not_an_image")

    cmyk = io.BytesIO()
    render_product_shot(12, 160)[0].convert("CMYK").save(cmyk, format="JPEG", quality=90)
    write("cmyk.jpg", cmyk.getvalue(), None)

    grey16 = np.asarray(render_product_shot(13, 160)[0].convert("L"), dtype=np.uint16) * 257
    write("grey16.png", _png(Image.fromarray(grey16)), None)

    # palette image with a transparent background: the alpha gives the mask
    rgba = Image.new("RGBA", (160, 160), (0, 0, 0, 0))
    img14, mask14 = render_product_shot(14, 160)
    rgba.paste(img14, (0, 0), mask14)
    write("palette_alpha.png", _png(rgba.quantize(64)), None)

    # EXIF orientation 6 (rotate 90 CW to display): stored 200x120, shown 120x200
    wide = render_product_shot(15, 200)[0].resize((200, 120))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    wide.save(buf, format="JPEG", exif=exif.tobytes())
    write("rotated_exif.jpg", buf.getvalue(), None)

    write("tiny_1x1.png", _png(Image.new("RGB", (1, 1), (255, 0, 0))), "too_small")

    # a decompression bomb: tiny file, huge declared size (a 1-bit PNG compresses to almost nothing)
    write("huge.png", _png(Image.new("1", (12000, 12000), 1), optimize=True), "too_many_pixels")

    frames = [render_product_shot(16 + i, 120)[0].convert("P") for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    write("animated.gif", buf.getvalue(), None)

    write("ünïcødé 製品 💊.png", _png(render_product_shot(20, 160)[0]), None)

    # the same product re-encoded as JPEG: a near-duplicate of good.png
    buf = io.BytesIO()
    shot.save(buf, format="JPEG", quality=80)
    write("good_reencoded.jpg", buf.getvalue(), "near_duplicate")
    return expected
