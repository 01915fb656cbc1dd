"""Image bytes -> model input. The one code path training and serving share.

``open_image`` turns untrusted bytes into an upright RGB ``PIL.Image`` (or
raises ``InvalidImage``); ``to_input`` turns such an image into the float32
array the network takes; ``preprocess`` is the two together.
"""

from __future__ import annotations

import contextlib
import io
import re
import struct
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

# Formats other than JPEG cannot be decoded at reduced size: every pixel is
# held in memory at up to 4 bytes before it can be shrunk, and a WebP several
# times over (libwebp's canvas, its copy in Pillow). Caps of their own keep
# one such upload under 150 MB of a worker's memory (measured: 16 MP PNG,
# GIF, BMP, TIFF 66-142 MB; 16 MP WebP 295 MB, so WebP gets half). 16
# megapixels is more than any screenshot or PNG export of a phone photo.
MAX_WHOLE_PIXELS = 16_000_000
MAX_WHOLE_PIXELS_BY_FORMAT = {"WEBP": 8_000_000}

# Wider than a panorama: a 60,000,000x1 strip is no photo of a note, and its
# one huge row costs memory out of proportion to its pixels.
MAX_ASPECT_RATIO = 20

# A progressive (or otherwise multi-scan) JPEG is decoded scan after scan over
# every block of the image, even the scans that carry nothing: a few KB of
# repeated empty scans keep a worker busy for minutes. Encoders write 1 to
# 3 scans (baseline) or about 10 (progressive: libjpeg's default is 10 in
# colour, 6 in grey).
MAX_JPEG_SCANS = 64
# libjpeg keeps every DCT coefficient of a multi-scan JPEG (2 bytes each, 64
# per 8x8 block and component) until the last scan: 120 MB for 60 megapixels
# of grey, 360 MB in colour without chroma subsampling. Above this budget a
# multi-scan JPEG is refused; baseline photos are decoded row by row and are
# not affected.
MAX_JPEG_COEFFICIENT_BYTES = 200 * 1024 * 1024

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
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise InvalidImage(
            f"This image is too long and thin (more than {MAX_ASPECT_RATIO} times as wide as "
            "it is high, or the other way round). Please upload an ordinary photo."
        )
    is_jpeg = img.format in ("JPEG", "MPO")
    # A lossless JPEG has no DCT to scale: it is decoded whole like a PNG.
    decoded_whole = _check_jpeg_cost(data) if is_jpeg else True
    if decoded_whole:
        kind = "lossless JPEG" if is_jpeg else img.format
        cap = min(max_pixels, MAX_WHOLE_PIXELS_BY_FORMAT.get(img.format, MAX_WHOLE_PIXELS))
        if width * height > cap:
            raise InvalidImage(
                f"This {kind} image has too many pixels (the limit is "
                f"{cap // 1_000_000} megapixels for a {kind}). "
                "Please upload it as an ordinary JPEG, or smaller."
            )

    if draft_size and is_jpeg:
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

    if draft_size and decoded_whole:
        img = _reduce(img, draft_size)

    # A broken EXIF block should not lose an otherwise good photo.
    with contextlib.suppress(Exception):
        img = ImageOps.exif_transpose(img)
    return to_rgb(img)


# Modes Image.reduce averages correctly (palette indices and 16-bit integers
# it cannot, so those are converted first).
_REDUCIBLE = ("L", "LA", "RGB", "RGBA", "I", "F", "CMYK", "YCbCr")


def _reduce(img: Image.Image, draft_size: int) -> Image.Image:
    """What Image.draft does for JPEGs, for formats decoded whole: shrink by a
    whole factor that keeps both sides at least draft_size, so that the
    conversions after it (and the thumbnail) work on the small image."""
    factor = min(img.size) // draft_size
    if factor < 2:
        return img
    # The orientation is read now: the reduced image is a plain Image that
    # has lost a TIFF's tags.
    orientation = 1
    with contextlib.suppress(Exception):
        orientation = img.getexif().get(0x0112, 1)
    small = (img if img.mode in _REDUCIBLE else to_rgb(img)).reduce(factor)
    if orientation != 1:
        exif = Image.Exif()
        exif[0x0112] = orientation
        small.info["exif"] = exif.tobytes()
    return small


_JPEG_MARKER_IN_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7]")
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_LOSSLESS_SOF = {0xC3, 0xC7, 0xCB, 0xCF}


def _check_jpeg_cost(data: bytes) -> bool:
    """Refuse a JPEG whose scans would cost far more time or memory than a photo's;
    True when it is a lossless JPEG (which Image.draft cannot reduce).

    Walks the marker segments of the first image (skipping APPn blocks, so an
    EXIF thumbnail is not counted) without decoding anything: a few
    milliseconds for 10 MB.
    """
    scans = 0
    coefficient_bytes = 0
    lossless = False
    pos, end = 2, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return lossless  # not where a marker should be: damaged, and Pillow will say so
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == 0xD9:  # end of the (first) image
            break
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", data, pos + 2)
        segment = data[pos + 4 : pos + 2 + length]
        pos += 2 + length
        if marker in _JPEG_SOF and len(segment) >= 6:
            coefficient_bytes = _coefficient_bytes(segment)
            lossless = marker in _JPEG_LOSSLESS_SOF
        elif marker == 0xDA:
            scans += 1
            if scans > MAX_JPEG_SCANS:
                raise InvalidImage(
                    f"This JPEG has more than {MAX_JPEG_SCANS} scans, far more than any camera "
                    "or program writes. Please upload the original photo."
                )
            # The entropy-coded data runs to the next marker other than a
            # stuffed 0xFF00 or a restart marker.
            found = _JPEG_MARKER_IN_SCAN.search(data, pos)
            if found is None:
                break
            pos = found.start()
    if scans > 1 and coefficient_bytes > MAX_JPEG_COEFFICIENT_BYTES:
        raise InvalidImage(
            "This progressive JPEG is too large to decode (it would need "
            f"{coefficient_bytes // (1024 * 1024)} MB of memory). Please upload it as a "
            "baseline JPEG, or smaller."
        )
    return lossless


def _coefficient_bytes(sof: bytes) -> int:
    """The memory libjpeg needs to hold every DCT coefficient of the frame."""
    height, width, count = struct.unpack_from(">HHB", sof, 1)
    components = [sof[6 + 3 * i + 1] for i in range(count) if 6 + 3 * i + 1 < len(sof)]
    if not components:
        return 0
    h_max = max(c >> 4 for c in components) or 1
    v_max = max(c & 15 for c in components) or 1
    total = 0
    for sampling in components:
        h, v = (sampling >> 4) or 1, (sampling & 15) or 1
        blocks_x = -(-width * h // (h_max * 8))
        blocks_y = -(-height * v // (v_max * 8))
        total += blocks_x * blocks_y * 64 * 2
    return total


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB; transparency is flattened onto white."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        # 16-bit greyscale: scale to 8 bits rather than clip at 255, in
        # integers (a float32 copy would double the memory of a big image).
        arr = np.asarray(img)
        if arr.max(initial=0) > 255:
            arr = arr // 257
        return Image.fromarray(arr.astype(np.uint8), "L").convert("RGB")
    if mode in ("I", "F"):
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
