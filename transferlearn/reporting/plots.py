"""PNG plots of training runs (matplotlib, headless)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .fonts import use_cjk_font, warn_if_no_cjk_font  # noqa: E402

use_cjk_font()

MODE_COLORS = {"last-layer": "tab:blue", "all-layers": "tab:orange", "scratch": "tab:green"}


def _floats(rows: list[dict], key: str):
    xs, ys = [], []
    for r in rows:
        v = r.get(key)
        if v not in (None, ""):
            xs.append(int(r["epoch"]))
            ys.append(float(v))
    return xs, ys


def _save(fig, path, title: str = "", bbox_tight: bool = False) -> Path:
    """Save and close. bbox_tight: crop to the drawn content (legends placed outside the axes), and
    leave the layout to the caller."""
    if title:
        fig.suptitle(title)
    if bbox_tight:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    else:
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_curves(rows: list[dict], path: str | Path, title: str = "") -> Path:
    """Loss and accuracy vs epoch, train and val, from results.csv rows. Epoch 0 (all-layers' head warm-up, a
    linear probe) is drawn as its own point, not joined to epoch 1: fine-tuning may start from another head."""
    warn_if_no_cjk_font([title])
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for key, style in (("train", "-"), ("val", "--")):
        for ax, metric in ((ax_loss, "loss"), (ax_acc, "acc")):
            xs, ys = _floats(rows, f"{key}_{metric}")
            probe = [(x, y) for x, y in zip(xs, ys) if x == 0]
            xs, ys = [x for x in xs if x != 0], [y for x, y in zip(xs, ys) if x != 0]
            color = None
            if xs:
                color = ax.plot(xs, ys, style, marker="o", markersize=3, label=key)[0].get_color()
            if probe:
                ax.plot(*zip(*probe), "*", markersize=11, color=color, label=f"{key}, head warm-up")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1.02))
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path, title)


def plot_comparison(results: dict[str, list[dict]], summaries: dict[str, dict], path: str | Path,
                    title: str = "") -> Path:
    """Val accuracy curves of each mode, and bars of best val accuracy and training time."""
    warn_if_no_cjk_font([title])
    fig, (ax_curve, ax_acc, ax_time) = plt.subplots(1, 3, figsize=(15, 4.2),
                                                    gridspec_kw={"width_ratios": [2, 1, 1]})
    modes = list(results)
    # runs named MODE-INIT (compare --inits) or anything else: tab10, one colour each
    colors = [MODE_COLORS.get(m) or f"C{i % 10}" for i, m in enumerate(modes)]
    for m, c in zip(modes, colors):
        xs, ys = _floats(results[m], "val_acc")
        ax_curve.plot(xs, ys, marker="o", markersize=3, label=m, color=c)
        txs, tys = _floats(results[m], "train_acc")
        ax_curve.plot(txs, tys, ":", color=c, alpha=0.6)
    ax_curve.set(xlabel="epoch", ylabel="accuracy", title="val accuracy (dotted: train)", ylim=(0, 1.02))
    ax_curve.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_curve.grid(alpha=0.3)
    ax_curve.legend()
    best = [summaries[m]["best_val_acc"] for m in modes]
    secs = [summaries[m]["train_seconds"] for m in modes]
    bars = ax_acc.bar(modes, best, color=colors)
    ax_acc.bar_label(bars, labels=[f"{b:.3f}" for b in best])
    ax_acc.set(title="best val accuracy", ylim=(0, 1.1))
    bars = ax_time.bar(modes, secs, color=colors)
    ax_time.bar_label(bars, labels=[f"{s:.0f}s" for s in secs])
    ax_time.set(title="training time (s)", ylim=(0, max(secs) * 1.2 if secs and max(secs) > 0 else 1))
    for ax in (ax_acc, ax_time):
        ax.tick_params(axis="x", labelrotation=15)
    return _save(fig, path, title)


def plot_lr_find(lrs: list[float], losses: list[float], marks: dict[str, float], path: str | Path,
                 title: str = "") -> Path:
    """The lr range test: smoothed loss against lr (log axis), each suggestion marked."""
    warn_if_no_cjk_font([title])
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(lrs, losses, color="tab:blue")
    ax.set_xscale("log")
    for (name, lr), c in zip(marks.items(), ("tab:red", "tab:green", "tab:purple")):
        y = losses[min(range(len(lrs)), key=lambda i: abs(lrs[i] - lr))] if lrs else 0
        ax.plot([lr], [y], "o", color=c, markersize=8, label=f"{name}: {lr:.1e}")
    ax.set(xlabel="learning rate (log scale)", ylabel="loss (smoothed)", title="lr range test")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return _save(fig, path, title)


def plot_tune(rows: list[dict], path: str | Path, title: str = "", param: str | None = None) -> Path:
    """A search: each trial's best val accuracy by trial number (pruned and failed trials marked, the best so far as
    a line), and the same against one searched parameter (the lr, on a log axis)."""
    warn_if_no_cjk_font([title])
    fig, axes = plt.subplots(1, 2 if param else 1, figsize=(12 if param else 7, 4.2), squeeze=False)
    done = [r for r in rows if r.get("value") not in (None, "")]
    styles = {"complete": ("o", "tab:blue"), "pruned": ("x", "tab:gray")}
    ax = axes[0][0]
    for state, (marker, color) in styles.items():
        pts = [(int(r["trial"]), float(r["value"])) for r in done if r["state"] == state]
        if pts:
            ax.plot(*zip(*pts), marker, color=color, linestyle="none", label=state)
    best, line = -1.0, []
    for r in sorted((r for r in done if r["state"] == "complete"), key=lambda r: int(r["trial"])):
        best = max(best, float(r["value"]))
        line.append((int(r["trial"]), best))
    if line:
        line.append((max(int(r["trial"]) for r in rows), best))  # to the last trial
        ax.step(*zip(*line), where="post", color="tab:orange", label="best so far")
    failed = [int(r["trial"]) for r in rows if r["state"] == "fail"]
    for i, t in enumerate(failed):
        ax.axvline(t, color="tab:red", alpha=0.3, label="failed" if i == 0 else None)
    ax.set(xlabel="trial", ylabel="best val accuracy of the trial", title="search")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()
    if param:
        ax = axes[0][1]
        for state, (marker, color) in styles.items():
            pts = [(float(r[param]), float(r["value"])) for r in done if r["state"] == state and r.get(param) not in
                   (None, "")]
            if pts:
                ax.plot(*zip(*pts), marker, color=color, linestyle="none", label=state)
        ax.set_xscale("log")
        ax.set(xlabel=param, ylabel="best val accuracy of the trial", title=f"accuracy against {param}")
        ax.grid(alpha=0.3, which="both")
    return _save(fig, path, title)


# ---------------------------------------------------------------- evaluation plots

def class_colors(n: int) -> list:
    """n distinct colours: tab10 up to 10 classes, tab20 up to 20, then a sampled continuous map."""
    import numpy as np

    if n <= 10:
        return [plt.get_cmap("tab10")(i) for i in range(n)]
    if n <= 20:
        return [plt.get_cmap("tab20")(i) for i in range(n)]
    return [plt.get_cmap("gist_ncar")(x) for x in np.linspace(0.02, 0.92, n)]


def _label_size(n: int) -> float:
    return 10 if n <= 10 else 8 if n <= 20 else 6.5


def plot_confusion_matrix(cm, classes: list[str], path: str | Path, title: str = "") -> Path:
    """Counts and row-normalised (recall per true class) confusion matrices: side by side up to 12
    classes, one above the other beyond (so that each stays readable when the page scales it down)."""
    warn_if_no_cjk_font(classes)
    import numpy as np

    cm = np.asarray(cm, dtype=float)
    n = len(classes)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    stacked = n > 12
    side = max(4.5, (0.36 if stacked else 0.42) * n + 2.5)
    fig, axes = plt.subplots(2 if stacked else 1, 1 if stacked else 2,
                             figsize=(side + 1.5, 2 * side) if stacked else (2 * side + 1, side))
    fs = _label_size(n) + (1 if stacked else 0)
    cell_fs = 9 if n <= 10 else 8 if n <= 20 else 7
    pct = n > 12  # small cells: whole percentages ("25") instead of "0.25"
    panels = ((axes[0], cm, "counts", "{:.0f}", 1),
              (axes[1], norm, "normalised by true class" + (" (%)" if pct else ""), "{:.0f}" if pct else "{:.2f}",
               100 if pct else 1))
    for ax, mat, what, fmt, scale in panels:
        mat = mat * scale
        im = ax.imshow(mat, cmap="Blues", vmin=0, vmax=mat.max() if mat.max() > 0 else 1)
        ax.set_xticks(range(n), classes, rotation=90 if n > 6 else 30, ha="center" if n > 6 else "right",
                      fontsize=fs)
        ax.set_yticks(range(n), classes, fontsize=fs)
        ax.set(xlabel="predicted", ylabel="true", title=what)
        if n <= 40:
            thresh = mat.max() / 2 if mat.max() > 0 else 1
            for i in range(n):
                for j in range(n):
                    if cm[i, j] or i == j:
                        ax.text(j, i, fmt.format(mat[i, j]), ha="center", va="center", fontsize=cell_fs,
                                color="white" if mat[i, j] > thresh else "black")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path, bbox_tight=True)


def _curve_plot(data: dict, classes: list[str], scores: dict, path, xlabel: str, ylabel: str, title: str,
                diagonal: bool) -> Path:
    warn_if_no_cjk_font(classes)
    n = len(classes)
    fig, ax = plt.subplots(figsize=(8 if n > 10 else 6.5, 5.5))
    colors = class_colors(n)
    for c, (x, y) in data.items():
        s = scores.get(classes[c])
        ax.plot(x, y, color=colors[c], lw=1.4, label=f"{classes[c]} ({s:.3f})" if s is not None else classes[c],
                drawstyle="steps-post" if not diagonal else "default")
    if diagonal:
        ax.plot([0, 1], [0, 1], "k--", lw=0.8, alpha=0.5)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, xlim=(-0.01, 1.01), ylim=(-0.01, 1.02))
    ax.grid(alpha=0.3)
    if data:
        ax.legend(fontsize=_label_size(n), loc="center left", bbox_to_anchor=(1.01, 0.5),
                  ncol=1 if n <= 20 else 2, frameon=False)
    return _save(fig, path, bbox_tight=True)


def plot_pr_curves(pr: dict, classes: list[str], ap: dict, path: str | Path, macro_ap: float | None = None) -> Path:
    """One-vs-rest precision-recall curve per class; legend shows each class's average precision."""
    t = "precision-recall (one vs rest)" + (f", macro AP {macro_ap:.3f}" if macro_ap is not None else "")
    return _curve_plot(pr, classes, ap, path, "recall", "precision", t, diagonal=False)


