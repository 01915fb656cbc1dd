"""Keras model -> the files a release is made of: <version>.keras,
<version>.tflite (float32) and <version>.json (the model card).

Needs TensorFlow; used by training and by the script that makes the tests'
tiny models (classifier/tests/fixtures/make_tiny_models.py).
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
