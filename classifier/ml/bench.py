"""Speed and memory of the serving path: ``python -m classifier.ml bench``.

Figures are medians and 95th percentiles over repeated runs on this
machine. Model load time and memory are measured in a fresh interpreter
process, so that they show what a web worker pays at start.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .predictor import Predictor, read_card, resolve_model

# What these 2 cores sustain on dense float32 convolution (AVX-512), measured
# with XNNPACK on large matrix products: the speed a network cannot beat.
PEAK_FLOPS = 240e9

_LOAD_SNIPPET = """
import json, resource, sys, time
t0 = time.perf_counter()
from classifier.ml.predictor import Predictor
p = Predictor.load(sys.argv[1])
elapsed = time.perf_counter() - t0
rss = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:"))
tf = "tensorflow" in sys.modules
print(json.dumps({"load_s": elapsed, "rss_mb": rss / 1024, "tensorflow_imported": tf}))
"""


def stats(samples_s: list[float]) -> dict:
    """Median and p95 in milliseconds."""
    ms = np.asarray(samples_s) * 1000
    return {
        "p50_ms": round(float(np.median(ms)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "n": len(ms),
    }


def timed(fn, repeats: int, warmup: int = 5) -> dict:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return stats(samples)


def synthetic_photo(width: int, height: int, seed: int = 0) -> bytes:
    """A photo-like JPEG (smooth shapes plus sensor noise) of the given size."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (width, height), tuple(int(v) for v in rng.integers(60, 200, 3)))
    draw = ImageDraw.Draw(img)
    for _ in range(40):
        x, y = rng.integers(0, width), rng.integers(0, height)
        r = int(rng.integers(width // 20, width // 4))
        draw.ellipse(
            (x - r, y - r // 2, x + r, y + r // 2),
            fill=tuple(int(v) for v in rng.integers(0, 256, 3)),
        )
    img = img.filter(ImageFilter.GaussianBlur(3))
    noise = rng.normal(0, 6, (height, width, 1)).astype(np.float32)
    arr = np.clip(np.asarray(img, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def measure_load(model: str | Path) -> dict:
    """Load time and RSS of a fresh process that loads the predictor."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    runs = []
    for _ in range(3):
        out = subprocess.run(  # noqa: S603 - our own interpreter and snippet
            [sys.executable, "-c", _LOAD_SNIPPET, str(model)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    best = min(runs, key=lambda r: r["load_s"])
    return {
        "load_s": round(best["load_s"], 3),
        "rss_after_load_mb": round(best["rss_mb"], 1),
        "tensorflow_imported": best["tensorflow_imported"],
    }


def measure(model: str | Path, repeats: int = 200) -> dict:
    """All the figures, as a dict."""
    tflite_path, _card = resolve_model(model)
    results: dict = {"model": tflite_path.stem, "cpu_count": os.cpu_count()}
    x = np.random.default_rng(0).uniform(0, 255, (224, 224, 3)).astype(np.float32)
    forward = {}
    for threads in (1, 2):
        p = Predictor.load(model, num_threads=threads)
        if p.input_size != 224:
            x = (
                np.random.default_rng(0)
                .uniform(0, 255, (p.input_size,) * 2 + (3,))
                .astype(np.float32)
            )
        forward[threads] = timed(lambda p=p, x=x: p.forward(x), repeats)
    results["forward_1_thread"] = forward[1]
    results["forward_2_threads"] = forward[2]
    results["forward_speedup_2_vs_1"] = round(forward[1]["p50_ms"] / forward[2]["p50_ms"], 2)
    macs = read_card(_card).get("architecture", {}).get("multiply_adds")
    if macs:
        floor_ms = 2 * float(macs) / PEAK_FLOPS * 1000
        results["forward_floor_ms"] = round(floor_ms, 2)
        results["forward_vs_floor"] = round(forward[2]["p50_ms"] / floor_ms, 2)

    p = Predictor.load(model)
    for name, (w, h) in {
        "predict_12mp_jpeg": (4000, 3000),
        "predict_1mp_jpeg": (1152, 864),
    }.items():
        data = synthetic_photo(w, h)
        results[name] = {
            **timed(lambda d=data: p.predict(d), max(20, repeats // 4)),
            "bytes": len(data),
        }
    results["predict_12mp_vs_forward"] = round(
        results["predict_12mp_jpeg"]["p50_ms"] / forward[2]["p50_ms"], 2
    )

    results.update(measure_load(model))
    results["keras"] = measure_keras(tflite_path, x, repeats=max(20, repeats // 10))
    if results["keras"].get("predict"):
        k = results["keras"]["predict"]["p50_ms"]
        results["keras_predict_vs_litert"] = round(k / forward[2]["p50_ms"], 1)
    return results


def measure_keras(tflite_path: Path, x: np.ndarray, repeats: int) -> dict:
    """The same forward through Keras, when TensorFlow is installed."""
    keras_path = tflite_path.with_suffix(".keras")
    try:
        import keras
    except ImportError:
        return {"skipped": "TensorFlow/Keras not installed (pip install -r requirements-train.txt)"}
    if not keras_path.is_file():
        return {"skipped": f"{keras_path.name} not found"}
    t0 = time.perf_counter()
    model = keras.models.load_model(keras_path, compile=False)
    load_s = time.perf_counter() - t0
    batch = x[np.newaxis]
    return {
        "load_s": round(load_s, 2),
        "predict": timed(lambda: model.predict(batch, verbose=0), repeats, warmup=3),
        "eager_call": timed(lambda: model(batch, training=False), repeats, warmup=3),
    }


def run(model: str | Path, *, as_json: bool = False, repeats: int = 200) -> int:
    """Measure and print; returns the exit status."""
    r = measure(model, repeats)
    print(json.dumps(r, indent=2) if as_json else report(r))
    return 0


def report(r: dict) -> str:
    """The figures of measure() as a table for people."""

    def row(name, s):
        return f"  {name:28s} p50 {s['p50_ms']:8.2f} ms   p95 {s['p95_ms']:8.2f} ms   (n={s['n']})"

    lines = [
        f"model {r['model']} on {r['cpu_count']} CPUs",
        row("forward, 1 thread", r["forward_1_thread"]),
        row("forward, 2 threads", r["forward_2_threads"]),
        f"  {'2 threads vs 1':28s} {r['forward_speedup_2_vs_1']:.2f}x faster",
    ]
    if "forward_floor_ms" in r:
        lines.append(
            f"  {'physical floor':28s} {r['forward_floor_ms']:.2f} ms"
            f"  (2 x multiply-adds at {PEAK_FLOPS / 1e9:.0f} GFLOP/s);"
            f" forward is {r['forward_vs_floor']:.2f}x the floor"
        )
    lines += [
        row("predict(), 12 MP JPEG", r["predict_12mp_jpeg"]),
        row("predict(), 1 MP JPEG", r["predict_1mp_jpeg"]),
        f"  {'12 MP predict / forward':28s} {r['predict_12mp_vs_forward']:.2f}x",
        f"  {'load (fresh process)':28s} {r['load_s']:.3f} s",
        f"  {'RSS after load':28s} {r['rss_after_load_mb']:.1f} MB"
        f"  (TensorFlow imported: {r['tensorflow_imported']})",
    ]
    k = r["keras"]
    if "skipped" in k:
        lines.append(f"  keras: skipped: {k['skipped']}")
    else:
        lines.append(row("keras model.predict", k["predict"]))
        lines.append(row("keras eager model(x)", k["eager_call"]))
        lines.append(f"  {'keras predict / LiteRT':28s} {r['keras_predict_vs_litert']:.1f}x slower")
    return "\n".join(lines)
