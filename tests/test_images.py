import io

import numpy as np
import pytest
from PIL import Image

from aescot.images import ImageLimits, ImageRejected, encode_png, normalise_image
from aescot.samples import render_product_shot


def png(img, **kw):
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kw)
    return buf.getvalue()


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (200, 100), (255, 255, 255))
    img.paste((255, 0, 0), (0, 0, 20, 100))  # red strip on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes(), quality=95)
    out = normalise_image(buf.getvalue())
    assert out.image.size == (100, 200) and "exif_rotated" in out.notes
    top = np.asarray(out.image)[:10, 50]
    assert top[:, 0].mean() > 200 and top[:, 1].mean() < 80  # the strip is now on top


def test_sixteen_bit_is_scaled_not_clipped():
    arr = (np.linspace(0, 65535, 128 * 128).reshape(128, 128)).astype(np.uint16)
    out = normalise_image(png(Image.fromarray(arr)))
    got = np.asarray(out.image)[..., 0]
    assert out.image.mode == "RGB" and got.min() == 0 and got.max() == 255 and "I;16_to_8bit" in out.notes


def test_palette_with_transparency_keeps_alpha_and_opaque_alpha_is_dropped():
    rgba = Image.new("RGBA", (96, 96), (0, 0, 0, 0))
    rgba.paste((200, 30, 30, 255), (20, 20, 70, 70))
    assert normalise_image(png(rgba.quantize(16))).image.mode == "RGBA"
    opaque = Image.new("RGBA", (96, 96), (10, 20, 30, 255))
    out = normalise_image(png(opaque))
    assert out.image.mode == "RGB" and "opaque_alpha_dropped" in out.notes


def test_cmyk_becomes_rgb():
    buf = io.BytesIO()
    render_product_shot(1, 128)[0].convert("CMYK").save(buf, format="JPEG")
    out = normalise_image(buf.getvalue())
    assert out.image.mode == "RGB" and out.original_mode == "CMYK"


def test_large_images_are_downscaled_and_bombs_refused_before_decoding():
    big = Image.new("RGB", (3000, 1500), (250, 250, 250))
    out = normalise_image(png(big), ImageLimits(max_side=1000))
    assert out.image.size == (1000, 500) and out.notes == ["downscaled_from_3000x1500"]
    with pytest.raises(ImageRejected) as info:
        normalise_image(png(Image.new("1", (9000, 9000))), ImageLimits(max_pixels=10_000_000))
    assert info.value.reason == "too_many_pixels" and "decompression-bomb" in info.value.detail


HALF_PNG = png(Image.new("RGB", (100, 100), (1, 2, 3)))[:60]


@pytest.mark.parametrize(
    "data, reason",
    [(b"", "empty_file"), (HALF_PNG, "corrupt_image"), (b"hello", "not_an_image")],
)
def test_garbage_is_refused_with_a_reason(data, reason):
    with pytest.raises(ImageRejected) as info:
        normalise_image(data)
    assert info.value.reason == reason


def test_file_size_limit():
    with pytest.raises(ImageRejected, match="file_too_large"):
        normalise_image(b"x" * 2000, ImageLimits(max_file_bytes=1000))


def test_png_encoding_is_deterministic():
    img = render_product_shot(3, 96)[0]
    assert encode_png(img) == encode_png(img.copy())
