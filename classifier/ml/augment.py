"""Training-time augmentation, made to look like phone photos of notes.

The data is mostly flat notes filling the frame; people photograph notes in
hands, on tables, at angles, folded, in poor light. Each transform below
stands in for one of those. Pure Pillow + NumPy, so it runs in worker
processes without TensorFlow.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

CANVAS = 320  # working size before the final resize to the network input


def _uniform(rng, lo, hi):
    return float(rng.uniform(lo, hi))


def synthetic_background(rng: np.random.Generator, size: int) -> Image.Image:
    """A plain, gradient or noisy surface: a table, a sheet, a hand-ish tone."""
    kind = rng.integers(3)
    base = rng.integers(0, 256, 3)
    if kind == 0:
        arr = np.broadcast_to(base, (size, size, 3)).astype(np.float32)
    elif kind == 1:
        other = rng.integers(0, 256, 3)
        t = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
        arr = np.broadcast_to(base * (1 - t) + other * t, (size, size, 3)).astype(np.float32)
    else:
        arr = base + rng.normal(0, 25, (size // 8, size // 8, 3))
        small = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        return small.resize((size, size), Image.Resampling.BICUBIC)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def paste_on_background(
    img: Image.Image, rng: np.random.Generator, background: Image.Image | None
) -> Image.Image:
    """The note, rotated by any angle and scaled, somewhere on a background
    (partly out of frame at times: a partial note)."""
    size = CANVAS
    if background is None:
        canvas = synthetic_background(rng, size)
    else:
        canvas = ImageOps.fit(background, (size, size), Image.Resampling.BILINEAR)
    scale = _uniform(rng, 0.45, 1.0) * size / max(img.size)
    note = img.resize(
        (max(1, int(img.width * scale)), max(1, int(img.height * scale))), Image.Resampling.BILINEAR
    ).convert("RGBA")
    note = note.rotate(_uniform(rng, 0, 360), Image.Resampling.BILINEAR, expand=True)
    x = int(rng.integers(-note.width // 5, max(1, size - note.width * 4 // 5)))
    y = int(rng.integers(-note.height // 5, max(1, size - note.height * 4 // 5)))
    canvas = canvas.convert("RGBA")
    canvas.alpha_composite(note, (max(x, 0), max(y, 0)), (max(-x, 0), max(-y, 0)))
    return canvas.convert("RGB")


def rotate_any(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Rotation by any angle; the corners filled with a random flat colour."""
    fill = tuple(int(v) for v in rng.integers(0, 256, 3))
    return img.rotate(_uniform(rng, 0, 360), Image.Resampling.BILINEAR, expand=True, fillcolor=fill)


def perspective(img: Image.Image, rng: np.random.Generator, strength: float = 0.18) -> Image.Image:
    """A photo taken at an angle: move each corner inwards by up to strength."""
    w, h = img.size
    d = [_uniform(rng, 0, strength) for _ in range(8)]
    src = [
        (d[0] * w, d[1] * h),
        (w - d[2] * w, d[3] * h),
        (w - d[4] * w, h - d[5] * h),
        (d[6] * w, h - d[7] * h),
    ]
    dst = [(0, 0), (w, 0), (w, h), (0, h)]
    coeffs = _perspective_coeffs(dst, src)
    return img.transform((w, h), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR)


def _perspective_coeffs(dst, src):
    rows, rhs = [], []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    return np.linalg.solve(
        np.array(rows, dtype=np.float64), np.array(rhs, dtype=np.float64)
    ).tolist()


def random_crop(img: Image.Image, rng: np.random.Generator, min_area: float = 0.3) -> Image.Image:
    """A random part of the photo (a close-up, or only part of a note)."""
    w, h = img.size
    area = _uniform(rng, min_area, 1.0) * w * h
    ratio = math.exp(_uniform(rng, math.log(0.6), math.log(1.7)))
    cw = int(min(w, round(math.sqrt(area * ratio))))
    ch = int(min(h, round(math.sqrt(area / ratio))))
    x = int(rng.integers(0, w - cw + 1))
    y = int(rng.integers(0, h - ch + 1))
    return img.crop((x, y, x + cw, y + ch))


def photometric(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Light and camera: exposure, contrast, colour cast, greyscale, blur, noise."""
    img = ImageEnhance.Brightness(img).enhance(_uniform(rng, 0.55, 1.45))
    img = ImageEnhance.Contrast(img).enhance(_uniform(rng, 0.6, 1.4))
    img = ImageEnhance.Color(img).enhance(_uniform(rng, 0.5, 1.5))
    if rng.random() < 0.5:  # white balance: warm indoor light, cool shade
        arr = np.asarray(img, dtype=np.float32) * rng.uniform(0.85, 1.15, 3)
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if rng.random() < 0.15:  # black-and-white scans and photocopies
        img = ImageOps.grayscale(img).convert("RGB")
    if rng.random() < 0.25:
        img = img.filter(ImageFilter.GaussianBlur(_uniform(rng, 0.4, 2.0)))
    if rng.random() < 0.2:
        arr = np.asarray(img, dtype=np.float32) + rng.normal(
            0, _uniform(rng, 2, 10), (img.height, img.width, 1)
        )
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    return img


def threshold_one_bit(img: Image.Image, level: int) -> Image.Image:
    """Black where the contrast-stretched grey is below level, white elsewhere (as RGB)."""
    grey = ImageOps.autocontrast(ImageOps.grayscale(img), cutoff=1)
    return grey.point(lambda v: 255 if v >= level else 0, mode="1").convert("RGB")


def one_bit(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A 1-bit black-and-white scan or fax: thresholded at a random level, or dithered."""
    if rng.random() < 0.5:
        return threshold_one_bit(img, int(rng.integers(90, 170)))
    grey = ImageOps.autocontrast(ImageOps.grayscale(img), cutoff=1)
    return grey.convert("1").convert("RGB")  # Floyd-Steinberg dithering


def jpeg_noise(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Re-encode at a random JPEG quality (messaging apps, cheap cameras)."""
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=int(rng.integers(20, 90)))
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def augment(
    img: Image.Image,
    rng: np.random.Generator,
    *,
    background: Image.Image | None = None,
    paste: bool = True,
    one_bit_rate: float = 0.08,
) -> Image.Image:
    """One random phone-photo-like variant of an RGB image; ``one_bit_rate`` of
    them end as 1-bit black-and-white scans."""
    pasted = paste and rng.random() < 0.35
    if pasted:
        img = paste_on_background(img, rng, background if rng.random() < 0.6 else None)
    elif rng.random() < 0.5:
        img = rotate_any(img, rng)
    if rng.random() < 0.5:
        img = perspective(img, rng)
    if rng.random() < 0.7:
        # A pasted note may sit near an edge: crop less so that it stays in view.
        img = random_crop(img, rng, min_area=0.6 if pasted else 0.3)
    if rng.random() < 0.5:
        img = ImageOps.mirror(img)
    if rng.random() < 0.15:
        img = ImageOps.flip(img)
    img = photometric(img, rng)
    if rng.random() < one_bit_rate:
        img = one_bit(img, rng)
    if rng.random() < 0.4:
        img = jpeg_noise(img, rng)
    return img
