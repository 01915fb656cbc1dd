"""Linear probes on the frozen backbone: what the data alone does.

``python -m classifier.ml ablate --data DIR --cache DIR`` reuses the
features a training run cached (same settings), pools them through the
frozen ImageNet top of the backbone, and fits a softmax layer on them:
- with only the old negatives (receipts, everyday photos, GBP/EUR notes);
- with every training currency as a negative;
- with the augmented variants too;
each scored on the same validation photos (currencies and US sources held
out whole) at the threshold chosen there, as training chooses it. Then one
fold per currency: the probe trained without that currency, scored on it.
Fine-tuning's own figures are in the model card; this is the baseline.
"""

from __future__ import annotations

import numpy as np

from . import calibration
from .evaluate import HEADLINE, answer_at, group_metrics
from .labels import CLASSES
from .train import Config, build, class_weights, compute_features, load_items

# The only foreign notes the first shipped model trained on.
OLD_CURRENCIES = frozenset({"GBP/EUR"})


def pooled(cfg: Config, feats: np.ndarray) -> np.ndarray:
    """(n, versions, 1280) features after the frozen ImageNet top and global pooling."""
    import keras

    full, _lower, _top = build(cfg)
    pool = keras.Model(full.get_layer(cfg.cut).output, full.get_layer("avg_pool").output)
    n, versions = feats.shape[:2]
    flat = np.asarray(feats, dtype=np.float32).reshape(n * versions, *feats.shape[2:])
    out = pool.predict(flat, batch_size=128, verbose=0)
    return out.reshape(n, versions, -1)


def probe(x: np.ndarray, y: np.ndarray, *, seed: int, epochs: int = 40) -> object:
    """A class-weighted softmax layer fitted on features x."""
    import keras

    keras.utils.set_random_seed(seed)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    model = keras.Sequential(
        [
            keras.Input((x.shape[1],)),
            keras.layers.Normalization(mean=mean, variance=std**2),
            keras.layers.Dense(len(CLASSES), activation="softmax"),
        ]
    )
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    model.fit(
        x,
        y,
        sample_weight=class_weights(y)[y],
        epochs=epochs,
        batch_size=128,
        verbose=0,
    )
    return model


def _rows(train_sel, versions, pool, y):
    """Training rows for the chosen items and feature versions."""
    x = pool[train_sel][:, versions].reshape(-1, pool.shape[2])
    return x, np.repeat(y[train_sel], len(versions))


def run(cfg: Config, log=print) -> dict:
    """Every probe row and the per-currency folds, as a dict (also logged as a table)."""
    items, train_items, val_items = load_items(cfg, log)
    feats = compute_features(cfg, items, train_items, log)
    log("pooling the features through the frozen top")
    pool = pooled(cfg, feats)
    y = np.array([CLASSES.index(i.label) for i in items])
    position = {it.path: k for k, it in enumerate(items)}
    tr = np.array([position[i.path] for i in train_items])
    va = np.array([position[i.path] for i in val_items])
    old = np.array([k for k in tr if items[k].currency in OLD_CURRENCIES | {""}])
    every = list(range(pool.shape[1]))
    settings = {
        "probe, old negatives only": (old, [0]),
        "probe, every training currency": (tr, [0]),
        "probe, + augmented variants": (tr, every),
    }
    out = {"rows": {}, "folds": {}}
    chosen = 0.5
    for name, (sel, versions) in settings.items():
        model = probe(*_rows(sel, versions, pool, y), seed=cfg.seed)
        probs = model.predict(pool[va, 0], verbose=0)
        chosen = calibration.choose_threshold(calibration.threshold_table(val_items, probs))
        m = group_metrics(val_items, answer_at(probs, chosen))
        out["rows"][name] = {"threshold": chosen, **{k: m.get(k) for k in HEADLINE}}
        log(f"{name:34s} threshold {chosen}: " + _line(m))
    # One fold per currency: trained on every other training image (held-out
    # currencies included), scored on the currency it never saw.
    currencies = sorted({i.currency for i in items if i.currency})
    validation = set(va.tolist())
    for currency in currencies:
        inside = np.array([k for k, i in enumerate(items) if i.currency == currency])
        rest = np.array(
            [
                k
                for k, i in enumerate(items)
                if i.currency != currency and (k not in validation or i.currency)
            ]
        )
        model = probe(*_rows(rest, [0], pool, y), seed=cfg.seed, epochs=25)
        probs = model.predict(pool[inside, 0], verbose=0)
        refused = float(np.mean(np.array(answer_at(probs, chosen)) == "unknown"))
        out["folds"][currency] = {"n": len(inside), "refused": round(refused, 4)}
        log(f"fold {currency:8s} n {len(inside):4d}  refused {refused:.3f} at {chosen}")
    return out


def _line(m: dict) -> str:
    return "  ".join(f"{k} {m[k]:.3f}" for k in HEADLINE if m.get(k) is not None)


def markdown(result: dict) -> str:
    """The probe rows and folds as Markdown tables."""
    keys = [k for k in HEADLINE if k != "bw_bill_accuracy"]
    lines = ["| setting | threshold | " + " | ".join(keys) + " |"]
    lines.append("|---" * (len(keys) + 2) + "|")
    for name, row in result["rows"].items():
        cells = [f"{row[k]:.1%}" if row.get(k) is not None else "-" for k in keys]
        lines.append(f"| {name} | {row['threshold']} | " + " | ".join(cells) + " |")
    lines += ["", "| currency left out | photos | refused |", "|---|---|---|"]
    for currency, fold in result["folds"].items():
        lines.append(f"| {currency} | {fold['n']} | {fold['refused']:.1%} |")
    return "\n".join(lines)


__all__ = ["markdown", "run"]
