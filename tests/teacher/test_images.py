import io

import pytest
from PIL import Image

from aescot.teacher.images import ImageUnreadable, decode_data_url, image_data_url


def png(size, mode="RGB"):
    buf = io.BytesIO()
    Image.new(mode, size, (10, 200, 30, 128) if mode == "RGBA" else (10, 200, 30)).save(buf, "PNG")
    return buf.getvalue()


def test_downscales_to_max_side_keeping_aspect():
    url = image_data_url(png((1000, 500)), max_side=200)
    assert url.startswith("data:image/jpeg;base64,")
    img = Image.open(io.BytesIO(decode_data_url(url)))
    assert img.size == (200, 100)


def test_never_upscales_and_png_keeps_alpha():
    url = image_data_url(png((64, 32), "RGBA"), max_side=512, fmt="png")
    img = Image.open(io.BytesIO(decode_data_url(url)))
    assert img.size == (64, 32) and img.mode == "RGBA"


def test_jpeg_composites_alpha():
    img = Image.open(io.BytesIO(decode_data_url(image_data_url(png((40, 40), "RGBA"), fmt="jpeg"))))
    assert img.mode == "RGB"


def test_garbage_bytes_raise_clear_error():
    with pytest.raises(ImageUnreadable, match="cannot decode image"):
        image_data_url(b"not an image")
