"""Evaluate a trained checkpoint on an image folder and write metrics, predictions and plots.

`predict_folder` runs the model once over the images and keeps, per image, the class
probabilities and the penultimate features (`model.backbone`'s output, the input of the head).
`evaluate` turns those into the files of an evaluation:

    metrics.json  predictions.csv  reliability.png  confused_pairs.csv/.json  confusion_matrix.png  pr_curves.png
    roc_curves.png  per_class.png  mistakes.png  features_2d.png (+ .html with plotly)  report.html
"""
from __future__ import annotations

import datetime as _dt
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..models import infer_batches, load_model, model_to, pick_device
from . import metrics as M
from ..errors import MissingExtra
from ..data import (DatasetError, ImageDataset, Preprocess, collate_skip_none, eval_transform, find_splits, scan,
                   split_folders)
from ..data import list_class_dirs, thumbnail
from ..runs import run_folder, write_csv, write_json

EMBED_METHODS = ("auto", "tsne", "umap", "none")
EMBED_NAMES = {"tsne": "t-SNE", "umap": "UMAP"}
AUTO_TSNE_MAX = 3000  # t-SNE above this many images takes minutes on a CPU: `auto` skips it


@dataclass
class Predictions:
    paths: list[str]
    labels: np.ndarray  # (N,) true class index
    probs: np.ndarray  # (N, C) softmax probabilities (of logits / T; averaged over the --tta views)
    features: np.ndarray  # (N, F) penultimate features
    skipped: list[str]  # unreadable files
    logits: np.ndarray | None = None  # (N, C) the model's logits (averaged over the --tta views), before T

    @property
    def pred(self) -> np.ndarray:
        return self.probs.argmax(1)


# ---------------------------------------------------------------- which images

def resolve_samples(data: str | Path, split: str, classes: list[str], ckpt_args: dict | None = None
                    ) -> tuple[list[tuple[str, int]], str]:
    """(path, label) pairs to evaluate and a description of where they came from.

    `data` is a split folder (DIR/<class>/*) or a dataset root (DIR/train, DIR/val, DIR/test). A root
    without val/ gets the same seeded held-out split that training made from train/."""
    root = Path(data)
    if not root.is_dir():
        raise DatasetError(f"data folder {root} does not exist")
    folder = split_folders(root).get(split)
    if folder is not None:
        _, samples = scan(folder, classes, folder.name)
        return samples, str(folder)
    if (root / "train").is_dir():
        if split == "val":
            args = ckpt_args or {}
            vs, seed = args.get("val_split", 0.2), args.get("seed", 0)
            splits = find_splits(root, vs, seed)
            if splits.classes != list(classes):
                raise DatasetError(f"classes in {root}/train ({', '.join(splits.classes)}) differ from the "
                                   f"checkpoint's ({', '.join(classes)})")
            return splits.val, f"{root}/train (held-out {vs:.0%}, seed {seed}, as in training)"
        raise DatasetError(f"{root} has no {split}/ folder; pass the folder of class folders to evaluate "
                           f"as --data, or choose another --split")
    found = list_class_dirs(root)
    if not any(c in classes for c in found):
        raise DatasetError(f"{root} has none of the checkpoint's class folders ({', '.join(classes[:10])}"
                           f"{'...' if len(classes) > 10 else ''}); expected {root}/<class>/<images> "
                           f"or {root}/{split}/<class>/<images>")
    _, samples = scan(root, classes, root.name)
    return samples, str(root)


# ---------------------------------------------------------------- running the model

class _IndexedDataset(ImageDataset):
    def __getitem__(self, i):
        item = super().__getitem__(i)
        return None if item is None else (*item, i)


