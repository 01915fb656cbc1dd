"""How an epoch is drawn from the augmented versions of the training images."""

import numpy as np
import pytest

from classifier.ml import augment
from classifier.ml.train import class_weights, epoch_draw

from .conftest import photo

# 100 of a common class, 10 of a scarce one, 30 of another.
LABELS = np.array([0] * 100 + [1] * 10 + [7] * 30)


def test_weights_draws_every_row_once_with_its_class_weight():
    rows, versions, weight = epoch_draw(np.random.default_rng(0), LABELS, 6, "weights")
    assert sorted(rows) == list(range(len(LABELS)))
    assert versions.min() >= 0
    assert versions.max() < 6
    assert np.allclose(weight, class_weights(LABELS)[LABELS])


def test_resample_shows_a_scarce_class_in_distinct_versions():
    rows, versions, weight = epoch_draw(np.random.default_rng(0), LABELS, 6, "resample")
    w = class_weights(LABELS)
    scarce = np.flatnonzero(LABELS == 1)
    for row in scarce:
        drawn = versions[rows == row]
        # w[1] is about 4.7: five draws, each of another version.
        assert len(drawn) == 5
        assert len(set(drawn)) == len(drawn)
    # The common class is drawn once per row, as before.
    assert np.bincount(rows[np.isin(rows, np.flatnonzero(LABELS == 0))]).max() == 1
    # Each class weighs in total what it weighs with "weights".
    counts = np.bincount(LABELS, minlength=8)
    for c in (0, 1, 7):
        assert weight[LABELS[rows] == c].sum() == pytest.approx(w[c] * counts[c])


def test_resample_never_asks_for_more_versions_than_there_are():
    labels = np.array([0] * 1000 + [1] * 2)
    rows, versions, _ = epoch_draw(np.random.default_rng(0), labels, 3, "resample")
    assert np.bincount(rows).max() == 3
    assert versions.max() < 3


def test_unknown_balance_is_refused():
    with pytest.raises(ValueError, match="balance"):
        epoch_draw(np.random.default_rng(0), LABELS, 6, "oversample")


def test_one_bit_rate_sets_the_share_of_black_and_white_variants():
    img = photo(240, 100)

    def share(rate):
        rng = np.random.default_rng(5)
        outs = [augment.augment(img, rng, paste=False, one_bit_rate=rate) for _ in range(60)]
        return np.mean([is_black_and_white(o) for o in outs])

    assert share(0.0) == 0.0
    assert share(1.0) > 0.95
    assert 0.15 < share(0.3) < 0.45


def is_black_and_white(img) -> bool:
    """Nearly every pixel near black or white, even after JPEG noise."""
    grey = np.asarray(img.convert("L"), dtype=int)
    return bool(((grey < 48) | (grey > 207)).mean() > 0.9)
