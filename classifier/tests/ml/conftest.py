"""Fixtures for the ml library's tests: images made on the fly, and the
shipped model when it is there. (The tiny test model, ``tiny_model_dir``, and
the training images, ``dataset_dir``, come from the root conftest.py.)"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[3]
MODELS = REPO / "models"


def encode(img: Image.Image, fmt: str = "JPEG", **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def photo(width: int = 320, height: int = 200, seed: int = 0) -> Image.Image:
    """An RGB image with structure (so that resizing and rotation show)."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    arr[: height // 2, : width // 2] = (255, 0, 0)  # red top-left quadrant
    return Image.fromarray(arr)


@pytest.fixture(scope="session")
def shipped_model_dir() -> Path:
    if not (MODELS / "CURRENT").is_file():
        pytest.skip("no shipped model: models/CURRENT is missing")
    return MODELS
