"""Samples to tensors: eval and training transforms, class balance, the image dataset and its loader.

Which files are samples is decided in folders.py; the preprocessing a checkpoint stores, in preprocess.py.
"""
from __future__ import annotations

import os
import random
import sys
from collections.abc import Mapping

import torch
from torch.utils.data import DataLoader, Dataset, default_collate
from torchvision.transforms import v2 as T

from .files import load_image
from .preprocess import AUGMENT_PRESETS, Preprocess, default_augment

# ---------------------------------------------------------------- transforms


def _to_float(pre: Preprocess) -> list:
    return [T.ToImage(), T.ToDtype(torch.float32, scale=True), T.Normalize(list(pre.mean), list(pre.std))]


def _channels(pre: Preprocess) -> list:
    """Grayscale first for a 1-channel model: PIL's convert("L") on images (what decoding for training
    does), a no-op on 1-channel tensors from the decode cache; colour input is therefore accepted."""
    return [T.Grayscale(1)] if pre.channels == 1 else []


def eval_transform(pre: Preprocess | Mapping):
    """Resize shorter side, centre crop, normalise. Works on PIL images and on uint8 CHW tensors
    (torchvision.transforms.v2), so the decode cache and the plain loader share one definition.
    `pre`: a Preprocess, or a checkpoint's dict of one."""
    pre = Preprocess.of(pre)
    return T.Compose([*_channels(pre), T.Resize(pre.resize, interpolation=T.InterpolationMode(pre.interpolation),
                                                antialias=True),
                      T.CenterCrop(pre.img_size), *_to_float(pre)])


def train_transform(pre: Preprocess | Mapping, augment: str | None = "standard"):
    """Training-time augmentation, producing `pre.train_size` crops. none: the eval transform at
    that size; light: resize + random crop (mild) + flip; standard: RandomResizedCrop + flip; strong:
    standard + TrivialAugmentWide + RandomErasing; pad-crop-flip: the CIFAR recipe, pad by size/8 (4 px at
    32) and crop back at random, plus flip; pad-crop: pad by size/14 (2 px at 28) and crop, no flip, for
    digits and text, where a mirror image is another symbol. The checkpoint records the preset ("augment")."""
    pre = Preprocess.of(pre)
    augment = augment or default_augment(pre.img_size, pre.channels)
    size, interp = pre.train_size, T.InterpolationMode(pre.interpolation)
    resize = int(round(size * pre.resize / pre.img_size))  # the eval resize, scaled to the training crop
    ch = _channels(pre)
    if augment == "none":
        return T.Compose([*ch, T.Resize(resize, interpolation=interp, antialias=True), T.CenterCrop(size),
                          *_to_float(pre)])
    if augment == "light":
        return T.Compose([*ch, T.Resize(resize, interpolation=interp, antialias=True), T.RandomCrop(size),
                          T.RandomHorizontalFlip(), *_to_float(pre)])
    if augment in ("pad-crop-flip", "pad-crop"):
        pad = max(1, round(size / 8)) if augment == "pad-crop-flip" else max(1, round(size / 14))
        return T.Compose([*ch, T.Resize(resize, interpolation=interp, antialias=True), T.CenterCrop(size),
                          T.RandomCrop(size, padding=pad),
                          *([T.RandomHorizontalFlip()] if augment == "pad-crop-flip" else []), *_to_float(pre)])
    if augment == "standard":
        return T.Compose([*ch, T.RandomResizedCrop(size, interpolation=interp, antialias=True),
                          T.RandomHorizontalFlip(), *_to_float(pre)])
    if augment == "strong":
        return T.Compose([*ch, T.RandomResizedCrop(size, interpolation=interp, antialias=True),
                          T.RandomHorizontalFlip(), T.TrivialAugmentWide(interpolation=interp), *_to_float(pre),
                          T.RandomErasing(p=0.25)])
    raise ValueError(f"unknown --augment {augment!r}; choose one of: {', '.join(AUGMENT_PRESETS)}")


# ---------------------------------------------------------------- class imbalance

