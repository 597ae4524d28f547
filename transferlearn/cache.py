"""Work that does not change between epochs, done once.

- `DecodedImages`: every image decoded, resized (shorter side = preprocess 'resize') and
  centre-cropped to a square once, stored as a uint8 memory-mapped file on disk keyed by each
  file's path, size and mtime plus the resize parameters. Epochs then read raw pixels from the
  page cache and only crop/flip/normalise tensors. Memory stays bounded: nothing is held whole.
  Validation through the cache is exact (resize-then-centre-crop is what eval does anyway);
  training crops are drawn from the centre square instead of the full frame.
- `extract_features`: a frozen backbone is a fixed function, so last-layer training computes its
  features once (K augmented views per training image, one clean view per val image) and then
  trains the head on them.
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

from .engine import to_device
from .files import to_rgb

CACHE_VERSION = 1


def default_cache_root() -> Path:
    return Path(os.environ.get("TRANSFERLEARN_CACHE", Path.home() / ".cache" / "transferlearn"))


def decode_square(path: str, size: int) -> np.ndarray:
    """Decode, shorter side to `size` (bilinear, antialiased), centre crop to size x size, HWC uint8."""
    with Image.open(path) as im:
        im.draft("RGB", (size, size))  # JPEG: decode at a reduced scale that still covers `size`
        im.seek(0)
        im.load()
        im = to_rgb(im)
    w, h = im.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    im = im.resize((nw, nh), Image.BILINEAR, reducing_gap=3.0)
    left, top = (nw - size) // 2, (nh - size) // 2
    return np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.uint8)


def _decode_one(args):
    path, size = args
    try:
        return decode_square(path, size), None
    except Exception as e:
        return None, f"{type(e).__name__}: {e}"


class DecodedImages:
    """An on-disk uint8 array [N, S, S, 3] plus a validity mask; opened read-only as a memmap."""

    def __init__(self, data_path: Path, meta: dict):
        self.meta = meta
        self.size = meta["size"]
        self.valid = np.array(meta["valid"], dtype=bool)
        self.array = np.memmap(data_path, dtype=np.uint8, mode="r", shape=(len(self.valid), self.size, self.size, 3))

    def __len__(self):
        return len(self.valid)

    @staticmethod
    def key(paths: list[str], size: int) -> str:
        h = hashlib.sha256(f"v{CACHE_VERSION}|{size}".encode())
        for p in paths:
            st = os.stat(p)
            h.update(f"|{os.path.abspath(p)}|{st.st_size}|{st.st_mtime_ns}".encode())
        return h.hexdigest()[:24]

    @classmethod
    def build(cls, paths: list[str], size: int, root: Path | None = None, workers: int = 0,
              quiet: bool = False) -> "DecodedImages":
        root = Path(root or default_cache_root()) / "decoded"
        root.mkdir(parents=True, exist_ok=True)
        key = cls.key(paths, size)
        data_path, meta_path = root / f"{key}.u8", root / f"{key}.json"
        if data_path.is_file() and meta_path.is_file():
            return cls(data_path, json.loads(meta_path.read_text()))
        tmp = root / f"{key}.{os.getpid()}.tmp"
        arr = np.memmap(tmp, dtype=np.uint8, mode="w+", shape=(max(len(paths), 1), size, size, 3))
        valid = [False] * len(paths)
        jobs = [(p, size) for p in paths]
        bar = tqdm(total=len(paths), desc=f"decoding images once ({size}px cache)", disable=True if quiet else None, unit="img",
                   leave=False, dynamic_ncols=True)
        if workers > 0 and len(paths) > 64:
            with ProcessPoolExecutor(workers) as ex:
                results = ex.map(_decode_one, jobs, chunksize=16)
                _fill(results, arr, valid, paths, bar)
        else:
            _fill(map(_decode_one, jobs), arr, valid, paths, bar)
        bar.close()
        arr.flush()
        del arr
        os.replace(tmp, data_path)
        meta = {"size": size, "n": len(paths), "valid": valid, "version": CACHE_VERSION}
        meta_path.write_text(json.dumps(meta))
        return cls(data_path, meta)


def _fill(results, arr, valid, paths, bar):
    for i, (img, err) in enumerate(results):
        if img is None:
            print(f"\nskipping unreadable image {paths[i]}: {err}. "
                  f"Run `transferlearn data check` to find and quarantine such files.", file=sys.stderr)
        else:
            arr[i] = img
            valid[i] = True
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
        x = torch.from_numpy(np.array(self.decoded.array[i])).permute(2, 0, 1)
        return self.transform(x), self.labels[i]


# ---------------------------------------------------------------- frozen-backbone features

@torch.no_grad()
def extract_features(backbone: torch.nn.Module, loader, device: torch.device, amp_ctx, desc: str,
                     quiet: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass of `loader` through the frozen backbone: (features float32 [N, F], labels [N])."""
    backbone.eval()
    feats, labels = [], []
    for batch in tqdm(loader, desc=desc, disable=True if quiet else None, leave=False, dynamic_ncols=True,
                      unit="batch"):
        if batch is None:
            continue
        x, y = batch
        x = to_device(x, device)
        with amp_ctx():
            f = backbone(x)
        feats.append(f.float().cpu())
        labels.append(y)
    if not feats:
        return torch.empty(0), torch.empty(0, dtype=torch.long)
    return torch.cat(feats), torch.cat(labels)


class FeatureBatches:
    """Batches of cached features; each epoch every training image contributes one of its K views."""

    def __init__(self, views: list[torch.Tensor], labels: torch.Tensor, batch_size: int, shuffle: bool,
                 seed: int = 0, sampler=None):
        self.views, self.labels, self.batch_size, self.shuffle = views, labels, batch_size, shuffle
        self.sampler = sampler  # e.g. --balance sampler's WeightedRandomSampler over the same indices
        self.g = torch.Generator().manual_seed(seed)

    def __len__(self):
        return (len(self.labels) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        if self.sampler is not None:
            order = torch.as_tensor(list(self.sampler), dtype=torch.long)
        elif self.shuffle:
            order = torch.randperm(len(self.labels), generator=self.g)
        else:
            order = torch.arange(len(self.labels))
        stacked = torch.stack(self.views)  # [K, N, F]
        views = (torch.randint(len(self.views), (len(order),), generator=self.g) if self.shuffle
                 else torch.zeros(len(order), dtype=torch.long))
        for i in range(0, len(order), self.batch_size):
            idx = order[i:i + self.batch_size]
            yield stacked[views[i:i + self.batch_size], idx], self.labels[idx]
