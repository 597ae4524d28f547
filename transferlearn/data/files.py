"""Which files are images, and how any image PIL reads becomes RGB (or grayscale, for 1-channel models).

Shared by training, `data check`, `predict` and `serve`, so that every command agrees on
what counts as a sample and how it is decoded.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..errors import ImageTooLarge


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm")

# Names that operating systems, archivers and notebooks leave behind; never classes, never samples.
JUNK_NAMES = {"__MACOSX", "Thumbs.db", "desktop.ini", ".DS_Store", ".ipynb_checkpoints", "@eaDir"}

# Refuse decompression bombs but allow large camera photos (PIL's default warns at ~89 MP).
Image.MAX_IMAGE_PIXELS = 200_000_000


def is_hidden(name: str) -> bool:
    """True for dot-files, OS/archiver junk and notebook checkpoints."""
    return name.startswith(".") or name in JUNK_NAMES


def is_inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """True when `path` is `folder` or lies below it, links resolved (so a user's dataset is never written into)."""
    try:
        Path(path).resolve().relative_to(Path(folder).resolve())
        return True
    except ValueError:
        return False


def is_image_file(path: str | os.PathLike) -> bool:
    p = Path(path)
    return (not is_hidden(p.name)) and p.suffix.lower() in IMAGE_EXTENSIONS


def list_class_dirs(root: str | os.PathLike) -> list[str]:
    """Sorted class folder names under `root`, junk and hidden folders skipped."""
    return sorted(e.name for e in os.scandir(root) if e.is_dir() and not is_hidden(e.name))


def list_images(folder: str | os.PathLike) -> list[str]:
    """All image files under `folder` (recursively), skipping hidden folders; sorted for reproducibility."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not is_hidden(d))
        out.extend(os.path.join(dirpath, f) for f in filenames if is_image_file(f))
    return sorted(out)


def _to_8bit(im: Image.Image) -> Image.Image:
    """16-bit and float images (modes I;16, I, F) scaled to 8-bit by their actual range."""
    a = np.asarray(im, dtype=np.float64)
    lo, hi = float(a.min()), float(a.max())
    if im.mode.startswith("I;16") or (im.mode == "I" and hi > 255):
        # 16-bit data: keep absolute brightness where the range allows (a dark 16-bit image stays dark)
        scale = 65535.0 if hi > 255 else 255.0
        a = a / scale * 255.0
    elif im.mode == "F":
        a = (a - lo) / (hi - lo + 1e-12) * 255.0
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), mode="L")


def to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL image to RGB: EXIF rotation applied, alpha composited on white, CMYK/palette/16-bit converted."""
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # a broken EXIF block must not make a readable image unusable
        pass
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        im = _to_8bit(im)
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "RGBa"):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    if im.mode != "RGB":
        im = im.convert("RGB")
    return im


def open_image(path: str | os.PathLike) -> Image.Image:
    """Image.open (which reads only the header) that refuses more than MAX_IMAGE_PIXELS by name before
    anything is decoded. PIL itself only warns up to twice that limit, so a 100 KB PNG of 20000x20000
    pixels would otherwise be decoded in full (1.2 GB)."""
    with warnings.catch_warnings():  # PIL's warning is replaced by the error below
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        im = Image.open(path)
    w, h = im.size
    if w * h > Image.MAX_IMAGE_PIXELS:
        im.close()
        raise ImageTooLarge(f"{w}x{h} pixels ({w * h / 1e6:.0f} MP) is over the {Image.MAX_IMAGE_PIXELS / 1e6:.0f} MP "
                            f"limit (a decompression bomb, or an image to downsize before training)")
    return im


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """Decode `path` fully (first frame of an animation) and return RGB. Raises on unreadable files."""
    with open_image(path) as im:
        im.seek(0)
        im.load()
        return to_rgb(im)


def to_channels(im: Image.Image, channels: int = 3) -> Image.Image:
    """RGB for 3 channels; for 1, PIL's ITU-R 601-2 luma ("L") of the RGB image, so a colour photo given to
    a grayscale model and a grayscale file give what training saw (an L file round-trips exactly)."""
    im = to_rgb(im)
    return im if channels == 3 else im.convert("L")


def load_image(path: str | os.PathLike, channels: int = 3) -> Image.Image:
    """`load_rgb`, or its grayscale for a 1-channel model."""
    return to_channels(load_rgb(path), channels) if channels != 3 else load_rgb(path)
