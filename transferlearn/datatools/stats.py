"""Dataset statistics: images per class and split, and image sizes (read from headers, fast)."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from ..data import DatasetError, list_class_dirs, list_images, split_folders
from ..runs.folders import write_json


GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}  # from the file header


def scan_splits(root: str | Path) -> tuple[list[str], dict[str, list[tuple[str, int]]]]:
    """Classes and (path, label) per split folder as they are on disk (no in-memory split)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"data folder {root} does not exist")
    folders = split_folders(root)
    if "train" not in folders:
        folders = {"all": root}
    classes: list[str] = []
    for f in folders.values():
        classes += [c for c in list_class_dirs(f) if c not in classes]
    if not classes:
        raise DatasetError(f"{root} has no class folders; expected {root}/train/<class>/<images> "
                           f"or {root}/<class>/<images>")
    if "all" not in folders:
        classes = list_class_dirs(folders["train"]) + [c for c in classes if c not in list_class_dirs(folders["train"])]
    index = {c: i for i, c in enumerate(classes)}
    splits = {}
    for name, f in folders.items():
        splits[name] = [(p, index[c]) for c in list_class_dirs(f) for p in list_images(f / c)]
    return classes, splits


def dataset_stats(root: str | Path, out: str | Path, log=print) -> dict:
    """class_counts.png, image_sizes.png and stats.json in `out`; returns the statistics."""
    import numpy as np

    from ..reporting import plots

    classes, splits = scan_splits(root)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    counts = {s: [sum(1 for _, y in smp if y == c) for c in range(len(classes))] for s, smp in splits.items()}
    widths, heights, labels, unreadable, grey = [], [], [], [], 0
    for smp in splits.values():
        for p, y in smp:
            try:
                with Image.open(p) as im:
                    w, h = im.size
                    grey += im.mode in GREY_MODES
            except Exception:
                unreadable.append(p)
                continue
            widths.append(w)
            heights.append(h)
            labels.append(y)
    name = Path(root).resolve().name
    plots.plot_class_counts(classes, counts, out / "class_counts.png", title=f"images per class: {name}")
    plots.plot_image_sizes(widths, heights, out / "image_sizes.png", labels=labels, classes=classes)
    total = [sum(c[i] for c in counts.values()) for i in range(len(classes))]
    stats = {"root": str(root), "classes": classes, "counts": counts, "total_per_class": total,
             "images": int(sum(total)), "unreadable": unreadable,
             "imbalance_ratio": (max(total) / max(min(total), 1)) if total else None,
             "width": _describe(widths), "height": _describe(heights),
             "aspect_ratio": _describe([w / h for w, h in zip(widths, heights) if h]) if widths else None,
             "grayscale_images": grey, "suggest_in_channels": 1 if widths and grey == len(widths) else 3}
    write_json(out / "stats.json", stats)
    width = max(len(c) for c in classes)
    log(f"{'class':<{width}}  " + "  ".join(f"{s:>6}" for s in counts) + "   total")
    for i, c in enumerate(classes):
        log(f"{c:<{width}}  " + "  ".join(f"{counts[s][i]:>6}" for s in counts) + f"  {total[i]:>6}")
    if widths:
        log(f"{len(widths)} images, width {int(np.min(widths))}-{int(np.max(widths))} px (median "
            f"{int(np.median(widths))}), height {int(np.min(heights))}-{int(np.max(heights))} px (median "
            f"{int(np.median(heights))}); largest/smallest class {stats['imbalance_ratio']:.1f}x")
    if unreadable:
        log(f"warning: {len(unreadable)} unreadable file(s), e.g. {unreadable[0]}")
    if widths and grey == len(widths):
        log(f"every image is grayscale: train with --in-channels 1 (one channel decoded, cached and normalised; "
            f"a pretrained stem's RGB kernels are summed)"
            + (f" and --img-size {int(np.median(widths))} (small images are used whole)"
               if max(widths) <= 32 and max(heights) <= 32 else ""))
    elif grey:
        log(f"{grey} of {len(widths)} images are grayscale; they are converted to RGB for a colour model")
    log(f"plots: {out / 'class_counts.png'}, {out / 'image_sizes.png'}")
    return stats


def _describe(v) -> dict | None:
    import numpy as np

    if not len(v):
        return None
    a = np.asarray(v, dtype=float)
    return {"min": float(a.min()), "median": float(np.median(a)), "mean": float(a.mean()), "max": float(a.max())}