def plot_roc_curves(roc: dict, classes: list[str], auc: dict, path: str | Path, macro_auc: float | None = None) -> Path:
    """One-vs-rest ROC curve per class; legend shows each class's ROC-AUC."""
    t = "ROC (one vs rest)" + (f", macro AUC {macro_auc:.3f}" if macro_auc is not None else "")
    return _curve_plot(roc, classes, auc, path, "false positive rate", "true positive rate", t, diagonal=True)


def plot_reliability(curves: dict[str, dict], path: str | Path, title: str = "Reliability") -> Path:
    """Reliability diagram: accuracy against mean confidence per bin, one line per curve (as trained,
    calibrated), the diagonal being perfect calibration; below, how many images each bin holds."""
    fig, (ax, axn) = plt.subplots(2, 1, figsize=(6, 6.4), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, alpha=0.5, label="perfectly calibrated")
    for (name, c), color in zip(curves.items(), ("tab:red", "tab:blue")):
        b = [x for x in c["bins"] if x["count"]]
        ax.plot([x["confidence"] for x in b], [x["accuracy"] for x in b], "o-", color=color, lw=1.4, ms=4,
                label=f"{name}: ECE {c['ece']:.3f}")
        axn.bar([(x["lo"] + x["hi"]) / 2 for x in c["bins"]], [x["count"] for x in c["bins"]],
                width=(c["bins"][0]["hi"] - c["bins"][0]["lo"]) * (0.9 if color == "tab:red" else 0.45),
                color=color, alpha=0.5)
    ax.set(ylabel="accuracy", title=title, xlim=(0, 1.01), ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    axn.set(xlabel="confidence (max probability)", ylabel="images")
    axn.grid(alpha=0.3)
    return _save(fig, path)


def plot_per_class(per_class: dict, path: str | Path, title: str = "F1 per class") -> Path:
    """Horizontal F1 bars per class, best at the top, with precision/recall/support as text."""
    warn_if_no_cjk_font(list(per_class))
    items = sorted(per_class.items(), key=lambda kv: (kv[1]["f1"] or 0.0))
    n = len(items)
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.32 * n + 1.2)))
    names = [k for k, _ in items]
    f1 = [v["f1"] or 0.0 for _, v in items]
    colors = [plt.get_cmap("RdYlGn")(0.15 + 0.7 * x) for x in f1]
    bars = ax.barh(range(n), f1, color=colors)
    ax.set_yticks(range(n), names, fontsize=_label_size(n))
    ax.bar_label(bars, labels=[f"{v['f1']:.2f}  (P {v['precision']:.2f} R {v['recall']:.2f} n={v['support']})"
                               for _, v in items], fontsize=max(_label_size(n) - 1, 6), padding=3)
    ax.set(xlim=(0, 1.45), xlabel="F1", title=title, xticks=[0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.axvline(1.0, color="grey", lw=0.6, ls=":")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path, bbox_tight=True)


def plot_image_grid(images, titles: list[str], path: str | Path, colors: list | None = None,
                    ncols: int = 8, title: str = "", cell: float = 2.0) -> Path:
    """A grid of images (PIL images or HxWx3 arrays in [0,1] or uint8) with a caption each."""
    warn_if_no_cjk_font(list(titles) + [title])
    n = max(len(images), 1)
    ncols = min(ncols, n)
    nrows = (n + ncols - 1) // ncols
    # constrained layout keeps the suptitle clear of the captions whatever the images' aspect ratios
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell * ncols, (cell + 0.45) * nrows), squeeze=False,
                             layout="constrained")
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= len(images):
            continue
        ax.imshow(images[k])
        color = colors[k] if colors else "black"
        ax.set_title(titles[k], fontsize=8, color=color)
        if color not in ("black", "k"):
            for s in ax.spines.values():  # a coloured frame marks the item
                s.set_visible(True)
                s.set_color(color)
                s.set_linewidth(2.5)
            ax.axis("on")
            ax.set_xticks([])
            ax.set_yticks([])
    if not images:
        axes.flat[0].text(0.5, 0.5, "nothing to show", ha="center", va="center")
    if title:
        fig.suptitle(title)
    return _save(fig, path, bbox_tight=True)


