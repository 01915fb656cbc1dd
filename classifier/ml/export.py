"""Keras model -> the files a release is made of: <version>.keras,
<version>.tflite (float32) and <version>.json (the model card).

Needs TensorFlow; used by training and by tests that build a tiny model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from .predictor import CURRENT_FILE

log = logging.getLogger(__name__)


def to_tflite(model) -> bytes:
    """Convert a Keras model to a float32 LiteRT flatbuffer with an input batch of 1."""
    import keras
    import tensorflow as tf

    # A fixed batch of 1: LiteRT.js (live mode in the browser) refuses a model
    # whose batch dimension is dynamic, and the server predicts one photo at a time.
    pixels = keras.Input(model.inputs[0].shape[1:], batch_size=1, name="pixels")
    fixed = keras.Model(pixels, model(pixels, training=False), name=model.name)
    converter = tf.lite.TFLiteConverter.from_keras_model(fixed)
    # Plain float32: dynamic-range int8 measured slower on x86 with XNNPACK.
    converter.optimizations = []
    return converter.convert()


def export_model(model, out_dir: str | Path, card: dict, *, make_current: bool = True) -> Path:
    """Write .keras, .tflite and the .json card for card["version"]; return the .tflite path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    version = card["version"]
    keras_path = out / f"{version}.keras"
    # Saved without optimizer state: only the weights matter to a reader, and
    # it keeps the file small enough to commit.
    model.save(keras_path, include_optimizer=False)
    tflite_path = out / f"{version}.tflite"
    tflite_path.write_bytes(to_tflite(model))
    (out / f"{version}.json").write_text(json.dumps(card, indent=2) + "\n")
    if make_current:
        (out / CURRENT_FILE).write_text(version + "\n")
    log.info("exported %s to %s", version, out)
    return tflite_path


def tiny_model(input_size: int = 32, n_classes: int = 8, seed: int = 0):
    """A small untrained classifier of the right shape, for tests."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((input_size, input_size, 3), name="pixels")
    x = keras.layers.Rescaling(1.0 / 255.0)(inputs)
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="tiny")


def tiny_card(version: str = "tiny-test", input_size: int = 32, threshold: float = 0.5) -> dict:
    """A minimal model card matching tiny_model()."""
    from .labels import CLASSES
    from .preprocess import DEFAULT_POLICY

    return {
        "version": version,
        "classes": list(CLASSES),
        "input": {"size": input_size, "policy": DEFAULT_POLICY, "pixels": "RGB float 0..255"},
        "threshold": threshold,
    }
