"""Features of the frozen lower part of the backbone, for training.

Only the top of the backbone is fine-tuned, so what the frozen lower part
makes of an image never changes during training. Each training image is
augmented a few times up front and run once through the lower part, which
is exported to LiteRT for this (about ten times faster than TensorFlow on a
CPU); training then only runs the top. Worker processes use no TensorFlow.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import augment as aug
from . import preprocess as pre

_worker: dict = {}


@dataclass(frozen=True)
class Job:
    index: int
    path: str
    paste: bool


def _init(
    model_bytes: bytes,
    backgrounds: list[str],
    variants: int,
    seed: int,
    size: int,
    policy: str,
    one_bit_rate: float,
):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_bytes, num_threads=1)
    interpreter.allocate_tensors()
    _worker.update(
        interpreter=interpreter,
        input=interpreter.get_input_details()[0]["index"],
        output=interpreter.get_output_details()[0]["index"],
        backgrounds=backgrounds,
        variants=variants,
        seed=seed,
        size=size,
        policy=policy,
        one_bit_rate=one_bit_rate,
    )


def _run(x: np.ndarray) -> np.ndarray:
    it = _worker["interpreter"]
    it.set_tensor(_worker["input"], x[np.newaxis])
    it.invoke()
    return it.get_tensor(_worker["output"])[0].astype(np.float16)


def _features(job: Job) -> tuple[int, np.ndarray]:
    size, policy = _worker["size"], _worker["policy"]
    # Decoded exactly as serving decodes an upload (JPEGs at reduced size).
    draft = max(size, pre.DECODE_SIZE)
    img = pre.open_image(Path(job.path).read_bytes(), draft_size=draft)
    # Variant 0 is the photo as served; the others are augmented.
    out = [_run(pre.to_input(img, size=size, policy=policy))]
    rng = np.random.default_rng([_worker["seed"], job.index])
    backgrounds = _worker["backgrounds"]
    for _ in range(_worker["variants"]):
        background = None
        if backgrounds:
            path = backgrounds[int(rng.integers(len(backgrounds)))]
            background = pre.open_image(Path(path).read_bytes(), draft_size=draft)
        variant = aug.augment(
            img,
            rng,
            background=background,
            paste=job.paste,
            one_bit_rate=_worker["one_bit_rate"],
        )
        out.append(_run(pre.to_input(variant, size=size, policy=policy)))
    return job.index, np.stack(out)


def compute(
    jobs: list[Job],
    model_bytes: bytes,
    *,
    backgrounds: list[str],
    variants: int,
    seed: int,
    size: int,
    policy: str,
    one_bit_rate: float = 0.08,
    processes: int | None = None,
    log=print,
) -> np.ndarray:
    """Features of (1 + variants) versions of each job's image: (n, 1 + variants, ...) float16."""
    processes = processes or os.cpu_count() or 1
    start = time.perf_counter()
    result: np.ndarray | None = None
    # spawn, not fork: the parent has TensorFlow's thread pools running.
    ctx = mp.get_context("spawn")
    initargs = (model_bytes, backgrounds, variants, seed, size, policy, one_bit_rate)
    with ctx.Pool(processes, initializer=_init, initargs=initargs) as pool:
        for done, (index, feats) in enumerate(pool.imap_unordered(_features, jobs, chunksize=8), 1):
            if result is None:
                result = np.empty((len(jobs), *feats.shape), dtype=np.float16)
            result[index] = feats
            if done % 500 == 0 or done == len(jobs):
                rate = done / (time.perf_counter() - start)
                log(f"features: {done}/{len(jobs)} images ({rate:.1f} images/s)")
    if result is None:
        raise ValueError("no images to compute features of")
    return result
