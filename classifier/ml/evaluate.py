"""Score a model on an ImageFolder directory: metrics JSON (+ confusion PNG).

``truth`` for a not_a_bill image is "unknown": the right answer to a photo
of a euro note or a cat is "can't identify this".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .dataset import scan
from .labels import CLASSES, NOT_A_BILL, NOTES, UNKNOWN, display
from .predictor import Predictor

ANSWERS: tuple[str, ...] = (*NOTES, UNKNOWN)

# The figures a model is judged by, in the order tables show them, and the
# goals the project sets for them on photos and currencies never trained on.
HEADLINE: tuple[str, ...] = (
    "bill_accuracy",
    "unseen_currency_rejection",
    "object_rejection",
    "bw_bill_accuracy",
    "not_a_bill_rejection",
    "accuracy",
    "coverage",
)
GOALS: dict[str, float] = {
    "bill_accuracy": 0.95,
    "unseen_currency_rejection": 0.95,
    "object_rejection": 0.99,
    "bw_bill_accuracy": 0.95,
}


def truth_of(label: str) -> str:
    """The right answer for an image of this class."""
    return UNKNOWN if label == NOT_A_BILL else label


def answer_at(probs: np.ndarray, threshold: float, classes: tuple[str, ...] = CLASSES) -> list[str]:
    """Answers for a (n, classes) probability matrix at a given threshold."""
    best = probs.argmax(axis=1)
    conf = probs[np.arange(len(probs)), best]
    out = []
    for i, c in zip(best, conf, strict=True):
        label = classes[int(i)]
        out.append(label if label != NOT_A_BILL and c >= threshold else UNKNOWN)
    return out


def compute_metrics(labels: list[str], answers: list[str]) -> dict:
    """Metrics for true class labels and the model's answers."""
    truths = [truth_of(lab) for lab in labels]
    n = len(truths)
    bills = [i for i, lab in enumerate(labels) if lab != NOT_A_BILL]
    others = [i for i, lab in enumerate(labels) if lab == NOT_A_BILL]
    confusion = {t: dict.fromkeys(ANSWERS, 0) for t in ANSWERS if t in set(truths)}
    for t, a in zip(truths, answers, strict=True):
        confusion[t][a] += 1
    per_class = {}
    for cls in ANSWERS:
        tp = sum(1 for t, a in zip(truths, answers, strict=True) if t == a == cls)
        predicted = sum(1 for a in answers if a == cls)
        actual = sum(1 for t in truths if t == cls)
        if predicted or actual:
            per_class[NOT_A_BILL if cls == UNKNOWN else cls] = {
                "precision": _ratio(tp, predicted),
                "recall": _ratio(tp, actual),
                "n": actual,
            }

    def share(idx, ok):
        return _ratio(sum(1 for i in idx if ok(i)), len(idx))

    return {
        "n": n,
        "accuracy": share(range(n), lambda i: answers[i] == truths[i]),
        "bill_accuracy": share(bills, lambda i: answers[i] == truths[i]),
        "not_a_bill_rejection": share(others, lambda i: answers[i] == UNKNOWN),
        "coverage": share(range(n), lambda i: answers[i] != UNKNOWN),
        "per_class": per_class,
        "confusion": confusion,
    }


def group_metrics(items, answers: list[str]) -> dict:
    """compute_metrics for dataset items, plus refusal of foreign notes (their
    currencies are held out whole in validation) and of everything else that
    is not a note, and the accuracy of each source or currency."""
    labels = [i.label for i in items]
    out = compute_metrics(labels, answers)
    foreign = [k for k, i in enumerate(items) if i.currency]
    objects = [k for k, i in enumerate(items) if i.label == NOT_A_BILL and not i.currency]
    out["unseen_currency_rejection"] = _ratio(
        sum(answers[k] == UNKNOWN for k in foreign), len(foreign)
    )
    out["object_rejection"] = _ratio(sum(answers[k] == UNKNOWN for k in objects), len(objects))
    out["by_source"] = {}
    for group in sorted({i.group for i in items}):
        keep = [k for k, i in enumerate(items) if i.group == group]
        right = sum(answers[k] == truth_of(labels[k]) for k in keep)
        out["by_source"][group] = _ratio(right, len(keep))
    return out


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def predict_items(predictor: Predictor, paths: list[Path]) -> np.ndarray:
    """(n, classes) probabilities, in the predictor's class order."""
    rows = []
    for path in paths:
        result = predictor.predict(path.read_bytes())
        rows.append([result.probabilities[c] for c in predictor.classes])
    return np.asarray(rows, dtype=np.float32)


