"""A short real training run, end to end: data -> exported model -> Predictor."""

import json
import shutil

import pytest

from classifier.ml import dataset
from classifier.ml.labels import CLASSES
from classifier.ml.predictor import Predictor


@pytest.fixture(scope="module")
def small_dataset(dataset_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("small")
    for label in CLASSES:
        files = sorted((dataset_dir / label).iterdir())
        # A few from each source, so that both splits have every source.
        by_source = {}
        for f in files:
            by_source.setdefault(f.name.rsplit("-", 1)[0], []).append(f)
        (root / label).mkdir()
        for group in by_source.values():
            for f in group[:4]:
                shutil.copy(f, root / label / f.name)
    return root


@pytest.fixture
def corrections(dataset_dir, tmp_path):
    """A reviewed-uploads tree: file names carry no source prefix."""
    root = tmp_path / "corrections"
    for label in ("usd_20", "not_a_bill"):
        (root / label).mkdir(parents=True)
        for k, f in enumerate(sorted((dataset_dir / label).iterdir())[-5:]):
            shutil.copy(f, root / label / f"{k:064x}.jpg")
    return root


@pytest.mark.slow
@pytest.mark.tensorflow
def test_train_exports_a_working_model(small_dataset, corrections, tiny_model_dir, tmp_path):
    pytest.importorskip("tensorflow", reason="training needs requirements-train.txt")
    from classifier.ml.train import Config, train

    out = tmp_path / "models"
    logs = []
    cfg = Config(
        data=str(small_dataset),
        out=str(out),
        version="t1",
        variants=1,
        head_epochs=1,
        finetune_epochs=1,
        processes=2,
        extra=(str(corrections),),
        compare_with=str(tiny_model_dir),
    )
    path = train(cfg, log=logs.append)
    assert path == out / "t1.tflite"
    assert (out / "CURRENT").read_text().strip() == "t1"
    card = json.loads((out / "t1.json").read_text())
    assert card["classes"] == list(CLASSES)
    assert set(card["validation"]) >= {
        "accuracy",
        "bill_accuracy",
        "not_a_bill_rejection",
        "confusion",
    }
    n_files = sum(1 for _ in small_dataset.rglob("*.jpg")) + 10
    assert card["training"]["images_total"] == n_files
    assert card["training"]["images"]["usd_20"]["corrections"] == 5
    assert card["training"]["relabelled"] == dataset.RELABEL
    assert "corrections" in card["validation"]["by_source"]
    assert card["comparison"]["model_version"] == "tiny-test"
    # Calibration: a temperature, and bands that start at the threshold.
    assert card["temperature"] > 0
    assert card["bands"]["unsure"] == card["threshold"] <= card["bands"]["sure"] <= 0.99
    assert "uncalibrated" in card["validation"]
    assert (out / "t1-threshold.png").is_file()
    assert card["comparison"]["n"] == card["validation"]["n"]
    assert any("finetune epoch" in line for line in logs)
    predictor = Predictor.load(out)
    some = next((small_dataset / "usd_5").iterdir())
    assert predictor.predict(some.read_bytes()).model_version == "t1"


@pytest.mark.tensorflow
def test_exported_model_has_a_batch_of_one(tmp_path):
    """LiteRT.js in the browser refuses a dynamic batch dimension."""
    from ai_edge_litert.interpreter import Interpreter

    from classifier.ml.export import to_tflite
    from classifier.tests.fixtures.make_tiny_models import tiny_model

    interpreter = Interpreter(model_content=to_tflite(tiny_model()))
    detail = interpreter.get_input_details()[0]
    assert list(detail["shape_signature"]) == [1, 32, 32, 3]


@pytest.mark.tensorflow
@pytest.mark.parametrize(
    ("cut_layer", "trained", "frozen"),
    [
        ("", "block12_expand_conv", "block11_expand_conv"),
        ("block13_add", "block14_expand_conv", "block13_expand_conv"),
    ],
)
def test_cut_layer_sets_where_fine_tuning_starts(cut_layer, trained, frozen):
    """No cut given: the backbone's own. Another one moves the line between
    the frozen lower part and the fine-tuned top."""
    from classifier.ml.train import Config, build

    cfg = Config(data="", out="", cut_layer=cut_layer)
    assert cfg.cut == (cut_layer or cfg.spec.cut_layer)
    _full, lower, top = build(cfg)
    assert lower.layers[-1].name == cfg.cut
    upper = {layer.name for layer in top.get_layer("upper_graph").layers}
    assert trained in upper
    assert frozen not in upper
    assert frozen in {layer.name for layer in lower.layers}