def plot_features_2d(xy, labels, classes: list[str], path: str | Path, wrong=None, title: str = "") -> Path:
    """2-D embedding of penultimate features, coloured by true class; misclassified points ringed in red."""
    warn_if_no_cjk_font(classes)
    import numpy as np

    xy = np.asarray(xy)
    labels = np.asarray(labels)
    n = len(classes)
    colors = class_colors(n)
    fig, ax = plt.subplots(figsize=(8.5 if n > 10 else 7, 6))
    for c in range(n):
        m = labels == c
        if m.any():
            ax.scatter(xy[m, 0], xy[m, 1], s=14, color=colors[c], label=classes[c], alpha=0.85, linewidths=0)
    if wrong is not None and np.asarray(wrong).any():
        w = np.asarray(wrong, dtype=bool)
        ax.scatter(xy[w, 0], xy[w, 1], s=46, facecolors="none", edgecolors="red", linewidths=1.0,
                   label="misclassified")
    ax.set(xticks=[], yticks=[], title=title)
    ax.legend(fontsize=_label_size(n), loc="center left", bbox_to_anchor=(1.01, 0.5),
              ncol=1 if n <= 20 else 2, frameon=False, markerscale=1.5)
    return _save(fig, path, bbox_tight=True)


# ---------------------------------------------------------------- dataset statistics

