import json
import subprocess
import sys

import pytest
from PIL import Image

from classifier.ml.evaluate import compute_metrics, evaluate, save_confusion_png
from classifier.ml.labels import UNKNOWN

from .conftest import REPO, encode, photo


def test_metrics_by_hand():
    labels = ["usd_1", "usd_1", "usd_20", "not_a_bill", "not_a_bill"]
    answers = ["usd_1", UNKNOWN, "usd_1", UNKNOWN, "usd_5"]
    m = compute_metrics(labels, answers)
    assert m["n"] == 5
    assert m["accuracy"] == 0.4  # usd_1 right, one not_a_bill rejected
    assert m["bill_accuracy"] == round(1 / 3, 4)
    assert m["not_a_bill_rejection"] == 0.5
    assert m["coverage"] == 0.6
    assert m["per_class"]["usd_1"] == {"precision": 0.5, "recall": 0.5, "n": 2}
    assert m["per_class"]["not_a_bill"]["recall"] == 0.5
    assert m["confusion"]["usd_20"]["usd_1"] == 1
    assert m["confusion"][UNKNOWN]["usd_5"] == 1
    assert sum(sum(r.values()) for r in m["confusion"].values()) == 5


@pytest.fixture
def small_dir(tmp_path):
    for k, label in enumerate(["usd_1", "usd_1", "usd_50", "not_a_bill"]):
        folder = tmp_path / "data" / label
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"src-{k}.jpg").write_bytes(encode(photo(seed=k)))
    return tmp_path / "data"


def test_evaluate_a_directory(small_dir, tiny_model_dir, tmp_path):
    png = tmp_path / "confusion.png"
    m = evaluate(small_dir, tiny_model_dir, confusion_png=png)
    assert m["n"] == 4
    assert m["model_version"] == "tiny-test"
    assert set(m["confusion"]) == {"usd_1", "usd_50", UNKNOWN}
    assert m["per_class"]["usd_1"]["n"] == 2
    assert Image.open(png).size[0] > 300


def test_evaluate_cli_prints_json(small_dir, tiny_model_dir):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "classifier.ml",
            "evaluate",
            str(small_dir),
            "--model",
            str(tiny_model_dir),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    m = json.loads(out.stdout)
    for key in (
        "n",
        "accuracy",
        "bill_accuracy",
        "not_a_bill_rejection",
        "coverage",
        "per_class",
        "confusion",
    ):
        assert key in m


def test_predict_cli_one_line_per_image(tiny_model_dir, tmp_path):
    good = tmp_path / "a.jpg"
    good.write_bytes(encode(photo()))
    bad = tmp_path / "b.jpg"
    bad.write_text("not an image")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "classifier.ml",
            "predict",
            str(good),
            str(bad),
            "--model",
            str(tiny_model_dir),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert out.returncode == 1
    assert rows[0]["image"] == str(good)
    assert rows[0]["model_version"] == "tiny-test"
    assert "not an image" in rows[1]["error"]


def test_confusion_png_draws(tmp_path):
    save_confusion_png({"usd_1": {"usd_1": 3, UNKNOWN: 1}}, tmp_path / "c.png", title="t")
    assert (tmp_path / "c.png").stat().st_size > 0
