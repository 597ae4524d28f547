"""Eval preprocessing in PIL and numpy, no torch: what the ONNX path, CAM overlays and the decode
cache compute, the same as torchvision's Resize(int) + CenterCrop + Normalize in loading.py."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from PIL import Image

from .files import load_rgb, to_channels
from .preprocess import Preprocess


RESAMPLE = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST,
            "lanczos": Image.LANCZOS, "box": Image.BOX, "hamming": Image.HAMMING}


def resized_shape(w: int, h: int, size: int, max_aspect: float | None = None) -> tuple[int, int]:
    """(width, height) with the shorter side `size`, computed as torchvision's Resize(size) does (the
    longer side truncated), so a cached image and eval's Resize agree; the longer side capped at
    max_aspect * size (None: no cap)."""
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(size * long / short)
    if max_aspect is not None:
        new_long = min(new_long, int(max_aspect * size))
    return (size, new_long) if w <= h else (new_long, size)


def resize_shorter(img: Image.Image, size: int, interpolation: str = "bilinear") -> Image.Image:
    """torchvision `Resize(int)` on a PIL image: shorter side to `size`, longer side truncated."""
    shape = resized_shape(*img.size, size)
    return img if shape == img.size else img.resize(shape, RESAMPLE.get(interpolation, Image.BILINEAR))


def center_crop(img: Image.Image, size: int) -> Image.Image:
    """torchvision `CenterCrop(int)` on a PIL image (pads with black when the image is smaller)."""
    w, h = img.size
    if w < size or h < size:
        canvas = Image.new(img.mode, (max(w, size), max(h, size)))
        canvas.paste(img, ((max(w, size) - w) // 2, (max(h, size) - h) // 2))
        img, (w, h) = canvas, canvas.size
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def model_view(img: Image.Image, pre: Preprocess | Mapping) -> Image.Image:
    """The region the model sees, in its channels (L for a 1-channel model; colour input accepted)."""
    pre = Preprocess.of(pre)
    img = to_channels(img, pre.channels)
    return center_crop(resize_shorter(img, pre.resize, pre.interpolation), pre.img_size)


def crop_for_display(img: Image.Image, pre: Preprocess | Mapping) -> Image.Image:
    """The region the model sees (resized + center-cropped), as RGB for plots and CAM overlays."""
    return model_view(img, pre).convert("RGB")


def numpy_preprocess(img: Image.Image, pre: Preprocess | Mapping) -> np.ndarray:
    """`data.eval_transform` reproduced with PIL + numpy: float32 CHW, normalised."""
    pre = Preprocess.of(pre)
    a = np.asarray(model_view(img, pre), dtype=np.float32) / 255.0
    if a.ndim == 2:
        a = a[:, :, None]
    a = (a - np.asarray(pre.mean, dtype=np.float32)) / np.asarray(pre.std, dtype=np.float32)
    return np.ascontiguousarray(a.transpose(2, 0, 1))


def thumbnail(path: str, size: int = 192) -> Image.Image:
    """An image for a grid of pictures: at most size x size, or a grey square when it cannot be read."""
    try:
        im = load_rgb(path)
    except Exception:  # a grid must not fail on one unreadable file
        return Image.new("RGB", (size, size), (200, 200, 200))
    im.thumbnail((size, size))
    return im