def predict_folder(model, samples: list[tuple[str, int]], preprocess: Preprocess | dict, batch_size: int = 32,
                   workers: int | str = 0, device: str | torch.device = "cpu", tta: str = "none",
                   temperature: float = 1.0) -> Predictions:
    """Probabilities (softmax of logits / `temperature`, averaged over the `tta` views), logits and
    penultimate features (averaged over the views) for every readable image of `samples`."""
    from torch.utils.data import DataLoader

    from ..data import TTATransform, resolve_workers
    from ..models import merge_views

    device = torch.device(device)
    model = model_to(model, device).eval()
    preprocess = Preprocess.of(preprocess)
    transform = eval_transform(preprocess) if tta == "none" else TTATransform(preprocess, tta, tensor=True)
    ds = _IndexedDataset(samples, transform, preprocess.channels)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=resolve_workers(workers),
                        collate_fn=collate_skip_none)
    views = 1 if tta == "none" else transform.views
    # TTA batches (B, V, C, H, W) go through the model as B * V images
    flat = (b if b is None or b[0].ndim == 4 else (b[0].flatten(0, 1), *b[1:]) for b in loader)

    def features_and_logits(x):
        f = model.backbone(x).flatten(1)
        return f, model.head(f)

    logits, feats, idx = [], [], []
    for (_, _, i), (f, z) in infer_batches(features_and_logits, flat, device):
        logits.append(z.float().cpu().reshape(len(i), views, -1))
        feats.append(f.float().cpu().reshape(len(i), views, -1).mean(1))
        idx.append(i)
    if not idx:
        raise DatasetError("none of the images could be read")
    keep = torch.cat(idx).tolist()
    kept = set(keep)
    z = torch.cat(logits).numpy().astype(np.float64)
    probs, _ = merge_views(z, temperature)
    return Predictions(paths=[samples[i][0] for i in keep],
                       labels=np.array([samples[i][1] for i in keep], dtype=int),
                       probs=probs, features=torch.cat(feats).numpy(),
                       skipped=[p for i, (p, _) in enumerate(samples) if i not in kept], logits=z.mean(1))


# ---------------------------------------------------------------- 2-D embedding

def embed_2d(features: np.ndarray, method: str = "tsne", seed: int = 0) -> np.ndarray:
    """Penultimate features to 2-D with t-SNE (scikit-learn) or UMAP (umap-learn, optional).

    Runs with one OpenMP thread: after a PyTorch forward pass, PyTorch's and scikit-learn's OpenMP
    runtimes spin against each other, and t-SNE of even 12 points took 43 s instead of 0.1 s."""
    from threadpoolctl import threadpool_limits

    x = np.asarray(features, dtype=np.float32)
    n = len(x)
    if n < 5:
        raise ValueError(f"{n} images are too few for a 2-D embedding")
    if method not in ("tsne", "umap"):
        raise ValueError(f"unknown embedding {method!r}; use tsne, umap or none")
    with threadpool_limits(limits=1, user_api="openmp"):
        if x.shape[1] > 50 and n > 50:  # PCA first: the usual speed-up, and it removes noise
            from sklearn.decomposition import PCA
            x = PCA(n_components=50, random_state=seed).fit_transform(x)
        if method == "tsne":
            from sklearn.manifold import TSNE
            return TSNE(n_components=2, perplexity=float(min(30, (n - 1) / 3)), init="pca", random_state=seed,
                        learning_rate="auto").fit_transform(x)
        try:
            import umap
        except ImportError as e:
            raise MissingExtra("--embed umap needs umap-learn: pip install umap-learn (or use --embed tsne)") from e
        return umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), random_state=seed).fit_transform(x)


def _features_html(xy, preds: Predictions, classes: list[str], path: Path, title: str, colors: list[str]) -> bool:
    """Interactive scatter (hover shows file, true, predicted) when plotly is installed."""
    try:
        import plotly.graph_objects as go
    except ImportError:
        return False
    fig = go.Figure()
    for c, name in enumerate(classes):
        m = preds.labels == c
        if not m.any():
            continue
        text = [f"{Path(p).name}<br>true: {name}<br>pred: {classes[k]} ({preds.probs[i, k]:.2f})"
                for i, (p, k) in enumerate(zip(preds.paths, preds.pred)) if m[i]]
        fig.add_trace(go.Scatter(x=xy[m, 0], y=xy[m, 1], mode="markers", name=name, text=text,
                                 hoverinfo="text", marker={"size": 7, "color": colors[c],
                                                           "line": {"width": [2 if w else 0 for w in
                                                                              (preds.pred[m] != c)],
                                                                    "color": "red"}}))
    fig.update_layout(title=title, template="plotly_white", xaxis={"visible": False}, yaxis={"visible": False})
    fig.write_html(str(path), include_plotlyjs=True, full_html=True)
    return True


# ---------------------------------------------------------------- files

def default_out_dir(checkpoint: str | Path, split: str) -> Path:
    """The run folder of the checkpoint (val), or run/eval-<split>/ for other splits."""
    run = run_folder(checkpoint)
    return run if split == "val" else run / f"eval-{split}"


