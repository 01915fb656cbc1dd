import json
import shutil
import threading

import numpy as np
import pytest

from classifier.ml import preprocess as pre
from classifier.ml.labels import CLASSES, NOT_A_BILL, UNKNOWN
from classifier.ml.predictor import ModelError, Predictor, resolve_model

from .conftest import encode, photo


@pytest.fixture(scope="module")
def predictor(tiny_model_dir):
    return Predictor.load(tiny_model_dir)


def test_predict_returns_every_class(predictor):
    result = predictor.predict(encode(photo()))
    assert list(result.probabilities) == list(CLASSES)
    assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    assert result.label == max(result.probabilities, key=result.probabilities.get)
    assert result.confidence == result.probabilities[result.label]
    assert result.model_version == "tiny-test"
    assert result.answer in (*CLASSES, UNKNOWN)
    assert set(result.timings_ms) == {"preprocess", "forward"}


@pytest.mark.tensorflow
def test_matches_keras_on_the_same_input(tiny_model_dir, predictor):
    import keras

    model = keras.models.load_model(tiny_model_dir / "tiny-test.keras", compile=False)
    x = predictor.preprocess(encode(photo(seed=3)))
    expected = model.predict(x[np.newaxis], verbose=0)[0]
    assert np.allclose(predictor.forward(x), expected, atol=1e-5)


def _with_threshold(src, dst, threshold):
    shutil.copytree(src, dst)
    card_path = dst / "tiny-test.json"
    card = json.loads(card_path.read_text())
    card["threshold"] = threshold
    card_path.write_text(json.dumps(card))
    return Predictor.load(dst)


def test_answer_follows_the_threshold(tiny_model_dir, tmp_path):
    data = encode(photo())
    never = _with_threshold(tiny_model_dir, tmp_path / "never", 1.01).predict(data)
    assert never.answer == UNKNOWN
    always = _with_threshold(tiny_model_dir, tmp_path / "always", 0.0).predict(data)
    assert always.answer == (UNKNOWN if always.label == NOT_A_BILL else always.label)


def test_postprocess_not_a_bill_is_unknown(predictor):
    probs = np.zeros(len(CLASSES), dtype=np.float32)
    probs[CLASSES.index(NOT_A_BILL)] = 0.99
    assert predictor.postprocess(probs).answer == UNKNOWN
    probs[:] = 0
    probs[CLASSES.index("usd_20")] = 0.97
    result = predictor.postprocess(probs)
    assert (result.answer, result.label) == ("usd_20", "usd_20")


def test_bad_bytes_raise_invalid_image(predictor):
    with pytest.raises(pre.InvalidImage):
        predictor.predict(b"GIF89a but not really")


def test_concurrent_predictions_agree(predictor):
    inputs = [encode(photo(seed=s)) for s in range(4)]
    expected = [predictor.predict(d).probabilities for d in inputs]
    errors, got = [], {}

    def work(k):
        try:
            for _ in range(10):
                got.setdefault(k, []).append(predictor.predict(inputs[k % 4]).probabilities)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for k, rows in got.items():
        for row in rows:
            assert row == pytest.approx(expected[k % 4], abs=1e-6)


def test_load_a_file_directly(tiny_model_dir):
    assert Predictor.load(tiny_model_dir / "tiny-test.tflite").version == "tiny-test"


def test_missing_current_pointer(tmp_path):
    with pytest.raises(ModelError, match="CURRENT"):
        Predictor.load(tmp_path)


def test_missing_model_file_is_named(tmp_path):
    (tmp_path / "CURRENT").write_text("v9\n")
    with pytest.raises(ModelError, match="v9.tflite"):
        resolve_model(tmp_path)


def test_missing_card(tiny_model_dir, tmp_path):
    shutil.copy(tiny_model_dir / "tiny-test.tflite", tmp_path / "m.tflite")
    with pytest.raises(ModelError, match="m.json"):
        Predictor.load(tmp_path / "m.tflite")


def test_corrupt_model_file(tiny_model_dir, tmp_path):
    shutil.copy(tiny_model_dir / "tiny-test.json", tmp_path / "tiny-test.json")
    (tmp_path / "tiny-test.tflite").write_bytes(b"\0" * 64)
    with pytest.raises(ModelError, match="not a valid LiteRT model"):
        Predictor.load(tmp_path / "tiny-test.tflite")


def test_card_with_wrong_classes(tiny_model_dir, tmp_path):
    dst = tmp_path / "m"
    shutil.copytree(tiny_model_dir, dst)
    card = json.loads((dst / "tiny-test.json").read_text())
    card["classes"] = card["classes"][:-1] + ["euro_5"]
    (dst / "tiny-test.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="classes"):
        Predictor.load(dst)


def test_bands_come_from_the_card():
    from classifier.ml.predictor import ConfidenceBands

    bands = ConfidenceBands.from_card({"threshold": 0.4, "bands": {"sure": 0.9, "unsure": 0.4}})
    assert (bands.sure, bands.unsure) == (0.9, 0.4)
    assert bands.band("usd_50", 0.95) == "sure"
    assert bands.band("usd_50", 0.9) == "sure"
    assert bands.band("usd_50", 0.36 + 0.3) == "unsure"
    assert bands.band("usd_50", 0.36) == "unknown"
    assert bands.band(NOT_A_BILL, 0.99) == "not_a_note"
    assert bands.band(NOT_A_BILL, 0.2) == "unknown"


def test_bands_default_from_the_threshold_alone():
    from classifier.ml.predictor import ConfidenceBands

    assert ConfidenceBands.from_card({"threshold": 0.325}) == ConfidenceBands(
        sure=0.8, unsure=0.325
    )
    # A threshold above the default "sure" leaves no unsure band, never an inverted one.
    assert ConfidenceBands.from_card({"threshold": 0.9}) == ConfidenceBands(sure=0.9, unsure=0.9)


def test_band_disagreeing_with_the_threshold_is_refused(tiny_model_dir, tmp_path):
    shutil.copytree(tiny_model_dir, tmp_path / "m")
    card_path = tmp_path / "m" / "tiny-test.json"
    card = json.loads(card_path.read_text())
    card["bands"] = {"sure": 0.9, "unsure": card["threshold"] + 0.1}
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelError, match="bands.unsure"):
        Predictor.load(tmp_path / "m")


def test_result_carries_its_band(predictor):
    probs = np.full(len(CLASSES), 0.01, dtype=np.float32)
    probs[CLASSES.index("usd_50")] = 0.36 if predictor.threshold <= 0.36 else 0.99
    result = predictor.postprocess(probs)
    assert result.band == predictor.bands.band("usd_50", result.confidence)
    assert result.as_dict()["band"] == result.band
