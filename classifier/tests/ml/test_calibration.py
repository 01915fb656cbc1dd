"""Temperature, threshold and bands, on probabilities made up with known answers."""

import numpy as np
import pytest

from classifier.ml import calibration
from classifier.ml.dataset import Item
from classifier.ml.labels import CLASSES


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_temperature_recovers_how_overconfident_a_model_is():
    rng = np.random.default_rng(0)
    n, k = 4000, len(CLASSES)
    targets = rng.integers(0, k, n)
    # Calibrated logits: sampling the labels from them makes them right on average.
    logits = rng.normal(0, 1.5, (n, k))
    logits[np.arange(n), targets] += 2.0
    probs = _softmax(logits)
    labels = np.array([rng.choice(k, p=p) for p in probs])
    # An overconfident model: the same logits, times 3.
    overconfident = _softmax(logits * 3)
    t = calibration.fit_temperature(overconfident, labels)
    assert 2.6 < t < 3.4
    fixed = calibration.with_temperature(overconfident, t)
    assert calibration.ece(fixed, labels) < calibration.ece(overconfident, labels) / 2
    assert np.allclose(fixed.sum(axis=1), 1, atol=1e-5)
    assert (fixed.argmax(axis=1) == overconfident.argmax(axis=1)).all()  # same answers


def _items(labels, currencies):
    return [
        Item(Path_(f"{k}.jpg"), label, currency=currency)
        for k, (label, currency) in enumerate(zip(labels, currencies, strict=True))
    ]


def Path_(name):  # noqa: N802 - a tiny stand-in for pathlib.Path in Item
    from pathlib import Path

    return Path(name)


def _probs(rows):
    out = np.full((len(rows), len(CLASSES)), 0.0, dtype=np.float32)
    for r, (label, p) in enumerate(rows):
        out[r, CLASSES.index(label)] = p
        rest = [c for c in range(len(CLASSES)) if c != CLASSES.index(label)]
        out[r, rest] = (1 - p) / len(rest)
    return out


def test_threshold_is_chosen_where_the_worse_of_notes_and_currencies_is_best():
    # Notes: right with 0.9, 0.8, 0.7, 0.6; foreign notes taken for $5 with 0.65, 0.55, 0.4.
    rows = [("usd_20", 0.9), ("usd_5", 0.8), ("usd_1", 0.7), ("usd_10", 0.6)]
    rows += [("usd_5", 0.65), ("usd_5", 0.55), ("usd_5", 0.4)]
    labels = ["usd_20", "usd_5", "usd_1", "usd_10", "not_a_bill", "not_a_bill", "not_a_bill"]
    items = _items(labels, ["", "", "", "", "THB", "THB", "MAD"])
    table = calibration.threshold_table(items, _probs(rows))
    by_t = {r["threshold"]: r for r in table}
    assert by_t[0.5]["bill_accuracy"] == 1.0
    assert by_t[0.5]["unseen_currency_rejection"] == pytest.approx(1 / 3, abs=1e-3)
    # From 0.675 to 0.7 three notes in four are named and every foreign note
    # refused; higher thresholds lose notes, lower ones accept a foreign note.
    # Of equal scores the higher threshold is the safer one.
    assert calibration.choose_threshold(table) == 0.7
    assert by_t[0.675]["bill_accuracy"] == by_t[0.7]["bill_accuracy"] == 0.75
    assert by_t[0.7]["unseen_currency_rejection"] == 1.0
    assert by_t[0.725]["bill_accuracy"] == 0.5


def test_sure_band_starts_where_answers_are_right():
    rows = [("usd_20", 0.95), ("usd_5", 0.9), ("usd_1", 0.85), ("usd_10", 0.6)]
    labels = ["usd_20", "usd_5", "usd_1", "usd_100"]  # the 0.6 answer is wrong
    items = _items(labels, ["", "", "", ""])
    sure = calibration.sure_band(items, _probs(rows), 0.5)
    assert 0.6 < sure <= 0.85
