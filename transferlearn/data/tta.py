"""Test-time augmentation: several views of one image, each as the model sees it, to average over.

    flip   the centre crop and its mirror image (2 views)
    5crop  the four corner crops and the centre crop of the resized image (5 views), torchvision's
           FiveCrop: the same scale as eval, other parts of the picture

Views are made in PIL + numpy (`pixels.py`), so the PyTorch and onnxruntime backends see the same
arrays; view 0 of `flip` is exactly what eval's own preprocessing gives.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from PIL import Image, ImageOps

from .files import to_channels
from .pixels import center_crop, resize_shorter
from .preprocess import Preprocess

TTA_MODES = ("none", "flip", "5crop")
VIEWS = {"none": 1, "flip": 2, "5crop": 5}


def check_tta(mode: str) -> str:
    if mode not in TTA_MODES:
        raise ValueError(f"--tta {mode!r}: use one of {', '.join(TTA_MODES)}")
    return mode


def tta_views(img: Image.Image, pre: Preprocess | Mapping, mode: str) -> list[Image.Image]:
    """The views of `img` (any mode) for `mode`, each img_size x img_size in the model's channels."""
    pre = Preprocess.of(pre)
    check_tta(mode)
    resized = resize_shorter(to_channels(img, pre.channels), pre.resize, pre.interpolation)
    center = center_crop(resized, pre.img_size)
    if mode == "none":
        return [center]
    if mode == "flip":
        return [center, ImageOps.mirror(center)]
    w, h, s = *resized.size, pre.img_size
    if w < s or h < s:  # smaller than the crop: corners are the centre (padded), as FiveCrop would fail
        return [center] * 5
    corners = [(0, 0), (w - s, 0), (0, h - s), (w - s, h - s)]
    return [resized.crop((x, y, x + s, y + s)) for x, y in corners] + [center]


def normalize(img: Image.Image, pre: Preprocess) -> np.ndarray:
    """A view to float32 CHW, scaled and normalised as `numpy_preprocess` does."""
    a = np.asarray(img, dtype=np.float32) / 255.0
    if a.ndim == 2:
        a = a[:, :, None]
    a = (a - np.asarray(pre.mean, dtype=np.float32)) / np.asarray(pre.std, dtype=np.float32)
    return np.ascontiguousarray(a.transpose(2, 0, 1))


class TTATransform:
    """Picklable (for DataLoader workers): an image -> float32 array (V, C, H, W) of its views."""

    def __init__(self, pre: Preprocess | Mapping, mode: str, tensor: bool = False):
        self.pre, self.mode, self.tensor = Preprocess.of(pre), check_tta(mode), tensor

    @property
    def views(self) -> int:
        return VIEWS[self.mode]

    def __call__(self, img: Image.Image):
        a = np.stack([normalize(v, self.pre) for v in tta_views(img, self.pre, self.mode)])
        if self.tensor:
            import torch
            return torch.from_numpy(a)
        return a
