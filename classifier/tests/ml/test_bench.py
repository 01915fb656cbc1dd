"""The benchmark runs and reports every figure (it is not a timing test)."""

import json
import subprocess
import sys

from .conftest import REPO


def test_bench_json(tiny_model_dir):
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
    r = json.loads(out.stdout)
    for key in ("forward_1_thread", "forward_2_threads", "predict_12mp_jpeg", "predict_1mp_jpeg"):
        assert r[key]["p50_ms"] > 0
        assert r[key]["p95_ms"] >= r[key]["p50_ms"]
    assert r["load_s"] > 0
    assert r["rss_after_load_mb"] > 10
    assert r["tensorflow_imported"] is False
    assert "predict" in r["keras"] or "skipped" in r["keras"]


def test_bench_text(tiny_model_dir):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "classifier.ml",
            "bench",
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
    assert "forward, 2 threads" in out.stdout
    assert "RSS after load" in out.stdout
