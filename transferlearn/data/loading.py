"""Image folders to datasets and loaders: discovery, validation, splitting, transforms.

Layout: DIR/train/<class>/*, DIR/val/<class>/* (optional DIR/test/<class>/*). Without val/,
a stratified, seeded split of train/ is made in memory; the user's files are never touched.
"""
from __future__ import annotations

import os
import random
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, default_collate
from torchvision.transforms import v2 as T

from .files import IMAGE_EXTENSIONS, list_class_dirs, list_images, load_image

VAL_NAMES = ("val", "valid", "validation")


class DatasetError(ValueError):
    """The data folder is not usable as given; the message names the path and the fix."""


@dataclass
class Splits:
    classes: list[str]
    train: list[tuple[str, int]]
    val: list[tuple[str, int]]
    test: list[tuple[str, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def counts(self, split: str) -> list[int]:
        c = [0] * len(self.classes)
        for _, y in getattr(self, split):
            c[y] += 1
        return c


def _scan(folder: Path, classes: list[str] | None, what: str) -> tuple[list[str], list[tuple[str, int]]]:
    found = list_class_dirs(folder)
    if not found:
        raise DatasetError(f"{folder} has no class folders. Expected {folder}/<class name>/<images>; "
                           f"see `transferlearn data split` to build this layout.")
    if classes is None:
        classes = found
    else:
        unknown = [c for c in found if c not in classes]
        if unknown:
            raise DatasetError(f"{what} class folder(s) {', '.join(repr(str(folder / u)) for u in unknown)} "
                               f"are not classes in train/ ({', '.join(classes)}). "
                               f"Rename them to a train class, add them to train/, or remove them from {what}/.")
    index = {c: i for i, c in enumerate(classes)}
    samples = []
    for c in found:
        imgs = list_images(folder / c)
        if not imgs:
            raise DatasetError(f"class folder {folder / c} has no images (looked for {' '.join(IMAGE_EXTENSIONS)}). "
                               f"Add images or remove the folder.")
        samples.extend((p, index[c]) for p in imgs)
    return classes, samples


def stratified_split(samples: list[tuple[str, int]], fraction: float, seed: int):
    """Split (path, label) pairs per class; same seed and files give the same split on any machine."""
    train, val, _ = stratified_split3(samples, fraction, 0.0, seed)
    return train, val


def stratified_split3(samples: list[tuple[str, int]], val_fraction: float, test_fraction: float, seed: int):
    """(train, val, test) per class. Each class's sorted paths are shuffled by an RNG seeded with a string
    (random.Random hashes it with SHA-512, not Python's randomised hash), so the same seed and file names
    give the same split on any machine (names compared in Unicode NFC form); val takes the first share,
    test the next, train the rest. With test_fraction 0 this is exactly `stratified_split`. A class keeps at least one training image,
    and gets at least one val (test) image when it has enough images and the fraction is not 0."""
    by_class: dict[int, list[str]] = {}
    for p, y in samples:
        by_class.setdefault(y, []).append(p)
    train, val, test = [], [], []
    for y in sorted(by_class):
        # sorted by the NFC form: macOS file systems return decomposed (NFD) names, Linux keeps what was written
        paths = sorted(by_class[y], key=lambda p: (unicodedata.normalize("NFC", p), p))
        random.Random(f"{seed}-{y}").shuffle(paths)
        n = len(paths)
        k = round(n * val_fraction)
        if n >= 2:
            k = min(max(k, 1), n - 1) if val_fraction > 0 else 0
        else:
            k = 0
        t = round(n * test_fraction)
        if test_fraction > 0 and n - k >= 2:
            t = min(max(t, 1), n - k - 1)
        else:
            t = 0
        val += [(p, y) for p in paths[:k]]
        test += [(p, y) for p in paths[k:k + t]]
        train += [(p, y) for p in paths[k + t:]]
    return train, val, test


def find_splits(root: str | os.PathLike, val_split: float = 0.2, seed: int = 0) -> Splits:
    """Discover classes and samples under `root`, validating the layout."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"data folder {root} does not exist")
    train_dir = root / "train"
    notes = []
    if not train_dir.is_dir():
        train_dir = root  # a plain folder of class folders
        notes.append(f"{root} has no train/ folder: using its class folders as the training set")
    classes, train = _scan(train_dir, None, "train")
    val_dir = next((root / v for v in VAL_NAMES if (root / v).is_dir() and train_dir != root), None)
    if val_dir is not None:
        _, val = _scan(val_dir, classes, val_dir.name)
        counts = [0] * len(classes)
        for _, y in val:
            counts[y] += 1
        missing = [c for c, n in zip(classes, counts) if n == 0]
        if missing:
            notes.append(f"warning: no validation images for class(es) {', '.join(missing)} in {val_dir}")
    else:
        if not val_split or val_split <= 0 or val_split >= 1:
            raise DatasetError(f"{root} has no val/ folder; pass --val-split 0.2 to hold out 20% of train/ "
                               f"(a stratified, seeded split; no files are moved)")
        train, val = stratified_split(train, val_split, seed)
        notes.append(f"no val/ folder in {root}: holding out {val_split:.0%} of each class (seed {seed}), "
                     f"files untouched")
    test = []
    if (root / "test").is_dir() and train_dir != root:
        _, test = _scan(root / "test", classes, "test")
    return Splits(classes=classes, train=train, val=val, test=test, notes=notes)


# ---------------------------------------------------------------- transforms

SMALL_IMAGE = 32  # --img-size at or below this: native-size images (MNIST 28, CIFAR 32), no border-cutting crop


def is_small(img_size: int) -> bool:
    return int(img_size) <= SMALL_IMAGE


def preprocess_config(img_size: int, mean, std, train_size: int | None = None, channels: int = 3,
                      crop_pct: float | None = None, interpolation: str = "bilinear") -> dict:
    """Everything inference needs to reproduce eval preprocessing; stored in every checkpoint.

    `train_size` is the crop the training augmentation produces; it may be smaller than the eval
    `img_size` (train low, test high: RandomResizedCrop enlarges objects, so a smaller training crop
    matches their apparent size at test time and costs (train/img)^2 of the compute).
    `crop_pct` (eval crop / resize, from the weights' metadata; 224/256 when not given) is 1 for small
    images: a 28 px digit is evaluated whole. With 1 channel, RGB mean/std are averaged (the stem's
    kernels are summed over RGB, so a grey pixel keeps its meaning). Older checkpoints lack
    channels/crop_pct: readers use `channels_of` (3)."""
    if channels not in (1, 3):
        raise ValueError(f"--in-channels {channels}: use 1 (grayscale) or 3 (colour)")
    mean, std = [float(m) for m in mean], [float(s) for s in std]
    if channels == 1 and len(mean) == 3:
        mean, std = [round(sum(mean) / 3, 6)], [round(sum(std) / 3, 6)]
    crop_pct = 1.0 if is_small(img_size) else (crop_pct or 224 / 256)
    return {"img_size": int(img_size), "resize": int(round(img_size / crop_pct)), "mean": mean, "std": std,
            "interpolation": interpolation, "crop": "center", "crop_pct": round(float(crop_pct), 6),
            "train_size": int(train_size or img_size), "channels": int(channels)}


def channels_of(pre: dict) -> int:
    """Input channels of a preprocessing config (3 for checkpoints made before --in-channels)."""
    return int(pre.get("channels", 3))


def _interp(pre: dict):
    return T.InterpolationMode(pre.get("interpolation", "bilinear"))


def _to_float(pre: dict) -> list:
    return [T.ToImage(), T.ToDtype(torch.float32, scale=True), T.Normalize(pre["mean"], pre["std"])]


def _channels(pre: dict) -> list:
    """Grayscale first for a 1-channel model: PIL's convert("L") on images (what decoding for training
    does), a no-op on 1-channel tensors from the decode cache; colour input is therefore accepted."""
    return [T.Grayscale(1)] if channels_of(pre) == 1 else []


def eval_transform(pre: dict):
    """Resize shorter side, centre crop, normalise. Works on PIL images and on uint8 CHW tensors
    (torchvision.transforms.v2), so the decode cache and the plain loader share one definition."""
    return T.Compose([*_channels(pre), T.Resize(pre["resize"], interpolation=_interp(pre), antialias=True),
                      T.CenterCrop(pre["img_size"]), *_to_float(pre)])


AUGMENT_PRESETS = ("none", "light", "standard", "strong", "pad-crop-flip", "pad-crop")


def default_augment(img_size: int) -> str:
    """pad-crop-flip for small images (CIFAR recipes: RandomResizedCrop would zoom into a 32 px image),
    standard otherwise."""
    return "pad-crop-flip" if is_small(img_size) else "standard"


def train_transform(pre: dict, augment: str | None = "standard"):
    """Training-time augmentation, producing `pre["train_size"]` crops. none: the eval transform at
    that size; light: resize + random crop (mild) + flip; standard: RandomResizedCrop + flip; strong:
    standard + TrivialAugmentWide + RandomErasing; pad-crop-flip: the CIFAR recipe, pad by size/8 (4 px at
    32) and crop back at random, plus flip; pad-crop: pad by size/14 (2 px at 28) and crop, no flip, for
    digits and text, where a mirror image is another symbol. The checkpoint records the preset ("augment")."""
    augment = augment or default_augment(pre["img_size"])
    size, interp = pre.get("train_size") or pre["img_size"], _interp(pre)
    resize = int(round(size * pre["resize"] / pre["img_size"]))  # the eval resize, scaled to the training crop
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