BALANCE_MODES = ("none", "weighted-loss", "sampler")


def class_weights(counts: list[int]) -> list[float]:
    """Inverse class frequency, scaled so a balanced dataset gets 1.0 everywhere (n / (k * n_c));
    a class with no training images gets 0."""
    n, k = sum(counts), sum(1 for c in counts if c)
    return [n / (k * c) if c else 0.0 for c in counts]


def balance_setup(samples: list[tuple[str, int]], counts: list[int], balance: str, seed: int = 0):
    """(sampler, loss_weight) for `--balance`: weighted-loss gives CrossEntropyLoss weights inverse to class
    frequency; sampler gives a seeded WeightedRandomSampler drawing every class equally often (with
    replacement, one epoch = len(samples) draws); none gives (None, None)."""
    if balance not in BALANCE_MODES:
        raise ValueError(f"unknown --balance {balance!r}; choose one of: {', '.join(BALANCE_MODES)}")
    if balance == "weighted-loss":
        return None, torch.tensor(class_weights(counts), dtype=torch.float32)
    if balance == "sampler":
        from torch.utils.data import WeightedRandomSampler
        g = torch.Generator()
        g.manual_seed(seed)
        w = [1.0 / counts[y] for _, y in samples]
        return WeightedRandomSampler(w, num_samples=len(samples), replacement=True, generator=g), None
    return None, None


def balance_report(classes: list[str], counts: list[int], balance: str = "none", warn_ratio: float = 3.0) -> list[str]:
    """Log lines: the per-class training counts, and a warning when largest/smallest > warn_ratio."""
    lines = ["train images per class: " + ", ".join(f"{c} {n}" for c, n in zip(classes, counts))]
    present = [n for n in counts if n]
    if present and warn_ratio and max(present) > warn_ratio * min(present):
        big = classes[counts.index(max(present))]
        small = classes[counts.index(min(present))]
        ratio = max(present) / min(present)
        hint = ("consider --balance weighted-loss or --balance sampler" if balance == "none"
                else f"--balance {balance} compensates")
        lines.append(f"warning: class imbalance: {big!r} has {ratio:.1f}x the images of {small!r} "
                     f"(over --imbalance-warn {warn_ratio:g}); {hint}")
    return lines


# ---------------------------------------------------------------- dataset and loader

class ImageDataset(Dataset):
    """(path, label) pairs decoded to RGB (grayscale with channels=1); an unreadable file yields None and
    is reported once."""

    def __init__(self, samples, transform, channels: int = 3):
        self.samples = list(samples)
        self.transform = transform
        self.channels = channels
        self._reported: set[str] = set()

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        path, y = self.samples[i]
        try:
            img = load_image(path, self.channels)
        except Exception as e:  # corrupt, truncated, not an image: skip, never crash an epoch
            if path not in self._reported:
                self._reported.add(path)
                print(f"\nskipping unreadable image {path}: {type(e).__name__}: {e}. "
                      f"Run `transferlearn data check` to find and quarantine such files.", file=sys.stderr)
            return None
        return self.transform(img), y


def collate_skip_none(batch):
    batch = [b for b in batch if b is not None]
    if not batch:
        return None
    return default_collate(batch)


def resolve_workers(workers) -> int:
    if workers in (None, "auto"):
        return min(os.cpu_count() or 1, 8)
    return int(workers)


def make_loader(samples, transform, batch_size: int, shuffle: bool, workers, seed: int = 0,
                drop_last: bool = False, sampler=None, channels: int = 3) -> DataLoader:
    """`samples`: (path, label) pairs decoded with `transform`, or a ready Dataset."""
    dataset = samples if isinstance(samples, Dataset) else ImageDataset(samples, transform, channels)
    n = resolve_workers(workers)
    g = torch.Generator()
    g.manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size,
                      shuffle=shuffle if sampler is None else False, sampler=sampler,
                      num_workers=n, persistent_workers=n > 0, collate_fn=collate_skip_none,
                      generator=g, drop_last=drop_last, pin_memory=torch.cuda.is_available())
