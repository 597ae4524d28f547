"""Last-layer mode's setup step: a frozen backbone is a fixed function, so its features are computed once
(K augmented views per training image, one clean view per val image) and the epochs train the head on
them. Under N processes each computes the features of its share of the images; all are gathered, so
every process holds the same feature datasets."""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .distributed import DistContext
from .frozen import backbone_runner
from .pipeline import CachedBatches, CachedImages, batch_plans, normalize_batch
from .sampling import BatchPlan, FeatureBatches, SeededDataset, collate_indexed


@torch.no_grad()
def extract(backbone, dataset, stream: int, ctx: DistContext, device: torch.device, batch_size: int, seed: int,
            workers: int = 0, desc: str = "features", quiet: bool = False, norm=None):
    """(features float32 [N, F], readable mask [N]) for every sample of `dataset`, on every process.
    `backbone`: image batch -> float32 CPU features (frozen.FrozenBackbone). `stream` picks the augmentation
    draws (view k of the training set uses its own)."""
    n = len(dataset)
    plan = BatchPlan(n, batch_size, ctx, seed=seed, shuffle=False, pad=False)
    plan.set_epoch(stream)
    if isinstance(dataset, CachedImages):  # read and augmented a batch at a time on `device`
        loader = CachedBatches(dataset, plan, seed, device, indexed=True)
    else:
        loader = DataLoader(SeededDataset(dataset, seed), batch_sampler=plan, num_workers=workers,
                            collate_fn=collate_indexed)
    mine = list(ctx.shard(n))
    pos = {i: k for k, i in enumerate(mine)}
    feats, ok = None, torch.zeros(len(mine), dtype=torch.bool)
    for batch in tqdm(loader, desc=desc, disable=True if quiet else None, leave=False, dynamic_ncols=True,
                      unit="batch"):
        if batch is None:
            continue
        x, _, idx = batch
        if norm is not None:  # uint8 samples, normalised per batch (pipeline.split_uint8)
            x = normalize_batch(x, norm, device)
        f = backbone(x)
        if feats is None:
            feats = torch.zeros((len(mine), f.shape[1]))
        rows = torch.tensor([pos[int(i)] for i in idx.tolist()])
        feats[rows], ok[rows] = f, True
    if feats is None or ctx.active:  # a process whose images were all unreadable learns the width from the others
        dim = next((d for d in ctx.all_gather(None if feats is None else feats.shape[1]) if d), 0)
        feats = torch.zeros((len(mine), dim)) if feats is None else feats
    return ctx.gather_rows(feats, n), ctx.gather_rows(ok, n)


_REMEMBERED: dict | None = None  # within remembered_features(): what was extracted, by what decides it


@contextmanager
def remembered_features():
    """Within this block the same images, backbone, views and augmentation are run through the backbone once:
    `tune`'s trials and `train --lr find`'s range test then share one extraction, and a last-layer trial costs
    seconds. The features stay in memory until the block ends."""
    global _REMEMBERED
    outer = _REMEMBERED
    _REMEMBERED = {} if outer is None else outer
    try:
        yield
    finally:
        _REMEMBERED = outer


def features_key(train, val, views: int, cfg, ctx: DistContext, device, amp: str) -> str:
    """Everything that decides the extracted features: the options that shape the images and the backbone,
    and the sample counts (the decoded datasets themselves follow from these)."""
    names = ("data", "mode", "arch", "weights", "in_channels", "img_size", "train_size", "augment", "seed",
             "val_split", "cache", "batch_augment", "backbone_runtime", "batch_size")
    return json.dumps([[getattr(cfg, n) for n in names], views, len(train[0]), len(val[0]), ctx.rank,
                       ctx.world_size, str(device), amp], default=str)


