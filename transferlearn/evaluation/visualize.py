"""Look at what the model sees: a batch of augmented training images, and predictions on val images."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from ..data import ImageDataset, Preprocess, default_augment, find_splits, preprocess_config, train_transform
from ..models import get_spec
from ..runs import run_folder


def denormalize(x, mean, std) -> np.ndarray:
    """A normalised CxHxW tensor back to an HxWx3 array in [0, 1] for display (grey repeated for C=1)."""
    a = x.detach().cpu().float().numpy().transpose(1, 2, 0)
    a = np.clip(a * np.asarray(std) + np.asarray(mean), 0, 1)
    return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a


def visualize_batch(data: str | Path, out: str | Path, n: int = 32, img_size: int = 224, arch: str = "resnet18",
                    checkpoint: str | Path | None = None, seed: int = 0, val_split: float = 0.2,
                    augment: str | None = None, in_channels: int = 3) -> Path:
    """A grid of `n` training images after training augmentation, de-normalised, with class labels.

    Preprocessing (size, mean, std) and the augmentation preset come from `checkpoint` when given,
    else from `arch`, `img_size` and `augment` (default: training's, by size and channels)."""
    from ..reporting import plots

    splits = find_splits(data, val_split, seed)
    if checkpoint:
        from ..runs.checkpoint import load
        ck = load(checkpoint)
        pre = Preprocess.of(ck["preprocess"])
        augment = augment or ck.get("augment") or "standard"
    else:
        spec = get_spec(arch)
        pre = preprocess_config(img_size, spec.mean, spec.std, channels=in_channels, crop_pct=spec.crop_pct,
                                interpolation=spec.interpolation)
        augment = augment or default_augment(img_size, in_channels)
    ds = ImageDataset(splits.train, train_transform(pre, augment), pre.channels)
    rng = random.Random(seed)
    idx = rng.sample(range(len(ds)), min(n, len(ds)))
    import torch
    torch.manual_seed(seed)
    images, titles = [], []
    for i in idx:
        item = ds[i]
        if item is None:
            continue
        x, y = item
        images.append(denormalize(x, pre.mean, pre.std))
        titles.append(splits.classes[y])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return plots.plot_image_grid(images, titles, out, ncols=8,
                                 title=f"{len(images)} training images as the model sees them "
                                       f"({pre.img_size} px, --augment {augment}) from {Path(data).name}")


def visualize_predictions(checkpoint: str | Path, data: str | Path, out: str | Path | None = None,
                          split: str = "val", n: int = 32, seed: int = 0, batch_size: int = 32,
                          workers: int = 0) -> Path:
    """A grid of `n` random images of `split` with predicted and true labels; mistakes in red."""
    from ..reporting import plots
    from ..models import load_model
    from ..data import thumbnail
    from .evaluate import predict_folder, resolve_samples

    model, ckpt = load_model(checkpoint)
    classes = ckpt["classes"]
    samples, _ = resolve_samples(data, split, classes, ckpt.get("args"))
    samples = random.Random(seed).sample(samples, min(n, len(samples)))
    preds = predict_folder(model, samples, ckpt["preprocess"], batch_size, workers)
    wrong = preds.pred != preds.labels
    titles = [f"pred: {classes[p]} ({preds.probs[i, p]:.2f})\ntrue: {classes[t]}"
              for i, (p, t) in enumerate(zip(preds.pred, preds.labels))]
    if out is None:
        out = run_folder(checkpoint) / "predictions.png"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return plots.plot_image_grid([thumbnail(p) for p in preds.paths], titles, out,
                                 colors=["red" if w else "black" for w in wrong], ncols=8,
                                 title=f"{len(titles)} {split} images: {int(wrong.sum())} mistake"
                                       f"{'' if int(wrong.sum()) == 1 else 's'} (red)")
