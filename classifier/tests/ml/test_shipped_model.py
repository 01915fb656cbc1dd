"""The model in models/ on real photos from the training data's sources."""

import json

import numpy as np
import pytest

from classifier.ml import dataset
from classifier.ml.evaluate import compute_metrics
from classifier.ml.labels import CLASSES
from classifier.ml.predictor import Predictor


@pytest.fixture(scope="module")
def shipped(shipped_model_dir):
    return Predictor.load(shipped_model_dir)


def test_card_describes_the_model(shipped):
    card = shipped.card
    assert card["classes"] == list(CLASSES)
    assert 0.3 <= card["threshold"] <= 0.95
    for key in ("validation", "training", "data_sources", "architecture", "created"):
        assert key in card
    assert card["validation"]["bill_accuracy"] > 0.8


def test_files_are_small_enough_to_commit(shipped_model_dir):
    version = (shipped_model_dir / "CURRENT").read_text().strip()
    for suffix in (".tflite", ".keras", ".json"):
        path = shipped_model_dir / f"{version}{suffix}"
        assert path.is_file()
        assert path.stat().st_size < 20 * 1024 * 1024


def test_real_photos(shipped, dataset_dir):
    # Validation-split photos, six per class, chosen by file name.
    _train, val = dataset.split(dataset.scan(dataset_dir))
    picked = []
    for label in CLASSES:
        picked += [i for i in val if i.label == label][:6]
    assert len(picked) >= 40
    answers = [shipped.predict(i.path.read_bytes()).answer for i in picked]
    m = compute_metrics([i.label for i in picked], answers)
    print(json.dumps({k: m[k] for k in ("n", "accuracy", "bill_accuracy", "not_a_bill_rejection")}))
    assert m["accuracy"] >= 0.8
    assert m["not_a_bill_rejection"] >= 0.8


@pytest.mark.tensorflow
def test_keras_file_agrees_with_the_tflite(shipped, shipped_model_dir, dataset_dir):
    import keras

    model = keras.models.load_model(shipped_model_dir / f"{shipped.version}.keras", compile=False)
    path = next((dataset_dir / "usd_20").iterdir())
    x = shipped.preprocess(path.read_bytes())
    assert np.allclose(shipped.forward(x), model.predict(x[np.newaxis], verbose=0)[0], atol=1e-4)


def test_card_carries_its_calibration_and_bands(shipped):
    card = shipped.card
    assert card["bands"]["unsure"] == card["threshold"] < card["bands"]["sure"] < 1
    assert card["temperature"] > 0
    validation = card["validation"]
    # Temperature scaling made the confidence mean what it says.
    assert validation["ece"] < validation["uncalibrated"]["ece"]
    for key in ("unseen_currency_rejection", "object_rejection", "bw_bill_accuracy"):
        assert 0 <= validation[key] <= 1


def test_input_is_a_batch_of_one(shipped):
    """The browser's runtime (live mode) refuses a dynamic batch."""
    detail = shipped._interpreter.get_input_details()[0]
    size = shipped.input_size
    assert list(detail["shape_signature"]) == [1, size, size, 3]


def test_previous_version_ships_beside_it_and_is_compared(shipped, shipped_model_dir):
    from classifier.ml.predictor import read_card

    versions = {read_card(p)["version"] for p in shipped_model_dir.glob("*.json")}
    assert shipped.version in versions
    assert shipped.card["comparison"]["model_version"] in versions - {shipped.version}
    # Both scored on the same validation photos.
    assert shipped.card["comparison"]["n"] == shipped.card["validation"]["n"]
