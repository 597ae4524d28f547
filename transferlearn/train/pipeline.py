"""Files -> batches for one run: image datasets (decoded once into the on-disk cache, or every epoch)
and the batches each process draws from them. Nothing here runs the model (a frozen backbone's
features are a setup step of last-layer mode: `features.py`)."""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Subset

from ..data import ImageDataset, eval_transform, resolve_workers, train_transform
from .distributed import DistContext
from .sampling import BatchPlan, SeededDataset, collate_train


class ImageBatches:
    """Batches of (augmented) images for one process: a DataLoader whose batch sampler is a BatchPlan."""

    def __init__(self, dataset, plan: BatchPlan, seed: int, workers: int = 0, collate=collate_train):
        self.dataset, self.plan = dataset, plan
        self.loader = DataLoader(SeededDataset(dataset, seed), batch_sampler=plan, num_workers=workers,
                                 persistent_workers=workers > 0, collate_fn=collate,
                                 pin_memory=torch.cuda.is_available())

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.plan.set_epoch(epoch, start_step)

    def __len__(self):
        return len(self.plan)

    def __iter__(self):
        return iter(self.loader)


def image_datasets(splits, pre: dict, cfg, ctx: DistContext, log=print):
    """((train dataset, train labels), (val dataset, val labels)) of (x, y) samples.

    With the decode cache, one process per machine decodes (in parallel workers) while the others wait and
    then open the same files, and images that failed to decode are left out here, once, so that every
    process sees the same samples."""
    train_tf, val_tf = train_transform(pre, cfg.augment), eval_transform(pre)
    out = []
    for samples, tf in ((splits.train, train_tf), (splits.val, val_tf)):
        labels = [y for _, y in samples]
        if not cfg.cache:
            out.append((ImageDataset(samples, tf), labels))
            continue
        from ..cache import CachedImageDataset, DecodedImages
        with ctx.main_first():
            decoded = DecodedImages.build([p for p, _ in samples], pre["resize"], cfg.cache_dir,
                                          resolve_workers(cfg.workers), cfg.quiet or not ctx.is_main)
        ds = CachedImageDataset(decoded, labels, tf)
        keep = [i for i in range(len(labels)) if decoded.valid[i]]
        if len(keep) < len(labels):
            ds, labels = Subset(ds, keep), [labels[i] for i in keep]
        out.append((ds, labels))
    return out[0], out[1]


def balance_weights(labels: list[int], num_classes: int) -> torch.Tensor:
    """Per-sample weights for --balance sampler: every class drawn equally often."""
    counts = torch.bincount(torch.tensor(labels, dtype=torch.long), minlength=num_classes).double()
    return (1.0 / counts[torch.tensor(labels, dtype=torch.long)]).double()


def image_batches(train, val, cfg, ctx: DistContext, num_classes: int):
    """(train batches, val batches) for this process."""
    (train_ds, train_labels), (val_ds, _) = train, val
    workers = 0 if cfg.cache else resolve_workers(cfg.workers)  # cached samples cost ~1 ms: workers only compete
    weights = balance_weights(train_labels, num_classes) if cfg.balance == "sampler" else None
    train_plan = BatchPlan(len(train_ds), cfg.batch_size, ctx, seed=cfg.seed, shuffle=True, pad=True, weights=weights)
    val_plan = BatchPlan(len(val_ds), cfg.batch_size, ctx, seed=cfg.seed, shuffle=False, pad=False)
    return (ImageBatches(train_ds, train_plan, cfg.seed, workers),
            ImageBatches(val_ds, val_plan, cfg.seed, workers))
