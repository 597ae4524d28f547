"""Calibrated confidence and the "unknown" threshold, fitted on the val split and kept in the checkpoint.

Temperature scaling (Guo et al. 2017): one scalar T, fitted by L-BFGS on the negative log-likelihood of
the val images' logits; probabilities become softmax(logits / T). The class ranking, and so accuracy,
does not change. Small enough to write here (a dozen lines of torch) rather than add a dependency.

The unknown threshold: the score (`models.trust`) of the val images, calibrated, at the quantile that
keeps `coverage` (default 95 %) of them; predict/serve `--reject auto` answer "unknown" below it.

`transferlearn calibrate RUN` and `eval --calibrate` write `ckpt["calibration"]`:
    temperature, score, threshold, coverage, ece_before, ece_after, nll_before, nll_after, images, data, created
plus calibration.json and reliability.png in the run folder.
"""
from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Callable

import numpy as np

from ..models import (DEFAULT_COVERAGE, DEFAULT_SCORE, CalibrationError, merge_views, score,
                      temperature_of, threshold_for_coverage)
from ..runs import checkpoint_file, run_folder, write_json
from . import metrics as M

BINS = 15


def fit_temperature(logits, labels, max_iter: int = 200) -> float:
    """The T > 0 that minimises the NLL of softmax(logits / T) for these labels (L-BFGS on log T)."""
    import torch
    import torch.nn.functional as F
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a problem this small: 0.03 s on one thread, 5 s on two threads of a busy CPU
    try:
        opt.step(closure)
    finally:
        torch.set_num_threads(threads)
    return float(np.clip(log_t.exp().item(), 1e-2, 1e2))


def nll(probs, labels) -> float:
    p = np.asarray(probs, dtype=np.float64)[np.arange(len(labels)), np.asarray(labels, dtype=int)]
    return float(-np.log(np.clip(p, 1e-12, None)).mean())


def fit_calibration(logits, labels, score_kind: str = DEFAULT_SCORE, coverage: float = DEFAULT_COVERAGE) -> dict:
    """The checkpoint's `calibration` dict from val logits (N, C) and labels: T, ECE/NLL before and after,
    and the unknown threshold for `coverage`."""
    logits = np.asarray(logits, dtype=np.float64)
    if len(logits) < 2:
        raise CalibrationError(f"{len(logits)} val image(s) are too few to fit a temperature; a val split of "
                               f"dozens of images is the least that means anything")
    t = fit_temperature(logits, labels)
    before, _ = merge_views(logits, 1.0)
    after, z = merge_views(logits, t)
    return {"temperature": round(t, 6), "score": score_kind,
            "threshold": threshold_for_coverage(score(score_kind, after, z), coverage), "coverage": coverage,
            "ece_before": M.calibration_bins(labels, before, BINS)["ece"],
            "ece_after": M.calibration_bins(labels, after, BINS)["ece"],
            "nll_before": nll(before, labels), "nll_after": nll(after, labels), "images": int(len(logits)),
            "created": _dt.datetime.now().isoformat(timespec="seconds")}


def store(checkpoint: str | Path, ckpt: dict, calibration: dict) -> Path:
    """Write `calibration` into the checkpoint file (atomically) and calibration.json beside it."""
    from ..runs import checkpoint as ckpt_io
    path = checkpoint_file(checkpoint)
    ckpt["calibration"] = calibration
    ckpt_io.save(ckpt, path)
    write_json(run_folder(checkpoint) / "calibration.json", {"checkpoint": str(path), **calibration})
    return path


def calibrate(checkpoint: str | Path, data: str | Path | None = None, score_kind: str = DEFAULT_SCORE,
              coverage: float = DEFAULT_COVERAGE, batch_size: int = 32, workers: int | str = "auto",
              device: str = "auto", log: Callable[[str], None] = print) -> dict:
    """Fit the temperature and the unknown threshold of `checkpoint` (a .pt file or run folder) on the val
    split of `data` (default: the folder it was trained on), store them in it; return the calibration."""
    from ..models import load_model, pick_device
    from ..reporting import plots
    from .evaluate import predict_folder, resolve_samples
    dev = pick_device(device)
    model, ckpt = load_model(checkpoint, device=str(dev))
    data = data or (ckpt.get("args") or {}).get("data")
    if not data:
        raise CalibrationError(f"{checkpoint} does not say which data folder it was trained on; pass --data DIR")
    samples, source = resolve_samples(data, "val", list(ckpt["classes"]), ckpt.get("args"))
    log(f"calibrating {checkpoint} on {len(samples)} val images from {source}")
    preds = predict_folder(model, samples, ckpt["preprocess"], batch_size, workers, dev)
    for p in preds.skipped:
        log(f"warning: unreadable image skipped: {p}")
    cal = {**fit_calibration(preds.logits, preds.labels, score_kind, coverage), "data": str(source)}
    path = store(checkpoint, ckpt, cal)
    plot_reliability(preds.logits, preds.labels, cal["temperature"], run_folder(checkpoint) / "reliability.png",
                     plots, "val split, where T was fitted")
    log(f"temperature {cal['temperature']:.4f} | ECE ({BINS} bins) {cal['ece_before']:.4f} -> {cal['ece_after']:.4f} | "
        f"NLL {cal['nll_before']:.4f} -> {cal['nll_after']:.4f} | unknown below {cal['score']} "
        f"{cal['threshold']:.4g} (keeps {coverage:.0%} of val) | saved in {path}")
    return cal


def plot_reliability(logits, labels, temperature: float, path: Path, plots, where: str) -> dict:
    """reliability.png: accuracy against confidence as trained and, when T != 1, calibrated; the bins."""
    curves = {"as trained (T = 1)": M.calibration_bins(labels, merge_views(logits, 1.0)[0], BINS)}
    if temperature != 1.0:
        curves[f"calibrated (T = {temperature:.3g})"] = M.calibration_bins(labels, merge_views(logits, temperature)[0],
                                                                           BINS)
    plots.plot_reliability(curves, path, title=f"Reliability, {BINS} bins ({where})")
    return curves


def calibration_metrics(preds, ckpt: dict, out: Path, split: str) -> dict:
    """What `eval` adds to metrics.json: ECE as trained and calibrated, the unknown share at the stored
    threshold, and reliability.png in `out`."""
    from ..reporting import plots
    cal = ckpt.get("calibration") or {}
    t = temperature_of(cal)
    where = f"{split} split" + (", where T was fitted" if split == "val" and cal else "")
    curves = plot_reliability(preds.logits, preds.labels, t, out / "reliability.png", plots, where)
    eces = [c["ece"] for c in curves.values()]
    m = {"ece": eces[-1], "ece_bins": BINS, "temperature": t}
    if t != 1.0:
        m["ece_uncalibrated"] = eces[0]
    if cal.get("threshold") is not None:
        probs, z = merge_views(preds.logits, t)
        keep = score(cal["score"], probs, z) >= cal["threshold"]
        right = probs.argmax(1) == preds.labels
        m["unknown"] = {"score": cal["score"], "threshold": cal["threshold"], "share": float(1 - keep.mean()),
                        "accuracy_kept": float(right[keep].mean()) if keep.any() else None}
    return m