def extract_views(backbone, train, val, views: int, cfg, ctx: DistContext, device, amp: str, log=print):
    """((train views [K, N, F], train labels), (val features [1, M, F], val labels)) of the readable images,
    the same on every process. The backbone runs on cfg.backbone_runtime (frozen.py)."""
    key = features_key(train, val, views, cfg, ctx, device, amp) if _REMEMBERED is not None else None
    if key in (_REMEMBERED or {}):
        if ctx.is_main:
            log("frozen features: computed earlier in this process, reused")
        return _REMEMBERED[key]
    out = compute_views(backbone, train, val, views, cfg, ctx, device, amp, log)
    if key is not None:
        _REMEMBERED[key] = out
    return out


def compute_views(backbone, train, val, views: int, cfg, ctx: DistContext, device, amp: str, log=print):
    from ..data import default_cache_root
    backbone = backbone_runner(backbone, cfg.backbone_runtime, device, amp, cfg.in_channels,
                               Path(cfg.cache_dir) if cfg.cache_dir else default_cache_root(), log=log)
    (train_ds, train_labels, train_norm), (val_ds, val_labels, val_norm) = train, val
    feats, ok = [], None
    for k in range(views):
        f, ok_k = extract(backbone, train_ds, -(k + 1), ctx, device, cfg.batch_size, cfg.seed,
                          desc=f"features: train view {k + 1}/{views}", quiet=cfg.quiet or not ctx.is_main,
                          norm=train_norm)
        feats.append(f)
        ok = ok_k if ok is None else ok & ok_k
    labels = torch.tensor(train_labels, dtype=torch.long)[ok]
    vf, vok = extract(backbone, val_ds, 0, ctx, device, cfg.batch_size, cfg.seed, desc="features: val",
                      quiet=cfg.quiet or not ctx.is_main, norm=val_norm)
    cfg_note = f"{views} views" if views > 1 else "1 view"
    if ctx.is_main:
        log(f"frozen features: {cfg_note} of {len(train_labels)} train + {len(val_labels)} val images, "
            f"backbone on {backbone.engine}")
    return (torch.stack(feats)[:, ok], labels), (vf[vok][None], torch.tensor(val_labels, dtype=torch.long)[vok])


def feature_batches(backbone, train, val, cfg, ctx: DistContext, device, amp: str, num_classes: int,
                    views: int | None = None, plan_ctx: DistContext | None = None, log=print):
    """(train FeatureBatches, val FeatureBatches): the setup step of a frozen backbone. `plan_ctx` shards the
    batches (default: like the extraction, over this run's processes)."""
    (tv, labels), (vf, vl) = extract_views(backbone, train, val, cfg.aug_views if views is None else views, cfg, ctx,
                                           device, amp, log)
    train_plan, val_plan = batch_plans(labels.tolist(), len(vl), cfg, plan_ctx or ctx, num_classes)
    return FeatureBatches(tv, labels, train_plan), FeatureBatches(vf, vl, val_plan, pick_views=False)


def image_features(backbone, samples: list[tuple[str, int]], pre, cfg, device, amp: str = "off", log=print):
    """(features float32 [M, F], positions [M] in `samples`) of the readable images of `samples`: one clean
    (eval-transform) view each, through the same decode cache, backbone runtime and extraction as last-layer
    mode's. For tools that study a dataset through a frozen backbone (`data audit`); one process."""
    import numpy as np
    from torch.utils.data import Subset

    from ..data import Splits, default_cache_root
    from .pipeline import image_datasets
    ctx = DistContext()
    _, (ds, labels, norm) = image_datasets(Splits(classes=[], train=[], val=samples), pre, cfg, ctx, log=log)
    if isinstance(ds, CachedImages):  # unreadable images were left out when the cache was built
        kept = np.asarray(ds.index, dtype=np.int64)
    elif isinstance(ds, Subset):
        kept = np.asarray(ds.indices, dtype=np.int64)
    else:
        kept = np.arange(len(samples), dtype=np.int64)
    runner = backbone_runner(backbone, cfg.backbone_runtime, device, amp, cfg.in_channels,
                             Path(cfg.cache_dir) if cfg.cache_dir else default_cache_root(), log=log)
    f, ok = extract(runner, ds, 0, ctx, device, cfg.batch_size, cfg.seed, desc="features", quiet=cfg.quiet,
                    norm=norm)
    return f[ok], kept[ok.numpy()]
