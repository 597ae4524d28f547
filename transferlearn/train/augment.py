"""Batched augmentation from the decode cache: a batch is read in one go and cropped, flipped and normalised
as a batch on the training device, instead of one torchvision call chain per sample.

Why: per sample, the crop costs 0.15-0.8 ms of Python and dispatch, so a step could never beat about 1,000
images/s per core whatever the model (LeNet, a small net at 32 px, any GPU). Here:
- the random draws are those of torchvision's transforms (RandomResizedCrop's ten tries and central fallback,
  RandomCrop's offsets with padding, the flip's coin), vectorised over the batch, from a counter-based
  generator keyed by (seed, epoch, sample): a pure function of the sample, so a resumed run, any batch
  composition and every DDP rank draw the same crop for the same sample;
- a same-shape cache (small images) is one gather from the memmap; a pure crop (pad-crop-flip, eval's centre
  crop) is one index gather on the device, with the flip folded into the index: the pixels are torchvision's;
- a crop that resamples (RandomResizedCrop, or a Resize that is not the identity) is one
  `torchvision.ops.roi_align` call (bilinear, adaptive sampling as antialiasing) where it pays: a same-shape
  batch, or any batch on a GPU. On a CPU with variable-shape photos, torchvision's uint8 antialiased kernel per
  crop is faster than roi_align (1,008 vs 4,924 us per 160 px crop, one thread: bench/crop_kernels.py,
  docs/benchmarks.md), so the kernel runs per crop and only the draws, the flip and the normalisation are
  batched;
- exact=True (validation) never uses roi_align: its pixels equal the per-sample eval pipeline's.
The recipe is read from the torchvision pipeline of `data.train_transform` / `eval_transform`, so the presets
stay defined once; a pipeline with anything else in it (--augment strong) is not batched (None).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms import v2 as T
from torchvision.transforms.v2 import functional as TF

STREAM_BATCH_AUG = 5  # sampling.STREAM_* continued: the batched augmentation's draws
TRIES = 10  # RandomResizedCrop's attempts before its central fallback
_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


@dataclass(frozen=True)
class Recipe:
    """The geometric part of one torchvision pipeline, in batchable form."""
    size: int  # output side (square)
    crop: str  # "center" | "pad" (centre crop, then RandomCrop with padding) | "random" | "resized"
    resize: int | None = None  # shorter side first (T.Resize), None: none
    pad: int = 0
    scale: tuple = (0.08, 1.0)
    ratio: tuple = (3 / 4, 4 / 3)
    flip: float = 0.0  # probability of a horizontal flip
    interpolation: str = "bilinear"
    mean: tuple = ()
    std: tuple = ()


def _square(size) -> int | None:
    s = list(size) if isinstance(size, (list, tuple)) else [size]
    return int(s[0]) if len(s) == 1 or s[0] == s[1] else None


def recipe_of(tf: T.Compose) -> Recipe | None:
    """The batchable form of `tf` (one of data.py's presets), or None where it does something else."""
    ts = [t for t in tf.transforms if not isinstance(t, T.Grayscale)]  # a no-op on the 1-channel cache
    if len(ts) < 4 or not (isinstance(ts[-3], T.ToImage) and isinstance(ts[-2], T.ToDtype) and ts[-2].scale
                           and isinstance(ts[-1], T.Normalize)):
        return None
    norm = dict(mean=tuple(ts[-1].mean), std=tuple(ts[-1].std))
    geo = ts[:-3]
    flip = 0.0
    if geo and isinstance(geo[-1], T.RandomHorizontalFlip):
        flip, geo = float(geo[-1].p), geo[:-1]
    kinds = tuple(type(t) for t in geo)
    interp = next((t.interpolation.value for t in geo if hasattr(t, "interpolation")), "bilinear")
    if kinds == (T.RandomResizedCrop,):
        t = geo[0]
        size = _square(t.size)
        return None if size is None else Recipe(size, "resized", scale=tuple(t.scale), ratio=tuple(t.ratio),
                                                flip=flip, interpolation=interp, **norm)
    if not geo or not isinstance(geo[0], T.Resize) or geo[0].max_size is not None or len(geo[0].size) != 1:
        return None
    resize = int(geo[0].size[0])
    crops = geo[1:]
    size = _square(crops[0].size) if crops else None
    if size is None or size > resize:
        return None
    if kinds[1:] == (T.CenterCrop,):
        crop, pad = "center", 0
    elif kinds[1:] == (T.CenterCrop, T.RandomCrop) and _square(crops[1].size) == size:
        crop, pad = "pad", crops[1].padding
    elif kinds[1:] == (T.RandomCrop,) and not crops[0].padding:
        crop, pad = "random", 0
    else:
        return None
    if crop != "center":
        rc = crops[-1]
        if rc.pad_if_needed or rc.padding_mode != "constant" or rc.fill != 0:
            return None
        if pad:
            p = list(pad) if isinstance(pad, (list, tuple)) else [pad]
            if len(set(p)) != 1:
                return None
            pad = int(p[0])
    return Recipe(size, crop, resize=resize, pad=int(pad or 0), flip=flip, interpolation=interp, **norm)


# ---------------------------------------------------------------- the draws

def uniforms(seed: int, epoch: int, idx, k: int) -> np.ndarray:
    """[len(idx), k] float64 uniforms in [0, 1): splitmix64 of (seed, stream, epoch, sample, j), so each is a
    pure function of the sample and its draw number (not of the batch it lands in)."""
    from .sampling import mix
    base = np.uint64(mix(seed, STREAM_BATCH_AUG, epoch))
    x = (np.asarray(idx, dtype=np.uint64)[:, None] * np.uint64(0x9E3779B97F4A7C15) + base
         + np.arange(1, k + 1, dtype=np.uint64)[None, :] * np.uint64(0xD1B54A32D192ED03)) & _M64
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _randint(u: np.ndarray, n: np.ndarray) -> np.ndarray:
    """torch.randint(0, n): one of 0..n-1, from a uniform."""
    return np.minimum((u * n).astype(np.int64), np.asarray(n, dtype=np.int64) - 1)


def resized_crop_boxes(hw: np.ndarray, u: np.ndarray, scale, ratio) -> np.ndarray:
    """[B, 4] (top, left, height, width): RandomResizedCrop.get_params vectorised; u: [B, 2 * TRIES + 2]."""
    H, W = hw[:, 0].astype(np.float64), hw[:, 1].astype(np.float64)
    area = H * W
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    target = area[:, None] * (scale[0] + (scale[1] - scale[0]) * u[:, :TRIES])
    aspect = np.exp(lo + (hi - lo) * u[:, TRIES:2 * TRIES])
    w = np.round(np.sqrt(target * aspect)).astype(np.int64)  # round half to even, as Python's round
    h = np.round(np.sqrt(target / aspect)).astype(np.int64)
    ok = (w > 0) & (w <= W[:, None]) & (h > 0) & (h <= H[:, None])
    first = ok.argmax(1)
    found = ok.any(1)
    rows = np.arange(len(hw))
    h, w = h[rows, first], w[rows, first]
    # torchvision's fallback: the central crop with the aspect clamped into `ratio`
    in_ratio = W / H
    fw = np.where(in_ratio < ratio[0], W, np.where(in_ratio > ratio[1], np.round(H * ratio[1]), W))
    fh = np.where(in_ratio < ratio[0], np.round(W / ratio[0]), H)
    h, w = np.where(found, h, fh).astype(np.int64), np.where(found, w, fw).astype(np.int64)
    Hi, Wi = hw[:, 0].astype(np.int64), hw[:, 1].astype(np.int64)
    top = np.where(found, _randint(u[:, 2 * TRIES], Hi - h + 1), (Hi - h) // 2)
    left = np.where(found, _randint(u[:, 2 * TRIES + 1], Wi - w + 1), (Wi - w) // 2)
    return np.stack([top, left, h, w], 1)


def resized_shape(hw: np.ndarray, size: int) -> np.ndarray:
    """[B, 2] (height, width) after T.Resize(size) (shorter side `size`, as torchvision computes it)."""
    h, w = hw[:, 0].astype(np.int64), hw[:, 1].astype(np.int64)
    short, long = np.minimum(h, w), np.maximum(h, w)
    new_long = (size * long / short).astype(np.int64)
    return np.where((h <= w)[:, None], np.stack([np.full_like(h, size), new_long], 1),
                    np.stack([new_long, np.full_like(h, size)], 1))


@dataclass
class Draws:
    """One batch's geometry. box: [B, 4] (top, left, height, width) of the output square in the
    coordinates of the resized image (`resized` [B, 2], the cached image's shape where no Resize runs);
    keep: [B, 4] (top, left, bottom, right) of the pixels the crop may take, the rest is padding (zeros)."""
    box: np.ndarray
    keep: np.ndarray
    resized: np.ndarray
    flip: np.ndarray


def draw(r: Recipe, hw: np.ndarray, seed: int, epoch: int, idx, train: bool = True) -> Draws:
    """The batch's crops and flips: every random number a pure function of (seed, epoch, sample)."""
    hw = np.asarray(hw, dtype=np.int64).reshape(-1, 2)
    u = uniforms(seed, epoch, idx, 2 * TRIES + 3) if train else np.zeros((len(hw), 2 * TRIES + 3))
    s = r.size
    if r.crop == "resized":
        box, resized = resized_crop_boxes(hw, u, r.scale, r.ratio), hw
        keep = np.concatenate([np.zeros_like(hw), hw], 1)
    else:
        resized = resized_shape(hw, r.resize)
        if r.crop == "random":
            top, left = _randint(u[:, 0], resized[:, 0] - s + 1), _randint(u[:, 1], resized[:, 1] - s + 1)
            keep = np.concatenate([np.zeros_like(hw), resized], 1)
        else:  # centre crop (torchvision rounds half to even: int(round(x / 2.0)))
            top, left = np.round((resized[:, 0] - s) / 2.0).astype(np.int64), np.round((resized[:, 1] - s) / 2.0).astype(np.int64)
            keep = np.stack([top, left, top + s, left + s], 1)
            if r.crop == "pad":  # RandomCrop(size, padding) of the centre crop: offsets 0..2 pad in the padded frame
                top = top + _randint(u[:, 0], np.full_like(top, 2 * r.pad + 1)) - r.pad
                left = left + _randint(u[:, 1], np.full_like(left, 2 * r.pad + 1)) - r.pad
        box = np.stack([top, left, np.full_like(top, s), np.full_like(top, s)], 1)
    flip = (u[:, 2 * TRIES + 2] < r.flip) if train else np.zeros(len(hw), dtype=bool)
    return Draws(box, keep, resized, flip)


# ---------------------------------------------------------------- the pixels

def is_pure_crop(r: Recipe, d: Draws, hw: np.ndarray) -> bool:
    """No resampling: every output pixel is a cached pixel (or padding)."""
    return r.crop != "resized" and bool((d.resized == np.asarray(hw).reshape(-1, 2)).all())


def gather_crops(x: torch.Tensor, d: Draws, size: int) -> torch.Tensor:
    """uint8 [B, H, W, C] (one shape, so one `keep` window for all) -> uint8 [B, C, size, size]: the window,
    zero-padded as far as the crops reach, viewed as every possible crop (unfold, no copy), then one index per
    sample picks its crop: torchvision's pixels, on x's device."""
    t0, l0, t1, l1 = (int(v) for v in d.keep[0])
    top, left = d.box[:, 0] - t0, d.box[:, 1] - l0
    p = int(max(0, -top.min(), -left.min(), (top + size - (t1 - t0)).max(), (left + size - (l1 - l0)).max()))
    w = x[:, t0:t1, l0:l1].permute(0, 3, 1, 2)
    if p:
        w = torch.nn.functional.pad(w, [p] * 4)
    crops = w.unfold(2, size, 1).unfold(3, size, 1)  # [B, C, rows, cols, size, size]
    dev = x.device
    out = crops[torch.arange(len(top), device=dev), :, torch.from_numpy(top + p).to(dev),
                torch.from_numpy(left + p).to(dev)]
    return flip_batch(out, d.flip)


def roi_crops(canvas: torch.Tensor, hw: np.ndarray, d: Draws, size: int) -> torch.Tensor:
    """uint8 [B, H, W, C] canvas (image b at its top-left, hw [B, 2] its shape) -> float [B, C, size, size]
    in 0..255: one roi_align (bilinear; adaptive sampling averages a bin's samples, so downscaling is
    antialiased). Boxes are mapped from the resized frame back to the cached one."""
    from torchvision.ops import roi_align
    dev = canvas.device
    hw = np.asarray(hw, dtype=np.float64).reshape(-1, 2)
    sy, sx = hw[:, 0] / d.resized[:, 0], hw[:, 1] / d.resized[:, 1]
    top, left, h, w = (d.box[:, k].astype(np.float64) for k in range(4))
    rois = np.stack([np.arange(len(hw)), left * sx, top * sy, (left + w) * sx, (top + h) * sy], 1)
    x = canvas.permute(0, 3, 1, 2).float()
    out = roi_align(x, torch.from_numpy(rois).float().to(dev), (size, size), 1.0, 0, True)
    if (d.box[:, 2] == size).all() and (d.box[:, 3] == size).all():  # a crop of the resized frame: pad with zeros
        keep = _inside(d, size, dev)
        if keep is not None:
            out = out * keep[:, None].to(out.dtype)
    return flip_batch(out, d.flip)


def _inside(d: Draws, size: int, dev) -> torch.Tensor | None:
    """[B, size, size] bool: output pixels inside `keep` (None: all are), for size x size boxes."""
    keep = torch.from_numpy(d.keep).to(dev)
    rows = torch.from_numpy(d.box[:, :1]).to(dev) + torch.arange(size, device=dev)
    cols = torch.from_numpy(d.box[:, 1:2]).to(dev) + torch.arange(size, device=dev)
    rin = (rows >= keep[:, :1]) & (rows < keep[:, 2:3])
    cin = (cols >= keep[:, 1:2]) & (cols < keep[:, 3:4])
    return None if bool(rin.all() and cin.all()) else rin[:, :, None] & cin[:, None, :]


def sample_crops(images, r: Recipe, d: Draws) -> torch.Tensor:
    """HWC uint8 arrays (any shapes) -> uint8 [B, C, size, size], torchvision's uint8 kernels per crop
    (no flip): on a CPU faster than roi_align for big photos, and the pixels of the per-sample pipeline."""
    interp = T.InterpolationMode(r.interpolation)
    out = []
    for img, (top, left, h, w), (rh, rw) in zip(images, d.box, d.resized):
        x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)
        if r.crop == "resized":
            out.append(TF.resized_crop(x, int(top), int(left), int(h), int(w), [r.size, r.size],
                                       interpolation=interp, antialias=True))
            continue
        if (rh, rw) != x.shape[1:]:
            x = TF.resize(x, [int(rh), int(rw)], interpolation=interp, antialias=True)
        out.append(x)
    if r.crop == "resized":
        return torch.stack(out)
    return torch.stack([_window(x, box, keep) for x, box, keep in zip(out, d.box, d.keep)])


def _window(x: torch.Tensor, box, keep) -> torch.Tensor:
    """The box of CHW `x`, zero outside `keep` (torchvision's RandomCrop padding, fill 0)."""
    top, left, h, w = (int(v) for v in box)
    out = torch.zeros((x.shape[0], h, w), dtype=x.dtype)
    t0, l0 = max(top, int(keep[0])), max(left, int(keep[1]))
    t1, l1 = min(top + h, int(keep[2])), min(left + w, int(keep[3]))
    if t1 > t0 and l1 > l0:
        out[:, t0 - top:t1 - top, l0 - left:l1 - left] = x[:, t0:t1, l0:l1]
    return out


def flip_batch(x: torch.Tensor, flip: np.ndarray) -> torch.Tensor:
    if not flip.any():
        return x
    f = torch.from_numpy(flip).to(x.device)[:, None, None, None]
    return torch.where(f, x.flip(-1), x)


def normalize(x: torch.Tensor, r: Recipe) -> torch.Tensor:
    """uint8 or 0..255 float [B, C, H, W] -> float32, as ToDtype(float32, scale=True) + Normalize do."""
    x = TF.to_dtype(x, torch.float32, scale=True) if x.dtype == torch.uint8 else x.float().div_(255.0)
    return TF.normalize(x, list(r.mean), list(r.std))