def evaluate(
    data_dir: str | Path, model: str | Path, *, confusion_png: str | Path | None = None
) -> dict:
    """Score the model on every image under data_dir/<class>/."""
    predictor = Predictor.load(model)
    items = scan(data_dir, predictor.classes)
    probs = predict_items(predictor, [i.path for i in items])
    labels = [i.label for i in items]
    metrics = compute_metrics(labels, answer_at(probs, predictor.threshold, predictor.classes))
    metrics = {"model_version": predictor.version, "threshold": predictor.threshold, **metrics}
    if confusion_png:
        save_confusion_png(metrics["confusion"], confusion_png, title=predictor.version)
    return metrics


def save_confusion_png(confusion: dict, path: str | Path, *, title: str = "") -> None:
    """Draw the confusion matrix (rows truth, columns answer) as a PNG, with Pillow."""
    from PIL import Image, ImageDraw

    rows = list(confusion)
    cols = list(ANSWERS)

    def short(label):  # "$20"; "unknown" stays a word, to fit the cell
        return label if label == UNKNOWN else display(label)

    cell, left, top = 56, 110, 70
    img = Image.new("RGB", (left + cell * len(cols) + 10, top + cell * len(rows) + 10), "white")
    draw = ImageDraw.Draw(img)
    draw.text((10, 8), f"{title}  rows: truth, columns: answer", fill="black")
    for j, c in enumerate(cols):
        draw.text((left + j * cell + 4, top - 20), short(c), fill="black")
    for i, r in enumerate(rows):
        total = max(1, sum(confusion[r].values()))
        draw.text((8, top + i * cell + cell // 2 - 6), short(r), fill="black")
        for j, c in enumerate(cols):
            v = confusion[r].get(c, 0)
            shade = int(255 * (1 - v / total))
            colour = (shade, shade, 255) if r == c else (255, shade, shade)
            x0, y0 = left + j * cell, top + i * cell
            draw.rectangle((x0, y0, x0 + cell - 2, y0 + cell - 2), fill=colour, outline="#999")
            draw.text(
                (x0 + 6, y0 + cell // 2 - 6), str(v), fill="black" if v / total < 0.6 else "white"
            )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def save_tradeoff_png(
    table: list[dict], path: str | Path, *, threshold: float | None = None, title: str = ""
) -> None:
    """Notes named right, foreign notes and objects refused, over the threshold range (PNG)."""
    from PIL import Image, ImageDraw

    lines = (
        ("bill_accuracy", "notes named right", (31, 119, 180)),
        ("unseen_currency_rejection", "unseen currencies refused", (214, 39, 40)),
        ("object_rejection", "objects refused", (44, 160, 44)),
    )
    w, h, left, top, bottom = 640, 400, 60, 50, 40
    plot_w, plot_h = w - left - 20, h - top - bottom
    lo_t, hi_t = table[0]["threshold"], table[-1]["threshold"]
    floor = 0.5  # figures below 50% are off the chart: nobody ships those

    def xy(t, v):
        x = left + (t - lo_t) / max(hi_t - lo_t, 1e-9) * plot_w
        y = top + (1 - (max(v, floor) - floor) / (1 - floor)) * plot_h
        return x, y

    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    draw.text((10, 8), title, fill="black")
    for v in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0):
        _x, y = xy(lo_t, v)
        draw.line((left, y, left + plot_w, y), fill=(225, 225, 225))
        draw.text((8, y - 6), f"{v:.0%}", fill="black")
    for t in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        if lo_t <= t <= hi_t:
            x, _y = xy(t, floor)
            draw.text((x - 8, top + plot_h + 6), f"{t:.1f}", fill="black")
    draw.text((left + plot_w // 2 - 30, h - 18), "threshold", fill="black")
    if threshold is not None:
        x, _y = xy(threshold, floor)
        draw.line((x, top, x, top + plot_h), fill=(120, 120, 120), width=1)
        draw.text((x + 4, top + plot_h - 16), f"chosen {threshold}", fill="black")
    for k, (key, name, colour) in enumerate(lines):
        points = [xy(r["threshold"], r[key]) for r in table if r.get(key) is not None]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        draw.text((left + 10 + k * 190, 26), name, fill=colour)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
