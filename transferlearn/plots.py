"""PNG plots of training runs (matplotlib, headless)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .fonts import use_cjk_font  # noqa: E402

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


def _save(fig, path, title: str = "") -> Path:
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_curves(rows: list[dict], path: str | Path, title: str = "") -> Path:
    """Loss and accuracy vs epoch, train and val, from results.csv rows."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for key, style in (("train", "-"), ("val", "--")):
        for ax, metric in ((ax_loss, "loss"), (ax_acc, "acc")):
            xs, ys = _floats(rows, f"{key}_{metric}")
            if xs:
                ax.plot(xs, ys, style, marker="o", markersize=3, label=key)
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
    fig, (ax_curve, ax_acc, ax_time) = plt.subplots(1, 3, figsize=(15, 4.2),
                                                    gridspec_kw={"width_ratios": [2, 1, 1]})
    modes = list(results)
    colors = [MODE_COLORS.get(m, None) for m in modes]
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
