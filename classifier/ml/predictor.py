"""Serving: a LiteRT interpreter behind preprocess -> forward -> postprocess.

    predictor = Predictor.load("models/")
    result = predictor.predict(open("note.jpg", "rb").read())
    result.answer  # "usd_20", or "unknown" when unsure or not a US note

Only ``forward`` touches the runtime. TensorFlow is never imported here.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import preprocess as pre
from .labels import CLASSES, NOT_A_BILL, UNKNOWN

CURRENT_FILE = "CURRENT"

# How sure the app says it is. A note the model names with at least "sure" is
# said plainly; one between "unsure" and "sure" is "might be ..., check it";
# below "unsure" there is no answer. Cards carry them as
# {"bands": {"sure": 0.8, "unsure": <threshold>}}; older cards only have a
# threshold, and get these.
DEFAULT_SURE = 0.8
SURE, UNSURE, NOT_A_NOTE, NO_ANSWER = "sure", "unsure", "not_a_note", "unknown"
BANDS = (SURE, UNSURE, NOT_A_NOTE, NO_ANSWER)


class ModelError(RuntimeError):
    """The model files are missing, unreadable or inconsistent."""


@dataclass(frozen=True)
class ConfidenceBands:
    """The confidences at which an answer is said plainly (sure) or with a caveat (unsure)."""

    sure: float
    unsure: float

    @classmethod
    def from_card(cls, card: dict) -> ConfidenceBands:
        """The card's "bands", or defaults derived from its "threshold"."""
        threshold = float(card.get("threshold", 0.5))
        bands = card.get("bands") if isinstance(card.get("bands"), dict) else {}
        unsure = float(bands.get("unsure", threshold))
        sure = float(bands.get("sure", max(DEFAULT_SURE, unsure)))
        return cls(sure=max(sure, unsure), unsure=unsure)

    def band(self, label: str, confidence: float) -> str:
        """ "sure", "unsure", "not_a_note" (confidently no US note) or "unknown"."""
        if confidence < self.unsure:
            return NO_ANSWER
        if label == NOT_A_BILL:
            return NOT_A_NOTE
        return SURE if confidence >= self.sure else UNSURE


@dataclass(frozen=True)
class Result:
    """What the model said about one image."""

    label: str  # the most probable class, bill or not
    confidence: float  # its probability
    probabilities: dict[str, float]  # every class, in model-output order
    model_version: str
    answer: str  # label if it is a note at or above the threshold, else "unknown"
    threshold: float
    band: str = NO_ANSWER  # see ConfidenceBands.band
    timings_ms: dict[str, float] = field(default_factory=dict, compare=False)

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "answer": self.answer,
            "label": self.label,
            "confidence": round(self.confidence, 6),
            "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()},
            "model_version": self.model_version,
            "threshold": self.threshold,
            "band": self.band,
        }


def resolve_model(path: str | os.PathLike) -> tuple[Path, Path]:
    """A model file or a models/ directory -> (.tflite path, model card path)."""
    path = Path(path)
    if path.is_dir():
        pointer = path / CURRENT_FILE
        if not pointer.is_file():
            raise ModelError(f"{pointer} is missing: it should name the current model version.")
        version = pointer.read_text().strip()
        path = path / f"{version}.tflite"
    if path.suffix != ".tflite":
        raise ModelError(f"{path} is not a .tflite model file.")
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist.")
    card = path.with_suffix(".json")
    if not card.is_file():
        raise ModelError(f"model card {card} does not exist (it goes beside {path.name}).")
    return path, card


def read_card(card_path: Path) -> dict:
    """The model card (JSON) as a dict; ModelError naming the file when it is unreadable."""
    try:
        card = json.loads(Path(card_path).read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"model card {card_path} is unreadable: {exc}") from exc
    if not isinstance(card, dict):
        raise ModelError(f"model card {card_path} is unreadable: not a JSON object")
    return card