def write_predictions_csv(path: Path, preds: Predictions, classes: list[str], k: int) -> None:
    k = min(k, len(classes))
    cols = ["path", "true", "predicted", "correct", "confidence"]
    for j in range(1, k + 1):
        cols += [f"top{j}", f"top{j}_conf"]
    cols += [f"prob_{c}" for c in classes]
    rows = []
    order = np.argsort(-preds.probs, axis=1, kind="stable")[:, :k]
    for i, path_ in enumerate(preds.paths):
        p = preds.probs[i]
        r = {"path": path_, "true": classes[preds.labels[i]], "predicted": classes[preds.pred[i]],
             "correct": int(preds.labels[i] == preds.pred[i]), "confidence": f"{p.max():.6f}"}
        for j, c in enumerate(order[i], 1):
            r[f"top{j}"], r[f"top{j}_conf"] = classes[c], f"{p[c]:.6f}"
        r.update({f"prob_{c}": f"{p[ci]:.6f}" for ci, c in enumerate(classes)})
        rows.append(r)
    write_csv(path, rows, cols)


def write_confused_pairs(out: Path, pairs: list[dict]) -> None:
    write_json(out / "confused_pairs.json", pairs)
    rows = [{"true": d["true"], "predicted": d["predicted"], "pair_count": d["count"], "path": f["path"],
             "confidence": f["confidence"]} for d in pairs for f in d["files"]]
    write_csv(out / "confused_pairs.csv", rows, ["true", "predicted", "pair_count", "path", "confidence"])


