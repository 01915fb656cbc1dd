"""The benchmark runs and reports every figure (it is not a timing test)."""

import importlib.util
import json
import subprocess
import sys

import pytest

from classifier.ml import bench

from .conftest import REPO


@pytest.fixture(scope="module")
def figures(tiny_model_dir):
    """One run of `bench --json` on the tiny model, in a fresh process as a user runs it."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "classifier.ml",
            "bench",
            "--json",
            "--repeats",
            "5",
            "--model",
            str(tiny_model_dir),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    return json.loads(out.stdout)


def test_bench_measures_every_figure(figures):
    r = figures
    for key in ("forward_1_thread", "forward_2_threads", "predict_12mp_jpeg", "predict_1mp_jpeg"):
        assert r[key]["p50_ms"] > 0
        assert r[key]["p95_ms"] >= r[key]["p50_ms"]
    assert r["model"] == "tiny-test"
    assert r["load_s"] > 0
    assert r["rss_after_load_mb"] > 10
    # Serving never imports TensorFlow, even where it is installed.
    assert r["tensorflow_imported"] is False


def test_bench_compares_with_keras_only_where_tensorflow_is(figures):
    keras = figures["keras"]
    if importlib.util.find_spec("tensorflow") is None:
        assert "not installed" in keras["skipped"]
    else:  # the tiny model ships its .keras
        assert keras["predict"]["p50_ms"] > 0
        assert figures["keras_predict_vs_litert"] > 0


def test_bench_report_shows_the_figures(figures):
    text = bench.report(figures)
    assert text.startswith("model tiny-test on ")
    p50 = figures["forward_2_threads"]["p50_ms"]
    [row] = [line for line in text.splitlines() if "forward, 2 threads" in line]
    assert f"p50 {p50:8.2f} ms" in row
    assert f"{figures['rss_after_load_mb']:.1f} MB" in text
    assert ("keras: skipped" in text) == ("skipped" in figures["keras"])
