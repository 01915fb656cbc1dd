"""Image files made to cost a server time or memory, built in memory for the tests.

Each is small on the wire and legal enough for a decoder to start on it.
"""

from __future__ import annotations

import io
import re
import struct
import zlib

from PIL import Image

_MARKER_AFTER_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7]")


def jpeg_scans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of every scan (SOS header and its entropy-coded data) of a JPEG."""
    scans, pos = [], 2
    while pos < len(data) and data[pos + 1] != 0xD9:
        marker = data[pos + 1]
        (length,) = struct.unpack_from(">H", data, pos + 2)
        end = pos + 2 + length
        if marker == 0xDA:
            end = _MARKER_AFTER_SCAN.search(data, end).start()
            scans.append((pos, end))
        pos = end
    return scans


def scan_bomb(img: Image.Image, scans: int, **save) -> bytes:
    """A progressive JPEG of img whose smallest AC scan is repeated until it has `scans` scans.

    libjpeg runs every scan over every block of the image, so the file costs
    time in proportion to scans x pixels while staying a few KB per scan.
    """
    out = io.BytesIO()
    img.save(out, "JPEG", progressive=True, quality=90, **save)
    data = out.getvalue()
    found = jpeg_scans(data)
    # An AC scan has a spectral start Ss > 0 (the byte after the component list).
    ac = [(s, e) for s, e in found if data[s + 5 + 2 * data[s + 4]] > 0]
    start, end = min(ac, key=lambda se: se[1] - se[0])
    eoi = data.rindex(b"\xff\xd9")
    return data[:eoi] + data[start:end] * (scans - len(found)) + b"\xff\xd9"


def png_by_hand(width: int, height: int, *, bit_depth: int = 8, colour_type: int = 0) -> bytes:
    """A PNG of one flat colour, compressed row by row: never held whole in memory.

    Pillow cannot write 16-bit RGBA; this can (bit_depth=16, colour_type=6).
    """
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    row = b"\0" + b"\x7f" * (width * channels * bit_depth // 8)
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + payload))
        return struct.pack(">I", len(payload)) + kind + payload + crc

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def encoded(img: Image.Image, fmt: str, **save) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **save)
    return out.getvalue()
