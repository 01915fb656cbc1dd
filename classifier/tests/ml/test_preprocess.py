import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from classifier.ml import preprocess as pre

from .conftest import encode, photo


def test_preprocess_output_shape_and_range():
    x = pre.preprocess(encode(photo()))
    assert x.shape == (224, 224, 3)
    assert x.dtype == np.float32
    assert x.min() >= 0
    assert x.max() <= 255


@pytest.mark.parametrize("policy", pre.POLICIES)
def test_policies_give_square_input(policy):
    x = pre.preprocess(encode(photo(600, 150)), size=64, policy=policy)
    assert x.shape == (64, 64, 3)


def test_unknown_policy_is_an_error():
    with pytest.raises(ValueError, match="policy"):
        pre.to_input(photo(), policy="stretch-ish")


def test_exif_orientation_is_applied():
    img = photo(300, 200)  # red in the top-left quadrant
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: displays rotated 90 degrees clockwise
    upright = pre.open_image(encode(img, exif=exif.tobytes()), draft_size=None)
    assert upright.size == (200, 300)
    r, g, b = upright.getpixel((150, 50))  # red is now top-right
    assert r > 200
    assert g < 60
    assert b < 60


def test_cmyk_jpeg_becomes_rgb():
    img = pre.open_image(encode(photo().convert("CMYK")))
    assert img.mode == "RGB"


def test_png_alpha_is_flattened_on_white():
    rgba = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    img = pre.open_image(encode(rgba, "PNG"))
    assert img.mode == "RGB"
    assert img.getpixel((5, 5)) == (255, 255, 255)


def test_palette_with_transparency():
    p = Image.new("P", (20, 20), 0)
    p.putpalette([10, 20, 30] * 256)
    img = pre.open_image(encode(p, "PNG", transparency=0))
    assert img.getpixel((0, 0)) == (255, 255, 255)


def test_16_bit_greyscale_is_scaled_not_clipped():
    arr = np.full((16, 16), 32768, dtype=np.uint16)  # mid-grey in 16 bits
    img = pre.open_image(encode(Image.fromarray(arr), "PNG"))
    value = img.getpixel((3, 3))[0]
    assert 120 <= value <= 135


def test_one_pixel_image():
    x = pre.preprocess(encode(Image.new("RGB", (1, 1), (0, 128, 255)), "PNG"))
    assert x.shape == (224, 224, 3)
    assert np.allclose(x[100, 100], (0, 128, 255))


def test_very_wide_image():
    x = pre.preprocess(encode(photo(5000, 20)), policy="letterbox")
    assert x.shape == (224, 224, 3)


def test_greyscale_and_animated_gif_first_frame():
    frames = [Image.new("P", (30, 30), i) for i in (1, 2)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    assert pre.open_image(buf.getvalue()).mode == "RGB"
    assert pre.open_image(encode(Image.new("L", (9, 9), 77), "PNG")).getpixel((1, 1)) == (
        77,
        77,
        77,
    )


def test_large_jpeg_is_decoded_at_reduced_size():
    big = encode(photo(4000, 3000))
    img = pre.open_image(big, draft_size=224)
    # Image.draft decodes at 1/8 scale: 500x375, still >= 224 on each side.
    assert img.size == (500, 375)
    assert pre.open_image(big, draft_size=None).size == (4000, 3000)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"x", "not an image"),
        (b"hello, this is text pretending to be a .jpg\n" * 20, "not an image"),
        (b"%PDF-1.4\n1 0 obj<<>>endobj\n", "not an image"),
        (
            b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            "not an image",
        ),
    ],
)
def test_non_images_raise_invalid_image(data, message):
    with pytest.raises(pre.InvalidImage, match=message):
        pre.preprocess(data)


def test_truncated_jpeg_raises_invalid_image():
    data = encode(photo(800, 600))
    with pytest.raises(pre.InvalidImage, match="incomplete or damaged"):
        pre.open_image(data[: len(data) // 2], draft_size=None)


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind, body):
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100))


@pytest.mark.parametrize("side", [9000, 20000, 60000])
def test_decompression_bomb_is_refused_from_the_header(side):
    with pytest.raises(pre.InvalidImage, match="too many pixels"):
        pre.open_image(_png_header_only(side, side))


def test_pixel_cap_is_an_argument():
    with pytest.raises(pre.InvalidImage, match="too many pixels"):
        pre.open_image(encode(photo(200, 200)), max_pixels=100 * 100)


def test_formats_outside_the_list_are_refused():
    data = encode(Image.new("RGB", (8, 8)), "ICO")
    with pytest.raises(pre.InvalidImage):
        pre.open_image(data)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_every_accepted_format_opens(fmt):
    assert pre.open_image(encode(photo(40, 30).convert("RGB"), fmt)).size == (40, 30)


def test_mpo_phone_photo_opens():
    frames = [photo(64, 48, seed=1), photo(64, 48, seed=2)]
    buf = io.BytesIO()
    frames[0].save(buf, "MPO", save_all=True, append_images=frames[1:])
    assert pre.open_image(buf.getvalue()).size == (64, 48)
