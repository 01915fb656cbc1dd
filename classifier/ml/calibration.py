"""What the model's confidence means: temperature, threshold and bands.

Chosen on the validation photos the model never trained on, above all the
currencies held out whole (dataset.HELD_OUT_CURRENCIES): a threshold chosen
on currencies the model trained on is far too lenient for the ones users
bring. Pure NumPy: the serving side reads the results from the model card.
"""

from __future__ import annotations

import numpy as np

from .evaluate import GOALS, HEADLINE, answer_at, group_metrics
from .labels import CLASSES

# Thresholds tried, lowest first.
THRESHOLDS = np.round(np.arange(0.30, 0.976, 0.025), 3)

# What the threshold balances, against the goal of each.
_GOALS = {k: GOALS[k] for k in ("bill_accuracy", "unseen_currency_rejection", "object_rejection")}

# An answer at or above the "sure" band was right this often on validation
# (accepted foreign notes count as wrong).
SURE_PRECISION = 0.98


def with_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax probabilities as they would be with the logits divided by temperature."""
    logits = np.log(np.clip(probs.astype(np.float64), 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def nll(probs: np.ndarray, targets: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes."""
    p = probs[np.arange(len(targets)), targets]
    return float(-np.mean(np.log(np.clip(p, 1e-12, 1.0))))


def fit_temperature(probs: np.ndarray, targets: np.ndarray) -> float:
    """The temperature (0.25..10) that minimises validation NLL: a 1-D search on log T."""
    grid = np.exp(np.linspace(np.log(0.25), np.log(10.0), 161))
    losses = [nll(with_temperature(probs, t), targets) for t in grid]
    best = int(np.argmin(losses))
    # Refine between the neighbours of the best grid point.
    lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    fine = np.exp(np.linspace(np.log(lo), np.log(hi), 41))
    losses = [nll(with_temperature(probs, t), targets) for t in fine]
    return round(float(fine[int(np.argmin(losses))]), 3)


def ece(probs: np.ndarray, targets: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error of the top class: |confidence - accuracy| over bins."""
    conf = probs.max(axis=1)
    right = probs.argmax(axis=1) == targets
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            total += inside.mean() * abs(conf[inside].mean() - right[inside].mean())
    return round(float(total), 4)


def threshold_table(items, probs: np.ndarray) -> list[dict]:
    """The headline figures at every threshold in THRESHOLDS."""
    rows = []
    for t in THRESHOLDS:
        m = group_metrics(items, answer_at(probs, float(t)))
        rows.append(
            {
                "threshold": float(t),
                **{k: m[k] for k in HEADLINE if k in m},
            }
        )
    return rows


def choose_threshold(table: list[dict]) -> float:
    """The threshold that maximises the worst of notes named right, unseen
    currencies refused and objects refused, each as a share of its goal
    (ties: the higher threshold, the safer answer)."""

    def score(row):
        figures = [row[k] / goal for k, goal in _GOALS.items() if row.get(k) is not None]
        return min(figures)

    return max(table, key=lambda r: (score(r), r["threshold"]))["threshold"]


def sure_band(items, probs: np.ndarray, threshold: float) -> float:
    """The lowest confidence at or above threshold from which answers were right
    SURE_PRECISION of the time on validation."""
    labels = np.array([CLASSES.index(i.label) for i in items])
    best = probs.argmax(axis=1)
    conf = probs.max(axis=1)
    is_note = best != CLASSES.index("not_a_bill")
    for t in [threshold, *[float(x) for x in THRESHOLDS if x > threshold], 0.99]:
        answered = is_note & (conf >= t)
        if not answered.any() or (best[answered] == labels[answered]).mean() >= SURE_PRECISION:
            return round(float(t), 3)
    return 0.99