class Predictor:
    """One loaded model. Safe to share between threads (calls are serialised)."""

    def __init__(self, interpreter, card: dict, *, path: Path | None = None):
        self._interpreter = interpreter
        self._lock = threading.Lock()
        self.card = card
        self.path = path
        self.version: str = card["version"]
        self.classes: tuple[str, ...] = tuple(card["classes"])
        self.threshold: float = float(card["threshold"])
        self.bands = ConfidenceBands.from_card(card)
        if abs(self.bands.unsure - self.threshold) > 1e-9:
            # The threshold decides whether there is an answer at all; a band
            # that disagreed would call an answered note "unknown", or the reverse.
            raise ModelError(
                f"model {self.version}: bands.unsure {self.bands.unsure} is not its threshold "
                f"{self.threshold}"
            )
        self.input_size: int = int(card["input"]["size"])
        self.policy: str = card["input"].get("policy", pre.DEFAULT_POLICY)
        if set(self.classes) != set(CLASSES):
            raise ModelError(f"model {self.version} has classes {self.classes}, expected {CLASSES}")
        detail = interpreter.get_input_details()[0]
        self._input_index = detail["index"]
        self._output_index = interpreter.get_output_details()[0]["index"]
        expected = (1, self.input_size, self.input_size, 3)
        if tuple(detail["shape"]) != expected:
            raise ModelError(f"model input is {tuple(detail['shape'])}, the card says {expected}")

    @classmethod
    def load(cls, path: str | os.PathLike, *, num_threads: int | None = None) -> Predictor:
        """Load a .tflite file (with its .json card) or the current model of a directory."""
        from ai_edge_litert.interpreter import Interpreter

        model_path, card_path = resolve_model(path)
        card = read_card(card_path)
        if num_threads is None:
            num_threads = min(2, os.cpu_count() or 1)
        try:
            interpreter = Interpreter(model_path=str(model_path), num_threads=num_threads)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"model file {model_path} is not a valid LiteRT model: {exc}") from exc
        try:
            return cls(interpreter, card, path=model_path)
        except KeyError as exc:
            raise ModelError(f"model card {card_path} lacks the field {exc}") from exc

    def preprocess(self, image_bytes: bytes) -> np.ndarray:
        """Image bytes -> one input array; raises InvalidImage."""
        return pre.preprocess(image_bytes, size=self.input_size, policy=self.policy)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """One (size, size, 3) float32 input -> class probabilities."""
        with self._lock:
            self._interpreter.set_tensor(
                self._input_index, x[np.newaxis].astype(np.float32, copy=False)
            )
            self._interpreter.invoke()
            return self._interpreter.get_tensor(self._output_index)[0].copy()

    def postprocess(self, probs: np.ndarray) -> Result:
        """Class probabilities -> Result with the thresholded answer."""
        i = int(np.argmax(probs))
        label, confidence = self.classes[i], float(probs[i])
        answer = label if label != NOT_A_BILL and confidence >= self.threshold else UNKNOWN
        return Result(
            label=label,
            confidence=confidence,
            probabilities={c: float(p) for c, p in zip(self.classes, probs, strict=True)},
            model_version=self.version,
            answer=answer,
            threshold=self.threshold,
            band=self.bands.band(label, confidence),
        )

    def predict(self, image_bytes: bytes) -> Result:
        """Image bytes -> Result; raises preprocess.InvalidImage for unreadable images."""
        t0 = time.perf_counter()
        img = pre.open_image(image_bytes, draft_size=max(self.input_size, pre.DECODE_SIZE))
        return self.predict_image(img, started=t0)

    def predict_image(self, img, *, started: float | None = None) -> Result:
        """An RGB image from preprocess.open_image -> Result.

        For callers that have decoded the photo already (the web app makes a
        thumbnail from the same decode): the second half of ``preprocess``.
        """
        t0 = time.perf_counter() if started is None else started
        x = pre.to_input(img, size=self.input_size, policy=self.policy)
        t1 = time.perf_counter()
        probs = self.forward(x)
        t2 = time.perf_counter()
        result = self.postprocess(probs)
        timings = {"preprocess": (t1 - t0) * 1000, "forward": (t2 - t1) * 1000}
        return Result(**{**result.__dict__, "timings_ms": timings})
