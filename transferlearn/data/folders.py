"""Split discovery: DIR/train/<class>/*, DIR/val/<class>/* and DIR/test/<class>/* -> labelled samples.

The one place that decides which folder is train, val or test. Without val/, a stratified, seeded
split of train/ is made in memory; the user's files are never touched.
"""
from __future__ import annotations

import os
import random
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DatasetError
from .files import IMAGE_EXTENSIONS, list_class_dirs, list_images

VAL_NAMES = ("val", "valid", "validation")


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


def scan(folder: Path, classes: list[str] | None, what: str) -> tuple[list[str], list[tuple[str, int]]]:
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


def split_folders(root: str | os.PathLike) -> dict[str, Path]:
    """The split folders of `root` as they are on disk: {"train": root/train, "val": root/val (or valid/,
    validation/), "test": root/test}, those that exist. Every reader of a dataset root asks here."""
    root = Path(root)
    found = {}
    for split, names in (("train", ("train",)), ("val", VAL_NAMES), ("test", ("test",))):
        folder = next((root / n for n in names if (root / n).is_dir()), None)
        if folder is not None:
            found[split] = folder
    return found


def find_splits(root: str | os.PathLike, val_split: float = 0.2, seed: int = 0) -> Splits:
    """Discover classes and samples under `root`, validating the layout."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"data folder {root} does not exist")
    folders = split_folders(root)
    notes = []
    if "train" not in folders:  # a plain folder of class folders
        folders = {"train": root}
        notes.append(f"{root} has no train/ folder: using its class folders as the training set")
    classes, train = scan(folders["train"], None, "train")
    val_dir = folders.get("val")
    if val_dir is not None:
        _, val = scan(val_dir, classes, val_dir.name)
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
    if "test" in folders:
        _, test = scan(folders["test"], classes, "test")
    return Splits(classes=classes, train=train, val=val, test=test, notes=notes)

