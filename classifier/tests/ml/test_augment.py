import numpy as np
from PIL import Image

from classifier.ml import augment

from .conftest import photo


def test_augment_is_seeded_and_varied():
    img = photo(384, 160)
    a = augment.augment(img, np.random.default_rng(1), background=photo(300, 300, seed=9))
    b = augment.augment(img, np.random.default_rng(1), background=photo(300, 300, seed=9))
    c = augment.augment(img, np.random.default_rng(2), background=photo(300, 300, seed=9))
    assert a.mode == "RGB"
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert a.size != c.size or not np.array_equal(np.asarray(a), np.asarray(c))


def test_paste_keeps_the_canvas_size_and_shows_the_note():
    note = Image.new("RGB", (200, 85), (250, 0, 0))
    out = augment.paste_on_background(note, np.random.default_rng(0), None)
    assert out.size == (augment.CANVAS, augment.CANVAS)
    red = np.asarray(out)[..., 0] > 240
    assert red.mean() > 0.05


def test_perspective_and_crop_shapes():
    rng = np.random.default_rng(0)
    img = photo(300, 120)
    assert augment.perspective(img, rng).size == img.size
    w, h = augment.random_crop(img, rng).size
    assert 0 < w <= 300
    assert 0 < h <= 120
