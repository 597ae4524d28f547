"""Files -> batches for one run: image datasets (decoded once into the on-disk cache, or every epoch)
and the batches each process draws from them. Nothing here runs the model (a frozen backbone's
features are a setup step of last-layer mode: `features.py`).

Two pipelines:
- batched (the default with the decode cache, `--batch-augment`): `CachedBatches` reads a batch of uint8
  images from the cache (one gather for a same-shape cache) and crops, flips and normalises the whole batch
  on the training device (train/augment.py: torchvision's random draws vectorised, keyed by (seed, epoch,
  sample)). A 32 px image's input costs about a tenth of the per-sample pipeline's (bench/pipeline_split.py,
  docs/benchmarks.md).
  Validation through it is bit-identical to the per-sample eval pipeline.
- per sample (`--augment strong`, `--no-cache`, `--no-batch-augment`): `ImageBatches`, a DataLoader over the
  samples; only decoding and the geometric augmentation run per sample on uint8 pixels, the float conversion
  and normalisation once per batch on the device (`split_uint8`; bit-identical to torchvision's per-sample
  pipeline, tested).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from torchvision.transforms import v2 as T
from torchvision.transforms.v2 import functional as TF

from ..data import ImageDataset, Preprocess, eval_transform, is_small, resolve_workers, train_transform
from . import augment as A
from .distributed import DistContext
from .sampling import BatchPlan, SeededDataset, collate_train


class _AsPlainTensor(T.Transform):
    """tv_tensors.Image -> plain uint8 tensor, so batches collate and move as ordinary tensors."""

    def forward(self, x):
        return x.as_subclass(torch.Tensor)


def split_uint8(tf: T.Compose):
    """(per-sample uint8 transform, (mean, std)) from a pipeline that ends ToImage, ToDtype(float32, scale=True),
    Normalize; None for a pipeline that does more after normalising (--augment strong's RandomErasing)."""
    ts = list(tf.transforms)
    if len(ts) < 3 or not (isinstance(ts[-3], T.ToImage) and isinstance(ts[-2], T.ToDtype)
                           and isinstance(ts[-1], T.Normalize) and ts[-2].scale):
        return None
    return T.Compose([*ts[:-2], _AsPlainTensor()]), (list(ts[-1].mean), list(ts[-1].std))


def normalize_batch(x: torch.Tensor, norm, device: torch.device) -> torch.Tensor:
    """uint8 [B, C, H, W] -> normalised float32 on `device`, as ToDtype(scale=True) + Normalize per sample do."""
    x = x.to(device, non_blocking=True)
    return TF.normalize(TF.to_dtype(x, torch.float32, scale=True), *norm)


class ImageBatches:
    """Batches of (augmented) images for one process: a DataLoader whose batch sampler is a BatchPlan.
    With `norm`, samples arrive as uint8 and are normalised here, per batch, on `device`."""

    def __init__(self, dataset, plan: BatchPlan, seed: int, workers: int = 0, collate=collate_train, norm=None,
                 device: torch.device | None = None):
        self.dataset, self.plan, self.norm = dataset, plan, norm
        self.device = device or torch.device("cpu")
        self.loader = DataLoader(SeededDataset(dataset, seed), batch_sampler=plan, num_workers=workers,
                                 persistent_workers=workers > 0, collate_fn=collate,
                                 pin_memory=self.device.type == "cuda")

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.plan.set_epoch(epoch, start_step)

    def __len__(self):
        return len(self.plan)

    def __iter__(self):
        if self.norm is None:
            yield from self.loader
            return
        batches = (None if b is None else (normalize_batch(b[0], self.norm, self.device),
                                           b[1].to(self.device, non_blocking=True)) for b in self.loader)
        if self.device.type != "cuda":
            yield from batches
            return
        previous = _NOTHING  # GPU: the next batch's host-to-device copy is issued before the current one trains
        for batch in batches:
            if previous is not _NOTHING:
                yield previous
            previous = batch
        if previous is not _NOTHING:
            yield previous


_NOTHING = object()


def image_datasets(splits, pre: Preprocess | Mapping, cfg, ctx: DistContext, log=print):
    """((train dataset, train labels, norm), (val dataset, val labels, norm)) of (x, y) samples; with a
    `norm` (mean, std), x is uint8 and the batch is normalised later (`normalize_batch`).

    With the decode cache, one process per machine decodes (in parallel workers) while the others wait and
    then open the same files, and images that failed to decode are left out here, once, so that every
    process sees the same samples."""
    pre = Preprocess.of(pre)
    out = []
    for samples, tf in ((splits.train, train_transform(pre, cfg.augment)), (splits.val, eval_transform(pre))):
        labels = [y for _, y in samples]
        full = tf
        split = split_uint8(tf)
        tf, norm = split if split else (tf, None)
        if not cfg.cache:
            out.append((ImageDataset(samples, tf, cfg.in_channels), labels, norm))
            continue
        from ..data.cache import CachedImageDataset, DecodedImages
        with ctx.main_first():
            decoded = DecodedImages.build([p for p, _ in samples], pre.resize, cfg.cache_dir,
                                          resolve_workers(cfg.workers), cfg.quiet or not ctx.is_main,
                                          cfg.in_channels, pre.interpolation)
        keep = [i for i in range(len(labels)) if decoded.valid[i]]
        recipe = A.recipe_of(full) if cfg.batch_augment else None
        if recipe is not None:  # read and augmented a batch at a time on the training device
            labels = [labels[i] for i in keep]
            out.append((CachedImages(decoded, np.asarray(keep, dtype=np.int64), labels, recipe,
                                     exact=samples is splits.val), labels, None))
            continue
        ds = CachedImageDataset(decoded, labels, tf)
        if len(keep) < len(labels):
            ds, labels = Subset(ds, keep), [labels[i] for i in keep]
        out.append((ds, labels, norm))
    return out[0], out[1]


def balance_weights(labels: list[int], num_classes: int) -> torch.Tensor:
    """Per-sample weights for --balance sampler: every class drawn equally often."""
    counts = torch.bincount(torch.tensor(labels, dtype=torch.long), minlength=num_classes).double()
    return (1.0 / counts[torch.tensor(labels, dtype=torch.long)]).double()


def batch_plans(train_labels: list[int], n_val: int, cfg, ctx: DistContext, num_classes: int):
    """(train plan, val plan): shuffled (or class-balanced with --balance sampler) and padded for training,
    in order and unpadded for validation."""
    weights = balance_weights(train_labels, num_classes) if cfg.balance == "sampler" else None
    return (BatchPlan(len(train_labels), cfg.batch_size, ctx, seed=cfg.seed, shuffle=True, pad=True, weights=weights),
            BatchPlan(n_val, cfg.batch_size, ctx, seed=cfg.seed, shuffle=False, pad=False))


def train_size_at(epoch: int, epochs: int, start: int, end: int) -> int:
    """The training crop of `epoch` (1-based) with progressive resizing (fastai's; FFCV's resolution ramp): from
    `start` at epoch 1 linearly to `end` by 80 % of the epochs, then `end` to the last epoch, so the weights and
    BatchNorm statistics settle at the final size while the cosine schedule anneals. Multiples of 8."""
    top = max(1, round(0.8 * epochs))  # the first epoch at `end`
    if not start or start >= end or top == 1:
        return end
    size = start + (end - start) * min(1.0, (epoch - 1) / (top - 1))
    return int(min(end, max(start, 8 * round(size / 8))))


def train_sizes(cfg) -> Callable[[int], int] | None:
    """epoch -> training crop, or None for one size all run long."""
    if not cfg.progressive_resize:
        return None
    return lambda epoch: train_size_at(epoch, cfg.epochs, cfg.progressive_resize, cfg.train_size)


def image_batches(train, val, cfg, ctx: DistContext, num_classes: int, device: torch.device | None = None):
    """(train batches, val batches) for this process."""
    (train_ds, train_labels, train_norm), (val_ds, _, val_norm) = train, val
    device = device or torch.device("cpu")
    train_plan, val_plan = batch_plans(train_labels, len(val_ds), cfg, ctx, num_classes)
    sizes = train_sizes(cfg)
    if sizes is not None and not isinstance(train_ds, CachedImages):
        raise ValueError(f"--progressive-resize {cfg.progressive_resize} needs the batched pipeline, and --augment "
                         f"{cfg.augment} runs per sample: choose --augment standard (or light), or drop the option")
    if isinstance(train_ds, CachedImages) or isinstance(val_ds, CachedImages):
        host = resolve_workers(cfg.workers) if device.type == "cuda" else 1  # threads reading ahead for a GPU
        return tuple(CachedBatches(ds, plan, cfg.seed, device, workers=host, sizes=sizes if ds is train_ds else None)
                     if isinstance(ds, CachedImages) else ImageBatches(ds, plan, cfg.seed, 0, norm=norm, device=device)
                     for ds, plan, norm in ((train_ds, train_plan, train_norm), (val_ds, val_plan, val_norm)))
    # a cached sample costs well under 1 ms: on a CPU, worker processes would only compete with the model for
    # cores; a GPU is fed by workers while it computes
    workers = 0 if cfg.cache and device.type == "cpu" else resolve_workers(cfg.workers)
    return (ImageBatches(train_ds, train_plan, cfg.seed, workers, norm=train_norm, device=device),
            ImageBatches(val_ds, val_plan, cfg.seed, workers, norm=val_norm, device=device))


# ---------------------------------------------------------------- batched from the decode cache

class CachedImages:
    """A decode cache seen through one batchable recipe (train/augment.py): what CachedBatches reads.
    `index` maps dataset positions (the keys of the random draws) to cache rows; exact (validation): never
    resample with roi_align, so the pixels are the per-sample eval pipeline's."""

    def __init__(self, decoded, index: np.ndarray, labels: list[int], recipe: A.Recipe, exact: bool = False):
        self.decoded, self.index, self.recipe, self.exact = decoded, index, recipe, exact
        self.labels = torch.tensor(labels, dtype=torch.long)
        self.hw = decoded.hw()[index]
        self.same_shape = decoded.common_shape() is not None

    def __len__(self):
        return len(self.index)

    def read(self, pos: np.ndarray, seed: int, epoch: int, device: torch.device, train: bool = True,
             recipe: A.Recipe | None = None):
        """The host half of a batch: (mode, uint8 tensor, draws, hw). mode "gather": [B, H, W, C] images
        to crop by index on the device; "roi": a [B, H, W, C] canvas for roi_align; "crops": [B, C, s, s]
        crops already cut per sample (CPU, variable shapes, or exact resampling). `recipe`: this epoch's, where
        the crop size changes (progressive resizing)."""
        r, rows, hw = recipe or self.recipe, self.index[pos], self.hw[pos]
        d = A.draw(r, hw, seed, epoch, pos, train)
        pure = A.is_pure_crop(r, d, hw)
        pin = device.type == "cuda"  # written straight into pinned memory: one copy, then DMA
        if pure and self.same_shape:
            return "gather", self.decoded.stack(rows, out=_host_buffer((len(rows), *self.decoded.common_shape(),
                                                                        self.decoded.channels), pin)), d, hw
        # roi_align: one call per batch on a GPU; on a CPU it beats torchvision's per-crop kernel for small
        # images only (17 vs 31 us at 32 px, 4,924 vs 1,008 us at 160 px: bench/crop_kernels.py, docs/benchmarks.md)
        roi = not pure and not self.exact and r.interpolation == "bilinear" and (
            pin or (self.same_shape and is_small(r.size)))
        if roi and self.same_shape:
            return "roi", self.decoded.stack(rows, out=_host_buffer(
                (len(rows), *self.decoded.common_shape(), self.decoded.channels), pin)), d, hw
        images = [self.decoded[int(i)] for i in rows]
        if roi:
            hmax, wmax = int(hw[:, 0].max()), int(hw[:, 1].max())
            return "roi", canvas(images, _host_buffer((len(rows), hmax + 1, wmax + 1, self.decoded.channels), pin)), d, hw
        crops = A.sample_crops(images, r, d)
        return "crops", crops.pin_memory() if pin else crops, d, hw


def _host_buffer(shape, pin: bool) -> torch.Tensor:
    """An uninitialised uint8 host tensor, page-locked for a GPU (torch's caching host allocator reuses them)."""
    return torch.empty(shape, dtype=torch.uint8, pin_memory=pin)


def canvas(images: list[np.ndarray], out: torch.Tensor | None = None) -> torch.Tensor:
    """HWC images of several shapes -> one uint8 [B, Hmax + 1, Wmax + 1, C] tensor, each at its top-left with
    its last row and column repeated once (so bilinear samples at an image's edge never blend in the padding;
    the rest is never read)."""
    if out is None:
        hmax, wmax = max(a.shape[0] for a in images), max(a.shape[1] for a in images)
        out = torch.zeros((len(images), hmax + 1, wmax + 1, images[0].shape[2]), dtype=torch.uint8)
    buf = out.numpy()
    for b, a in enumerate(images):
        out_b = buf[b]
        h, w = a.shape[:2]
        out_b[:h, :w] = a
        out_b[:h, w] = a[:, -1]
        out_b[h, :w + 1] = out_b[h - 1, :w + 1]
    return out


def finish(mode: str, x: torch.Tensor, d: A.Draws, hw: np.ndarray, r: A.Recipe) -> torch.Tensor:
    """The device half of a batch: crop (gather / roi_align), flip, normalise; channels_last float32."""
    if mode == "gather":
        x = A.gather_crops(x, d, r.size)
    elif mode == "roi":
        x = A.roi_crops(x, hw, d, r.size)
    else:
        x = A.flip_batch(x, d.flip)
    return A.normalize(x, r).contiguous(memory_format=torch.channels_last)


class CachedBatches:
    """Batches read from the decode cache and augmented a batch at a time on `device`: the same plan,
    sharding and (epoch, step) positioning as ImageBatches, and every draw a pure function of (seed, epoch,
    sample). The host half (memmap read, draws) runs one batch ahead in a thread where it overlaps (`prefetch`:
    on by default on a GPU); on a GPU the uint8 batch goes from pinned memory on a side stream, so the next
    batch's copy overlaps this one's step. `sizes`: epoch -> crop size (progressive resizing)."""

    def __init__(self, images: CachedImages, plan: BatchPlan, seed: int, device: torch.device | None = None,
                 prefetch: bool | None = None, indexed: bool = False, workers: int | None = None,
                 sizes: Callable[[int], int] | None = None):
        self.images, self.plan, self.seed, self.sizes = images, plan, seed, sizes
        self.recipe = images.recipe
        self.device = device or torch.device("cpu")
        self.workers = workers or (resolve_workers("auto") if self.device.type == "cuda" else 1)
        self.prefetch = self.device.type == "cuda" if prefetch is None else prefetch
        self.indexed, self.train = indexed, not images.exact

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.plan.set_epoch(epoch, start_step)
        if self.sizes is not None:
            self.recipe = replace(self.images.recipe, size=self.sizes(epoch))

    def __len__(self):
        return len(self.plan)

    def _host(self, keys):
        pos = np.fromiter((i for _, i in keys), dtype=np.int64, count=len(keys))
        mode, x, d, hw = self.images.read(pos, self.seed, keys[0][0], self.device, self.train, self.recipe)
        y = self.images.labels[torch.from_numpy(pos)]
        if self.device.type == "cuda":
            y = y.pin_memory()
        return mode, x, y, d, hw, pos

    def __iter__(self):
        hosts = (ahead(self._host, self.plan, self.workers, 2 * self.workers) if self.prefetch else
                 (self._host(keys) for keys in self.plan))
        if self.device.type != "cuda":
            for h in hosts:
                yield self._finish(h, h[1], h[2])
            return
        stream, pending = torch.cuda.Stream(self.device), None
        for h in hosts:  # the next batch's copy is issued on a side stream before the current one trains
            with torch.cuda.stream(stream):
                x, y = h[1].to(self.device, non_blocking=True), h[2].to(self.device, non_blocking=True)
                ready = torch.cuda.Event()
                ready.record(stream)
            if pending is not None:
                yield self._finish(*pending)
            pending = (h, x, y, ready)
        if pending is not None:
            yield self._finish(*pending)

    def _finish(self, h, x, y, ready=None):
        mode, _, _, d, hw, pos = h
        if ready is not None:
            current = torch.cuda.current_stream(self.device)
            current.wait_event(ready)
            x.record_stream(current)
            y.record_stream(current)
        out = finish(mode, x, d, hw, self.recipe)
        return (out, y, torch.from_numpy(pos)) if self.indexed else (out, y)


def ahead(fn, items, workers: int = 1, depth: int = 2):
    """fn(item) for each item, in order, computed by `workers` threads up to `depth` items ahead of the
    consumer (numpy copies and torch kernels release the GIL). Stopping early cancels what is queued."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor
    ex = ThreadPoolExecutor(max(1, workers), thread_name_prefix="transferlearn-batches")
    pending: deque = deque()
    it = iter(items)
    try:
        for item in it:
            pending.append(ex.submit(fn, item))
            if len(pending) >= max(depth, workers):
                break
        while pending:
            done = pending.popleft()
            item = next(it, _END)
            if item is not _END:
                pending.append(ex.submit(fn, item))
            yield done.result()
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


_END = object()
