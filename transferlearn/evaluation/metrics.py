"""Classification metrics from true labels and predicted probabilities (scikit-learn).

Pure functions of arrays: no files, no models. `evaluate.py` feeds them, `plots.py` and
`report.py` display what they return. Every number is JSON-safe (NaN becomes None).
"""
from __future__ import annotations

import math

import numpy as np


def _f(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


def _mean(values) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def topk_ks(num_classes: int) -> list[int]:
    """The k of top-k accuracy worth reporting: 1, and 3 and 5 when there are more classes than k."""
    return [1] + [k for k in (3, 5) if k < num_classes]


def compute_metrics(y_true, probs, classes: list[str]) -> dict:
    """Accuracy, top-k, macro/weighted P/R/F1, per-class P/R/F1/support/AP/ROC-AUC, confusion matrix.

    AP and ROC-AUC are one-vs-rest per class; a class without positives (or without negatives)
    in `y_true` has None for them and is left out of the macro averages."""
    from sklearn import metrics as skm  # here, not at import: scikit-learn takes a second to import
    y_true = np.asarray(y_true, dtype=int)
    probs = np.asarray(probs, dtype=np.float64)
    n_cls = len(classes)
    labels = list(range(n_cls))
    if len(y_true) == 0:
        raise ValueError("no samples to evaluate")
    if probs.shape != (len(y_true), n_cls):
        raise ValueError(f"probs has shape {probs.shape}, expected ({len(y_true)}, {n_cls})")
    y_pred = probs.argmax(1)

    out: dict = {"num_samples": int(len(y_true)), "num_classes": n_cls, "classes": list(classes),
                 "accuracy": _f(skm.accuracy_score(y_true, y_pred))}
    out["top_k_accuracy"] = {str(k): _f(skm.top_k_accuracy_score(y_true, probs, k=k, labels=labels))
                             for k in topk_ks(n_cls)} if n_cls > 2 else {"1": out["accuracy"]}
    for avg in ("macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, average=avg,
                                                         zero_division=0)
        out[avg] = {"precision": _f(p), "recall": _f(r), "f1": _f(f)}
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, average=None,
                                                     zero_division=0)
    per_class = {}
    for c, name in enumerate(classes):
        pos = y_true == c
        has_both = 0 < pos.sum() < len(y_true)
        ap = _f(skm.average_precision_score(pos, probs[:, c])) if pos.any() else None
        auc = _f(skm.roc_auc_score(pos, probs[:, c])) if has_both else None
        per_class[name] = {"precision": _f(p[c]), "recall": _f(r[c]), "f1": _f(f[c]), "support": int(s[c]),
                           "ap": ap, "roc_auc": auc}
    out["per_class"] = per_class
    out["macro"]["ap"] = _mean(v["ap"] for v in per_class.values())
    out["macro"]["roc_auc"] = _mean(v["roc_auc"] for v in per_class.values())
    out["confusion_matrix"] = skm.confusion_matrix(y_true, y_pred, labels=labels).tolist()
    return out


def curves(y_true, probs, num_classes: int) -> dict:
    """Per-class one-vs-rest PR and ROC curves: {'pr': {c: (recall, precision)}, 'roc': {c: (fpr, tpr)}}.

    Classes without positives (PR, ROC) or without negatives (ROC) are left out."""
    from sklearn import metrics as skm
    y_true = np.asarray(y_true, dtype=int)
    probs = np.asarray(probs, dtype=np.float64)
    pr, roc = {}, {}
    for c in range(num_classes):
        pos = y_true == c
        if not pos.any():
            continue
        prec, rec, _ = skm.precision_recall_curve(pos, probs[:, c])
        pr[c] = (rec, prec)
        if pos.all():
            continue
        fpr, tpr, _ = skm.roc_curve(pos, probs[:, c])
        roc[c] = (fpr, tpr)
    return {"pr": pr, "roc": roc}


def confused_pairs(paths: list[str], y_true, probs, classes: list[str]) -> list[dict]:
    """For each (true, predicted) pair with mistakes: count and files, most confident mistake first."""
    y_true = np.asarray(y_true, dtype=int)
    probs = np.asarray(probs, dtype=np.float64)
    y_pred = probs.argmax(1)
    pairs: dict[tuple[int, int], list[tuple[str, float]]] = {}
    for path, t, p, row in zip(paths, y_true, y_pred, probs):
        if t != p:
            pairs.setdefault((int(t), int(p)), []).append((path, float(row[p])))
    out = []
    for (t, p), files in pairs.items():
        files.sort(key=lambda x: -x[1])
        out.append({"true": classes[t], "predicted": classes[p], "count": len(files),
                    "share_of_true_class": len(files) / int((y_true == t).sum()),
                    "files": [{"path": f, "confidence": round(c, 6)} for f, c in files]})
    out.sort(key=lambda d: (-d["count"], d["true"], d["predicted"]))
    return out


def mistakes(y_true, probs, limit: int | None = None) -> list[int]:
    """Indices of misclassified samples, most confident (highest predicted probability) first."""
    y_true = np.asarray(y_true, dtype=int)
    probs = np.asarray(probs, dtype=np.float64)
    y_pred = probs.argmax(1)
    idx = np.flatnonzero(y_pred != y_true)
    idx = idx[np.argsort(-probs[idx, y_pred[idx]], kind="stable")]
    return [int(i) for i in idx[:limit]]


def calibration_bins(y_true, probs, bins: int = 15) -> dict:
    """Reliability of the confidences (max probability) in `bins` equal-width bins, and their ECE.

    ECE (Guo et al. 2017): the share-weighted mean gap |accuracy - mean confidence| over the bins; 0 is
    perfectly calibrated. Returns {"ece", "bins": [{"lo", "hi", "count", "confidence", "accuracy"}]}."""
    y_true = np.asarray(y_true, dtype=int)
    probs = np.asarray(probs, dtype=np.float64)
    conf, correct = probs.max(1), (probs.argmax(1) == y_true).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)  # (lo, hi] as Guo et al.
    out, ece = [], 0.0
    for b in range(bins):
        m = which == b
        n = int(m.sum())
        acc = float(correct[m].mean()) if n else None
        c = float(conf[m].mean()) if n else None
        if n:
            ece += n / len(y_true) * abs(acc - c)
        out.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": n, "confidence": c, "accuracy": acc})
    return {"ece": float(ece), "bins": out}