def evaluate(checkpoint: str | Path, data: str | Path, split: str = "val", out: str | Path | None = None,
             embed: str = "auto", batch_size: int = 32, workers: int | str = "auto", device: str = "auto",
             top_k: int = 5, num_mistakes: int = 24, report: bool = True, tta: str = "none",
             calibrate: bool = False, log: Callable[[str], None] = print) -> dict:
    """Evaluate `checkpoint` (a .pt file or run folder) on `data`; write the files; return metrics.

    calibrate: first fit the temperature and unknown threshold on the val split of `data` and store them
    in the checkpoint (as `transferlearn calibrate`). Probabilities are the calibrated ones whenever the
    checkpoint has a temperature. tta: average the probabilities of the views of data.tta."""
    from ..data import check_tta
    from ..models import temperature_of
    from ..reporting import plots
    from .calibrate import calibration_metrics, fit_calibration, store  # the module: `calibrate` is also its function

    check_tta(tta)
    if embed not in EMBED_METHODS:
        raise ValueError(f"unknown --embed {embed!r}; use one of {', '.join(EMBED_METHODS)}")
    if embed == "umap":
        import importlib.util
        if importlib.util.find_spec("umap") is None:  # fail before the slow part, not after it
            raise MissingExtra("--embed umap needs umap-learn: pip install umap-learn (or use --embed tsne)")
    dev = pick_device(device)
    model, ckpt = load_model(checkpoint, device=str(dev))
    classes = list(ckpt["classes"])
    samples, source = resolve_samples(data, split, classes, ckpt.get("args"))
    out = Path(out) if out else default_out_dir(checkpoint, split)
    out.mkdir(parents=True, exist_ok=True)
    log(f"evaluating {checkpoint} ({ckpt['arch']}, {ckpt.get('mode', '?')}) on {len(samples)} images from {source}")

    if calibrate:
        val = samples if split == "val" else resolve_samples(data, "val", classes, ckpt.get("args"))[0]
        vp = predict_folder(model, val, ckpt["preprocess"], batch_size, workers, dev)
        store(checkpoint, ckpt, {**fit_calibration(vp.logits, vp.labels), "data": str(data)})
        cal = ckpt["calibration"]
        log(f"calibrated on {len(vp.labels)} val images: temperature {cal['temperature']:.4f}, ECE "
            f"{cal['ece_before']:.4f} -> {cal['ece_after']:.4f}; stored in {checkpoint}")
    t0 = time.perf_counter()
    preds = predict_folder(model, samples, ckpt["preprocess"], batch_size, workers, dev, tta=tta,
                           temperature=temperature_of(ckpt.get("calibration")))
    seconds = time.perf_counter() - t0
    for p in preds.skipped:
        log(f"warning: unreadable image skipped: {p}")

    m = M.compute_metrics(preds.labels, preds.probs, classes)
    m.update({"checkpoint": str(checkpoint), "data": str(source), "split": split, "arch": ckpt["arch"],
              "mode": ckpt.get("mode"), "epoch": ckpt.get("epoch"), "skipped_files": preds.skipped,
              "seconds": round(seconds, 2), "images_per_second": round(len(preds.paths) / max(seconds, 1e-9), 1),
              "created": _dt.datetime.now().isoformat(timespec="seconds"), "tta": tta})
    m.update(calibration_metrics(preds, ckpt, out, split))

    write_predictions_csv(out / "predictions.csv", preds, classes, top_k)
    pairs = M.confused_pairs(preds.paths, preds.labels, preds.probs, classes)
    write_confused_pairs(out, pairs)

    title = f"{ckpt['arch']} {ckpt.get('mode', '')} | {split}: acc {m['accuracy']:.3f}, macro F1 {m['macro']['f1']:.3f}"
    plots.plot_confusion_matrix(m["confusion_matrix"], classes, out / "confusion_matrix.png", title=title)
    cv = M.curves(preds.labels, preds.probs, len(classes))
    pc = m["per_class"]
    plots.plot_pr_curves(cv["pr"], classes, {c: v["ap"] for c, v in pc.items()}, out / "pr_curves.png",
                         m["macro"]["ap"])
    plots.plot_roc_curves(cv["roc"], classes, {c: v["roc_auc"] for c, v in pc.items()}, out / "roc_curves.png",
                          m["macro"]["roc_auc"])
    plots.plot_per_class(pc, out / "per_class.png", title=f"F1 per class ({split}, macro F1 {m['macro']['f1']:.3f})")
    wrong = M.mistakes(preds.labels, preds.probs, num_mistakes)
    n_wrong = int((preds.pred != preds.labels).sum())
    plots.plot_image_grid([thumbnail(preds.paths[i]) for i in wrong],
                          [f"true: {classes[preds.labels[i]]}\npred: {classes[preds.pred[i]]} "
                           f"({preds.probs[i].max():.2f})\n{_short(preds.paths[i])}" for i in wrong],
                          out / "mistakes.png", colors=["red"] * len(wrong), ncols=6, cell=2.3,
                          title=(f"{len(wrong)} most confident of {n_wrong} mistakes" if wrong
                                 else "no mistakes"))
    m["mistakes"] = n_wrong

    # 2-D map of the penultimate features
    method = embed
    if embed == "auto":
        method = "tsne" if len(preds.paths) <= AUTO_TSNE_MAX else "none"
        if method == "none":
            log(f"skipping the 2-D feature map: t-SNE on {len(preds.paths)} images would be slow "
                f"(pass --embed tsne to force it, or --embed umap)")
    m["embed"] = method
    if method != "none":
        try:
            t1 = time.perf_counter()
            xy = embed_2d(preds.features, method)
            plots.plot_features_2d(xy, preds.labels, classes, out / "features_2d.png",
                                   wrong=preds.pred != preds.labels,
                                   title=f"{EMBED_NAMES.get(method, method)} of penultimate features ({preds.features.shape[1]}-d), "
                                         f"coloured by true class")
            from matplotlib.colors import to_hex
            hexes = [to_hex(c) for c in plots.class_colors(len(classes))]
            if _features_html(xy, preds, classes, out / "features_2d.html",
                              f"{EMBED_NAMES.get(method, method)} of penultimate features "
                              f"(hover for file names; red ring: misclassified)", hexes):
                m["features_2d_html"] = True
            m["embed_seconds"] = round(time.perf_counter() - t1, 2)
        except (ValueError, ImportError) as e:
            if embed != "auto":
                raise
            log(f"skipping the 2-D feature map: {e}")
            m["embed"] = "none"

    write_json(out / "metrics.json", m)
    if report:
        from ..reporting.report import write_report
        try:
            write_report(out, run_dir=run_folder(checkpoint))
        except Exception as e:  # a report problem must not lose the evaluation
            print(f"warning: could not write report.html: {type(e).__name__}: {e}", file=sys.stderr)
    top = ", ".join(f"top-{k} {v:.4f}" for k, v in m["top_k_accuracy"].items() if k != "1")
    raw = f" (T = 1: {m['ece_uncalibrated']:.4f})" if "ece_uncalibrated" in m else ""
    log(f"accuracy {m['accuracy']:.4f}{' | ' + top if top else ''} | macro F1 {m['macro']['f1']:.4f} | "
        f"macro ROC-AUC {_fmt(m['macro']['roc_auc'])} | macro AP {_fmt(m['macro']['ap'])} | ECE {m['ece']:.4f}{raw} | "
        f"{n_wrong} mistakes | results in {out}")
    m["out_dir"] = str(out)
    return m


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _short(path: str, n: int = 28) -> str:
    name = Path(path).name
    return name if len(name) <= n else name[: n - 3] + "..."