def plot_class_counts(classes: list[str], counts: dict[str, list[int]], path: str | Path, title: str = "") -> Path:
    """Images per class, one stacked bar segment per split (train, val, test)."""
    warn_if_no_cjk_font(classes)
    import numpy as np

    n = len(classes)
    fig, ax = plt.subplots(figsize=(max(6, 0.38 * n + 2), 4.5))
    bottom = np.zeros(n)
    split_colors = {"train": "tab:blue", "val": "tab:orange", "test": "tab:green"}
    for split, c in counts.items():
        ax.bar(range(n), c, bottom=bottom, label=f"{split} ({sum(c)})", color=split_colors.get(split))
        bottom += np.asarray(c)
    for i, tot in enumerate(bottom):
        ax.text(i, tot, f"{int(tot)}", ha="center", va="bottom", fontsize=max(_label_size(n) - 1, 6))
    ax.set_xticks(range(n), classes, rotation=90 if n > 8 else 0, fontsize=_label_size(n))
    ax.set(ylabel="images", title=title or "images per class", ylim=(0, max(bottom.max(), 1) * 1.12))
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path, bbox_tight=True)


def plot_image_sizes(widths, heights, path: str | Path, title: str = "", labels=None,
                     classes: list[str] | None = None) -> Path:
    """Scatter of image width vs height (pixels), coloured by class when labels are given."""
    import numpy as np

    warn_if_no_cjk_font(classes or [])
    w, h = np.asarray(widths), np.asarray(heights)
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    if labels is not None and classes:
        labels = np.asarray(labels)
        colors = class_colors(len(classes))
        for c, name in enumerate(classes):
            m = labels == c
            if m.any():
                ax.scatter(w[m], h[m], s=10, alpha=0.5, color=colors[c], label=name, linewidths=0)
        ax.legend(fontsize=_label_size(len(classes)), loc="center left", bbox_to_anchor=(1.01, 0.5),
                  frameon=False, ncol=1 if len(classes) <= 20 else 2, markerscale=2)
    else:
        ax.scatter(w, h, s=10, alpha=0.5, linewidths=0)
    if len(w):
        ax.set_title(title or f"image sizes: {len(w)} images, median {int(np.median(w))}x{int(np.median(h))} px")
    ax.set(xlabel="width (px)", ylabel="height (px)")
    ax.grid(alpha=0.3)
    return _save(fig, path, bbox_tight=True)
