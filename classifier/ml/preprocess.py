"""Image bytes -> model input. The one code path training and serving share.

``open_image`` turns untrusted bytes into an upright RGB ``PIL.Image`` (or
raises ``InvalidImage``); ``to_input`` turns such an image into the float32
array the network takes; ``preprocess`` is the two together.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

INPUT_SIZE = 224

# JPEGs are decoded at the smallest 1/2, 1/4 or 1/8 scale that leaves at
# least this many pixels on each side: more than the network's input, and
# enough for the web app's thumbnail, so one decode serves both.
DECODE_SIZE = 320

# Resize policies. "squash" resizes the whole photo to a square, ignoring the
# aspect ratio; "letterbox" fits it inside the square with grey bars; "crop"
# takes the central square. Banknotes are 2.35:1, so a central crop cuts off
# the ends of a note that fills a landscape photo. The shipped model's card
# names the policy it was trained with (chosen by measurement, see
# models/README.md) and the predictor uses that one.
POLICIES = ("squash", "letterbox", "crop")
DEFAULT_POLICY = "squash"

# Formats accepted from users. Restricting Pillow's plugins also keeps
# dangerous decoders (EPS runs Ghostscript) out of reach. The JPEG opener
# also reads MPO, which many phones write for ordinary photos (Pillow has no
# separate MPO opener to name here).
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
# The same list as people write it: the upload page, its errors and the API
# docs all say this, so they cannot disagree with what is accepted.
FORMAT_NAMES = ", ".join({"WEBP": "WebP"}.get(f, f) for f in FORMATS[:-1]) + " or " + FORMATS[-1]

# Largest image we decode: a 48-megapixel phone sensor with room to spare.
# Anything bigger is refused from the header, before any pixel is decoded,
# which is what stops decompression bombs.
MAX_PIXELS = 60_000_000

_LETTERBOX_FILL = (124, 116, 104)  # ImageNet mean colour: neutral to the network


class InvalidImage(ValueError):
    """The bytes are not an image the classifier can read.

    ``str(exc)`` is a sentence fit to show the user who uploaded the file.
    """


def open_image(
    data: bytes,
    *,
    max_pixels: int = MAX_PIXELS,
    draft_size: int | None = DECODE_SIZE,
) -> Image.Image:
    """Decode untrusted bytes into an upright RGB image, or raise InvalidImage."""
    if not data:
        raise InvalidImage("The file is empty.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError:
        raise InvalidImage(
            f"This file is not an image we can read. Please upload a {FORMAT_NAMES} photo."
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidImage(_too_big_message(max_pixels)) from None
    except Exception as exc:  # Pillow raises many types for malformed headers
        raise InvalidImage("This image file is damaged and cannot be read.") from exc

    width, height = img.size
    if width < 1 or height < 1:
        raise InvalidImage("This image has no pixels.")
    if width * height > max_pixels:
        raise InvalidImage(_too_big_message(max_pixels))

    if draft_size and img.format in ("JPEG", "MPO"):
        # Let libjpeg decode at 1/2, 1/4 or 1/8 scale straight from the DCT
        # coefficients: a 12-megapixel photo decodes in a fraction of the time
        # and memory, and is still at least draft_size on its short side.
        img.draft(img.mode, (draft_size, draft_size))

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidImage(_too_big_message(max_pixels)) from None
    except Exception as exc:  # truncated data, bad Huffman tables, zlib errors...
        raise InvalidImage(
            "This image file is incomplete or damaged. Please upload the photo again."
        ) from exc

    # A broken EXIF block should not lose an otherwise good photo.
    with contextlib.suppress(Exception):
        img = ImageOps.exif_transpose(img)
    return to_rgb(img)


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB; transparency is flattened onto white."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        # High bit-depth greyscale: scale to 8 bits rather than clip at 255.
        arr = np.asarray(img, dtype=np.float32)
        top = 65535.0 if mode != "F" and arr.max(initial=0) > 255 else 255.0
        if mode == "F":
            top = max(float(arr.max(initial=0)), 1.0)
        arr = np.clip(arr * (255.0 / top), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def to_input(
    img: Image.Image, *, size: int = INPUT_SIZE, policy: str = DEFAULT_POLICY
) -> np.ndarray:
    """RGB image -> float32 array (size, size, 3) with values 0..255."""
    if policy == "squash":
        out = img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    elif policy == "crop":
        out = ImageOps.fit(img, (size, size), Image.Resampling.BILINEAR)
    elif policy == "letterbox":
        out = ImageOps.pad(img, (size, size), Image.Resampling.BILINEAR, color=_LETTERBOX_FILL)
    else:
        raise ValueError(f"unknown resize policy {policy!r}; expected one of {POLICIES}")
    return np.asarray(out, dtype=np.float32)


def preprocess(
    data: bytes,
    *,
    size: int = INPUT_SIZE,
    policy: str = DEFAULT_POLICY,
    max_pixels: int = MAX_PIXELS,
) -> np.ndarray:
    """Image bytes -> float32 (size, size, 3) model input; raises InvalidImage."""
    return to_input(
        open_image(data, max_pixels=max_pixels, draft_size=max(size, DECODE_SIZE)),
        size=size,
        policy=policy,
    )


def _too_big_message(max_pixels: int) -> str:
    return (
        f"This image has too many pixels (the limit is {max_pixels // 1_000_000} megapixels). "
        "Please upload an ordinary photo."
    )
