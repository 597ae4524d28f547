"""Work that does not change between epochs, done once.

- `DecodedImages`: every image decoded and resized once (shorter side = preprocess 'resize', the
  whole frame kept up to a 2:1 aspect), stored as a uint8 memory-mapped file on disk keyed by each
  file's path, size and mtime plus the resize parameters. Epochs then read raw pixels from the
  page cache and only crop/flip/normalise tensors, so training crops see the same frame the
  uncached loop sees. Memory stays bounded: nothing is held whole. Validation through the cache
  matches the eval pipeline (eval's Resize is the identity on a cached image).
(The frozen-backbone feature cache of last-layer mode is `train/features.py`.)
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from .cacheroot import default_cache_root  # noqa: F401  (its old place: data.cache.default_cache_root)
from .files import open_image, to_channels
from .pixels import RESAMPLE, resized_shape

CACHE_VERSION = 2  # 2: whole frame, variable shape (1: centre squares)


MAX_ASPECT = 2.0  # a longer side beyond this many times the shorter one is centre-cropped to it


def decode_resized(path: str, size: int, channels: int = 3, interpolation: str = "bilinear") -> np.ndarray:
    """Decode, shorter side to `size` (antialiased), whole frame kept, HWC uint8 (HW1 for 1 channel:
    grayscale is taken before resizing, as the uncached loader does)."""
    with open_image(path) as im:
        im.draft("RGB", (size, size))  # JPEG: decode at a reduced scale that still covers `size`
        im.seek(0)
        im.load()
        im = to_channels(im, channels)
    w, h = im.size
    full = resized_shape(w, h, size, max_aspect=None)
    if full != (w, h):
        im = im.resize(full, RESAMPLE.get(interpolation, Image.BILINEAR), reducing_gap=3.0)
    nw, nh = resized_shape(w, h, size, MAX_ASPECT)
    left, top = (full[0] - nw) // 2, (full[1] - nh) // 2
    a = np.asarray(im.crop((left, top, left + nw, top + nh)), dtype=np.uint8)
    return a[:, :, None] if a.ndim == 2 else a


def _decode_one(args):
    path, size, channels, interpolation = args
    try:
        return decode_resized(path, size, channels, interpolation), None
    except Exception as e:
        return None, f"{type(e).__name__}: {e}"


class DecodedImages:
    """One flat on-disk uint8 file of HWC images (shorter side = size, any aspect) with each image's
    offset and shape in a JSON sidecar; opened read-only as a memmap."""

    def __init__(self, data_path: Path, meta: dict):
        self.meta = meta
        self.size = meta["size"]
        self.valid = np.array(meta["valid"], dtype=bool)
        self.offsets, self.shapes = meta["offsets"], meta["shapes"]
        self.channels = int(meta.get("channels", 3))
        self.array = np.memmap(data_path, dtype=np.uint8, mode="r") if os.path.getsize(data_path) else np.zeros(0, np.uint8)

    def __len__(self):
        return len(self.valid)

    def hw(self) -> np.ndarray:
        """[N, 2] (height, width) of every image (0, 0 for unreadable ones)."""
        if getattr(self, "_hw", None) is None:
            self._hw = np.asarray(self.shapes, dtype=np.int64).reshape(-1, 2)
            valid = self._hw[self.valid]
            self._common = ((int(valid[0, 0]), int(valid[0, 1])) if len(valid) and (valid == valid[0]).all()
                            else None)
        return self._hw

    def common_shape(self) -> tuple[int, int] | None:
        """(H, W) when every readable image has it (small images: one gather per batch), else None."""
        self.hw()
        return self._common

    def stack(self, idx, out: torch.Tensor | None = None) -> torch.Tensor:
        """Images idx of a same-shape cache as one uint8 [B, H, W, C] tensor: one gather from the memmap
        (into `out` when given, e.g. pinned memory)."""
        h, w = self.common_shape()
        per = h * w * self.channels
        if getattr(self, "_offsets", None) is None:
            self._offsets = np.asarray(self.offsets, dtype=np.int64)
        rows = self._offsets[np.asarray(idx, dtype=np.int64)] // per
        images = self.array[:len(self.array) // per * per].reshape(-1, h, w, self.channels)
        if out is None:
            return torch.from_numpy(images[rows])
        np.take(images, rows, axis=0, out=out.numpy(), mode="clip")  # rows are valid; clip: unbuffered
        return out

    def __getitem__(self, i: int) -> np.ndarray:
        """Image i as an HWC uint8 array (a copy; the memmap stays read-only)."""
        h, w = self.shapes[i]
        o, c = self.offsets[i], self.channels
        return np.array(self.array[o:o + h * w * c]).reshape(h, w, c)

    @staticmethod
    def key(paths: list[str], size: int, channels: int = 3, interpolation: str = "bilinear") -> str:
        extra = (f"|c{channels}" if channels != 3 else "") + (f"|{interpolation}" if interpolation != "bilinear" else "")
        h = hashlib.sha256(f"v{CACHE_VERSION}|{size}|{MAX_ASPECT}{extra}".encode())
        for p in paths:
            st = os.stat(p)
            h.update(f"|{os.path.abspath(p)}|{st.st_size}|{st.st_mtime_ns}".encode())
        return h.hexdigest()[:24]

    @classmethod
    def build(cls, paths: list[str], size: int, root: Path | None = None, workers: int = 0,
              quiet: bool = False, channels: int = 3, interpolation: str = "bilinear") -> "DecodedImages":
        root = Path(root or default_cache_root()) / "decoded"
        root.mkdir(parents=True, exist_ok=True)
        key = cls.key(paths, size, channels, interpolation)
        data_path, meta_path = root / f"{key}.u8", root / f"{key}.json"
        if data_path.is_file() and meta_path.is_file():
            return cls(data_path, json.loads(meta_path.read_text()))
        tmp = root / f"{key}.{os.getpid()}.tmp"
        index = {"valid": [False] * len(paths), "offsets": [0] * len(paths), "shapes": [[0, 0]] * len(paths)}
        jobs = [(p, size, channels, interpolation) for p in paths]
        bar = tqdm(total=len(paths), desc=f"decoding images once ({size}px cache)", disable=True if quiet else None,
                   unit="img", leave=False, dynamic_ncols=True)
        with open(tmp, "wb") as f:
            if workers > 0 and len(paths) > 64:
                with ProcessPoolExecutor(workers) as ex:
                    _fill(ex.map(_decode_one, jobs, chunksize=16), f, index, paths, bar)
            else:
                _fill(map(_decode_one, jobs), f, index, paths, bar)
        bar.close()
        os.replace(tmp, data_path)
        meta = {"size": size, "n": len(paths), "version": CACHE_VERSION, "channels": channels, **index}
        meta_path.write_text(json.dumps(meta))
        return cls(data_path, meta)


def _fill(results, f, index, paths, bar):
    """Append each decoded image to the open file `f`, recording where it went."""
    offset = 0
    for i, (img, err) in enumerate(results):
        if img is None:
            print(f"\nskipping unreadable image {paths[i]}: {err}. "
                  f"Run `transferlearn data check` to find and quarantine such files.", file=sys.stderr)
        else:
            f.write(img.tobytes())
            index["valid"][i], index["offsets"][i], index["shapes"][i] = True, offset, list(img.shape[:2])
            offset += img.nbytes
        bar.update(1)


class CachedImageDataset(Dataset):
    """Samples read from a DecodedImages memmap; unreadable originals yield None (skipped by collate)."""

    def __init__(self, decoded: DecodedImages, labels: list[int], transform):
        self.decoded, self.labels, self.transform = decoded, labels, transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        if not self.decoded.valid[i]:
            return None
        x = torch.from_numpy(self.decoded[i]).permute(2, 0, 1)
        return self.transform(x), self.labels[i]
