"""Files -> batches for one run: image datasets (decoded once into the on-disk cache, or every epoch)
and the batches each process draws from them. Nothing here runs the model (a frozen backbone's
features are a setup step of last-layer mode: `features.py`).

Per sample only what must be: decoding and the geometric part of the augmentation (crop, resize, flip),
on uint8 pixels. The float conversion and normalisation run once per batch, on the training device
(`split_uint8`): a quarter of the bytes to collate and copy, and no per-sample dispatch of four more
transforms (242 -> 164 us per 32 px image, 887 -> 782 us at 160 px: bench/pipeline_split.py). The result is bit-identical to the per-sample
torchvision pipeline it splits (tested), so the random draws and the pixels are those of `data.train_transform`.
"""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Subset
from torchvision.transforms import v2 as T
from torchvision.transforms.v2 import functional as TF

from ..data import ImageDataset, eval_transform, resolve_workers, train_transform
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


def image_datasets(splits, pre: dict, cfg, ctx: DistContext, log=print):
    """((train dataset, train labels, norm), (val dataset, val labels, norm)) of (x, y) samples; with a
    `norm` (mean, std), x is uint8 and the batch is normalised later (`normalize_batch`).

    With the decode cache, one process per machine decodes (in parallel workers) while the others wait and
    then open the same files, and images that failed to decode are left out here, once, so that every
    process sees the same samples."""
    out = []
    for samples, tf in ((splits.train, train_transform(pre, cfg.augment)), (splits.val, eval_transform(pre))):
        labels = [y for _, y in samples]
        split = split_uint8(tf)
        tf, norm = split if split else (tf, None)
        if not cfg.cache:
            out.append((ImageDataset(samples, tf, cfg.in_channels), labels, norm))
            continue
        from ..data.cache import CachedImageDataset, DecodedImages
        with ctx.main_first():
            decoded = DecodedImages.build([p for p, _ in samples], pre["resize"], cfg.cache_dir,
                                          resolve_workers(cfg.workers), cfg.quiet or not ctx.is_main,
                                          cfg.in_channels, pre.get("interpolation", "bilinear"))
        ds = CachedImageDataset(decoded, labels, tf)
        keep = [i for i in range(len(labels)) if decoded.valid[i]]
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


def image_batches(train, val, cfg, ctx: DistContext, num_classes: int, device: torch.device | None = None):
    """(train batches, val batches) for this process."""
    (train_ds, train_labels, train_norm), (val_ds, _, val_norm) = train, val
    device = device or torch.device("cpu")
    # a cached sample costs well under 1 ms: on a CPU, worker processes would only compete with the model for
    # cores; a GPU is fed by workers while it computes
    workers = 0 if cfg.cache and device.type == "cpu" else resolve_workers(cfg.workers)
    train_plan, val_plan = batch_plans(train_labels, len(val_ds), cfg, ctx, num_classes)
    return (ImageBatches(train_ds, train_plan, cfg.seed, workers, norm=train_norm, device=device),
            ImageBatches(val_ds, val_plan, cfg.seed, workers, norm=val_norm, device=device))
