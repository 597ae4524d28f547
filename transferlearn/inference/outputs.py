"""What `transferlearn predict` hands back: the results, as CSV, JSON, a console table and plots.

UTF-8 throughout: class names such as 苹果-红 survive every file, and the table pads by display width.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ..data import Preprocess, load_rgb, to_rgb

# ---------------------------------------------------------------- results


@dataclass
class Prediction:
    """One image's result. `topk` is [(label, probability), ...], best first. With a reject rule, `score`
    is the image's score and `unknown` says it fell below the threshold: `label` is then "unknown", while
    `index`, `confidence` and `topk` still name the classes the model would have picked."""
    label: str
    confidence: float
    index: int
    topk: list[tuple[str, float]]
    path: str | None = None
    probs: np.ndarray | None = field(default=None, repr=False)  # all classes, in `classes` order
    unknown: bool = False
    score: float | None = None  # the reject rule's score; None without a rule

    def to_dict(self) -> dict:
        d = {"path": self.path, "label": self.label, "confidence": self.confidence,
             "topk": [{"label": lab, "confidence": p} for lab, p in self.topk]}
        return d if self.score is None else {**d, "unknown": self.unknown, "score": self.score}

    # dict-style access, so `p["label"]` works as well as `p.label`
    def __getitem__(self, key):
        return self.to_dict()[key]


@dataclass
class Skipped:
    path: str
    error: str


# ---------------------------------------------------------------- inputs


# ---------------------------------------------------------------- files and screen


def save_predictions_csv(preds: Sequence[Prediction], path: str | os.PathLike, topk: int) -> None:
    """path, label, confidence, then label_i / prob_i for i in 1..topk (UTF-8 with BOM for Excel), then
    unknown and score when a reject rule was used."""
    import csv
    cols = ["path", "label", "confidence"]
    for i in range(1, topk + 1):
        cols += [f"top{i}_label", f"top{i}_prob"]
    scored = any(p.score is not None for p in preds)
    cols += ["unknown", "score"] if scored else []
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8-sig") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for p in preds:
            row = [p.path, p.label, f"{p.confidence:.6f}"]
            for lab, prob in p.topk[:topk]:
                row += [lab, f"{prob:.6f}"]
            w.writerow(row + ([int(p.unknown), "" if p.score is None else f"{p.score:.6f}"] if scored else []))


def save_predictions_json(preds: Sequence[Prediction], path: str | os.PathLike, skipped: Sequence[Skipped] = (),
               extra: dict | None = None) -> None:
    """{...extra, predictions: [...], skipped: [...]} as UTF-8 JSON; path "-" writes to stdout."""
    obj = {**(extra or {}), "predictions": [p.to_dict() for p in preds],
           "skipped": [{"path": s.path, "error": s.error} for s in skipped]}
    text = json.dumps(obj, indent=2, ensure_ascii=False) + "\n"
    if os.fspath(path) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text, encoding="utf-8")


def format_table(preds: Sequence[Prediction], topk: int, max_rows: int = 0, width: int = 40) -> str:
    """A plain-text table: image, top-1 label and confidence, then the other top-k guesses."""
    rows = preds if not max_rows else preds[:max_rows]

    def short(s: str) -> str:
        return s if len(s) <= width else "..." + s[-(width - 3):]

    head = ["image", "label", "conf"] + ([f"top-{min(topk, 5)}"] if topk > 1 else [])
    body = []
    for p in rows:
        r = [short(p.path or "<image>"), p.label, f"{p.confidence:.3f}"]
        if topk > 1:
            r.append("  ".join(f"{lab} {prob:.3f}" for lab, prob in p.topk[1:topk]))
        body.append(r)
    widths = [max(_display_width(x) for x in col) for col in zip(head, *body)] if body else [len(h) for h in head]
    lines = ["  ".join(_ljust(c, w) for c, w in zip(r, widths)).rstrip() for r in [head] + body]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if max_rows and len(preds) > max_rows:
        lines.append(f"... {len(preds) - max_rows} more rows (use --csv/--json for all, or --max-rows 0)")
    return "\n".join(lines)


def _display_width(s: str) -> int:
    """Terminal columns: East Asian wide characters (e.g. Chinese class names) take two."""
    import unicodedata
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s)


def _ljust(s: str, width: int) -> str:
    return s + " " * max(0, width - _display_width(s))


def summarize(preds: Sequence[Prediction]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in preds:
        counts[p.label] = counts.get(p.label, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def plot_prediction(pred: Prediction, classes: Sequence[str], preprocess: Preprocess, path: str | os.PathLike,
                    image: Image.Image | None = None, max_bars: int = 20) -> Path:
    """The image (dashed: the center crop the model sees) beside a bar chart of class confidences."""
    from ..reporting.plots import plt  # Agg backend and CJK font already set up there
    img = image if image is not None else load_rgb(pred.path)
    probs = pred.probs if pred.probs is not None else np.array([dict(pred.topk).get(c, 0.0) for c in classes])
    order = np.argsort(-probs, kind="stable")[:max_bars][::-1]
    n = len(order)
    fig, (ax_img, ax_bar) = plt.subplots(1, 2, figsize=(10, max(3.6, 0.32 * n + 1.2)),
                                         gridspec_kw={"width_ratios": [1, 1.2]})
    img = to_rgb(img)
    if max(img.size) > 1024:  # plots need no more; keeps thousands of plots fast
        img = img.copy()
        img.thumbnail((1024, 1024))
    ax_img.imshow(img)
    w, h = img.size  # dashed: the center crop the model sees
    pre = Preprocess.of(preprocess)
    side = min(w, h) * pre.img_size / pre.resize
    for style in ({"ls": "-", "lw": 2.2, "ec": "black"}, {"ls": "--", "lw": 1.4, "ec": "white"}):
        ax_img.add_patch(plt.Rectangle(((w - side) / 2, (h - side) / 2), side, side, fill=False, alpha=0.85, **style))
    ax_img.set_axis_off()
    ax_img.set_title(Path(pred.path).name if pred.path else "image", fontsize=10)
    colors = ["tab:orange" if j == pred.index else "tab:blue" for j in order]
    bars = ax_bar.barh([classes[j] for j in order], probs[order], color=colors)
    ax_bar.bar_label(bars, labels=[f"{probs[j]:.1%}" for j in order], padding=3, fontsize=9)
    ax_bar.set_xlim(0, 1.15)
    ax_bar.set_xlabel("confidence")
    ax_bar.set_title(f"{pred.label}  {pred.confidence:.1%}", fontsize=12)
    if len(classes) > n:
        ax_bar.text(1.0, -0.12, f"top {n} of {len(classes)} classes", transform=ax_bar.transAxes,
                    ha="right", fontsize=8, color="gray")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_name(pred_path: str | None, i: int, used: set[str]) -> str:
    """A unique PNG file name per image: its stem, numbered when two images share one."""
    stem = Path(pred_path).stem if pred_path else f"image{i}"
    name = f"{stem}.png"
    k = 2
    while name in used:
        name = f"{stem}_{k}.png"
        k += 1
    used.add(name)
    return name


def throughput(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("nan")
