"""How far to trust a model's answer: its temperature, the score that says "unknown", and the
averaging of test-time views, applied the same way by every command that uses a model.

`evaluation/calibrate.py` fits these (`transferlearn calibrate`, `eval --calibrate`) and stores them in
the checkpoint as the plain dict `ckpt["calibration"]`; `inference/` (predict, serve, export) applies
them. They live here, below both, because evaluation/ and inference/ may not import each other.

Every score is a function of the logits alone, so the onnxruntime path, which returns logits, computes
the very numbers the PyTorch path does. Higher always means "more like the training data":

    msp       max softmax probability (of the calibrated probabilities), Hendrycks & Gimpel 2017
    energy    logsumexp of the calibrated logits, the negative free energy of Liu et al. 2020
    maxlogit  the largest calibrated logit, Hendrycks et al. 2022
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from ..errors import TransferlearnError

SCORES = ("msp", "energy", "maxlogit")
UNKNOWN = "unknown"  # the label of a rejected image
DEFAULT_SCORE = "energy"
DEFAULT_COVERAGE = 0.95


class CalibrationError(TransferlearnError, ValueError):
    """What --reject auto or a calibration needs is missing; the message says what to run."""
    hint = "`transferlearn calibrate RUN` fits the temperature and the unknown threshold on the val split"


@dataclass(frozen=True)
class RejectRule:
    """Answer "unknown" when `score` of an image is below `threshold`."""
    score: str
    threshold: float

    def describe(self) -> str:
        return f"{self.score} < {self.threshold:.4g}"


def temperature_of(calibration: dict | None) -> float:
    """The checkpoint's fitted temperature; 1.0 (the model's own probabilities) when it has none."""
    return float((calibration or {}).get("temperature") or 1.0)


def reject_rule(calibration: dict | None, reject: str | None = None, reject_below: float | None = None,
                source: str = "the checkpoint") -> RejectRule | None:
    """The rule asked for: `reject_below` P (max probability, calibrated when the checkpoint is), or
    `reject="auto"`, the score and threshold that `transferlearn calibrate` chose on val; None: never."""
    if reject is not None and reject_below is not None:
        raise CalibrationError("give either --reject auto or --reject-below P, not both")
    if reject_below is not None:
        p = float(reject_below)
        if not 0.0 < p < 1.0:
            raise CalibrationError(f"--reject-below {reject_below}: give a probability between 0 and 1, e.g. 0.5")
        return RejectRule("msp", p)
    if reject in (None, "none", "off"):
        return None
    if reject != "auto":
        raise CalibrationError(f"--reject {reject!r}: use --reject auto, or --reject-below P")
    cal = calibration or {}
    if cal.get("threshold") is None:
        raise CalibrationError(f"--reject auto: {source} has no unknown threshold yet; run "
                               f"`transferlearn calibrate RUN` first (it picks one that keeps "
                               f"{DEFAULT_COVERAGE:.0%} of the val images), or use --reject-below P")
    return RejectRule(str(cal.get("score", DEFAULT_SCORE)), float(cal["threshold"]))


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def merge_views(logits: np.ndarray, temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, logits) per image from logits of shape (N, C) or (N, V, C), V test-time views.

    Probabilities are softmax(logits / T), averaged over the views (TTA averages probabilities); the
    logits returned are the calibrated ones (/ T), averaged over the views, for the scores."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    if z.ndim == 2:
        return softmax(z), z
    return softmax(z).mean(axis=1), z.mean(axis=1)


def score(kind: str, probs: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """One score per image (higher: more like the training data) from `merge_views`'s output."""
    if kind == "msp":
        return np.asarray(probs, dtype=np.float64).max(axis=1)
    z = np.asarray(logits, dtype=np.float64)
    if kind == "maxlogit":
        return z.max(axis=1)
    if kind == "energy":
        m = z.max(axis=1, keepdims=True)
        return (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]
    raise CalibrationError(f"unknown score {kind!r}; use one of {', '.join(SCORES)}")


def threshold_for_coverage(scores: np.ndarray, coverage: float = DEFAULT_COVERAGE) -> float:
    """The highest threshold that keeps at least `coverage` of these (in-distribution) images."""
    if not 0.0 < coverage <= 1.0:
        raise CalibrationError(f"--coverage {coverage}: give a fraction in (0, 1], e.g. 0.95")
    s = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    return float(s[max(1, int(np.ceil(coverage * len(s) - 1e-9))) - 1])


class TemperatureScaled(nn.Module):
    """`model`'s logits divided by T, so an exported graph (ONNX, TorchScript) gives calibrated logits."""

    def __init__(self, model: nn.Module, temperature: float):
        super().__init__()
        self.model = model
        self.temperature = float(temperature)

    def forward(self, x):
        return self.model(x) / self.temperature
