"""Which samples each process trains on, in which order, with which random augmentation.

Everything random about the data is a pure function of (seed, epoch, sample index): the epoch's
order (a seeded permutation, or seeded class-balanced draws for --balance sampler), the feature-cache
view each sample uses, and the augmentation of each sample (the RNG is seeded from its key just
before its transform runs, in whichever process runs it). So:
- a resumed run needs only (epoch, step) to continue with the exact batches of the uninterrupted one;
- the worker count does not change a result;
- under DDP, rank r takes positions r, r + W, ... of the epoch's order, so the union of the ranks' k-th
  batches is the k-th global batch of one process with batch size B x W (and the same augmentation).
"""
from __future__ import annotations

import torch
from torch.utils.data import Dataset, default_collate

from .distributed import DistContext

_MASK = (1 << 63) - 1
STREAM_EPOCH, STREAM_AUG, STREAM_VIEW, STREAM_STEP = 1, 2, 3, 4


def mix(*parts: int) -> int:
    """A 63-bit seed from integers (splitmix64-style), the same on every machine and Python."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (h ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & _MASK


def seed_step(seed: int, epoch: int, step: int, rank: int) -> None:
    """Model-side randomness (dropout, stochastic depth) of one optimiser step on one rank."""
    s = mix(seed, STREAM_STEP, epoch, step, rank)
    torch.default_generator.manual_seed(s)
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.manual_seed(s)


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool, weights: torch.Tensor | None = None) -> torch.Tensor:
    """The epoch's order of sample indices (all processes compute the same)."""
    g = torch.Generator().manual_seed(mix(seed, STREAM_EPOCH, epoch))
    if weights is not None:  # --balance sampler: class-balanced draws with replacement, n per epoch
        return torch.multinomial(weights, n, replacement=True, generator=g)
    return torch.randperm(n, generator=g) if shuffle else torch.arange(n)


class BatchPlan:
    """This process's batches of one epoch, as index lists, from `start_step` on.

    Training (pad=True): the epoch's order is padded by wrapping around to a multiple of the world size,
    as DistributedSampler does, so every rank takes the same number of steps. Validation (pad=False,
    shuffle=False): rank r gets r, r + W, ... with no duplicates, so every image counts exactly once.
    """

    def __init__(self, n: int, batch_size: int, ctx: DistContext, seed: int = 0, shuffle: bool = True,
                 pad: bool = True, weights: torch.Tensor | None = None):
        self.n, self.batch_size, self.ctx, self.seed = n, batch_size, ctx, seed
        self.shuffle, self.pad, self.weights = shuffle, pad, weights
        self.epoch, self.start_step = 1, 0

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.epoch, self.start_step = epoch, start_step

    def indices(self) -> torch.Tensor:
        order = epoch_order(self.n, self.seed, self.epoch, self.shuffle, self.weights)
        w = self.ctx.world_size
        if self.pad and w > 1 and len(order) % w:
            order = torch.cat([order, order[:w - len(order) % w]])
        return order[self.ctx.rank::w]

    def __len__(self) -> int:
        w = self.ctx.world_size
        per_rank = -(-self.n // w) if self.pad else len(range(self.ctx.rank, self.n, w))
        return -(-per_rank // self.batch_size)

    def __iter__(self):
        idx = self.indices()
        for i in range(self.start_step * self.batch_size, len(idx), self.batch_size):
            yield [(self.epoch, int(j)) for j in idx[i:i + self.batch_size]]


class SeededDataset(Dataset):
    """Wraps a dataset of (x, y) or None; item (stream, i) is sample i with its augmentation RNG seeded from
    (seed, stream, i). Returns (i, sample) so callers can tell which samples were unreadable."""

    def __init__(self, base, seed: int):
        self.base, self.seed = base, seed

    def __len__(self):
        return len(self.base)

    def __getitem__(self, key):
        stream, i = key
        torch.default_generator.manual_seed(mix(self.seed, STREAM_AUG, stream, i))
        return i, self.base[i]


def collate_train(batch):
    """(x, y), unreadable samples dropped; None when the whole batch was unreadable."""
    items = [item for _, item in batch if item is not None]
    return default_collate(items) if items else None


def collate_indexed(batch):
    """(x, y, indices) of the readable samples, or None."""
    items = [(i, item) for i, item in batch if item is not None]
    if not items:
        return None
    x, y = default_collate([item for _, item in items])
    return x, y, torch.tensor([i for i, _ in items])


class FeatureBatches:
    """Batches of cached frozen-backbone features: each epoch every training image contributes one of its
    K augmented views, chosen by (seed, epoch); the same plan/sharding as image batches."""

    def __init__(self, views: torch.Tensor, labels: torch.Tensor, plan: BatchPlan, pick_views: bool = True):
        self.views, self.labels, self.plan, self.pick_views = views, labels, plan, pick_views  # views: [K, N, F]

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.plan.set_epoch(epoch, start_step)

    def __len__(self):
        return len(self.plan)

    def __iter__(self):
        k = self.views.shape[0]
        if self.pick_views and k > 1:
            g = torch.Generator().manual_seed(mix(self.plan.seed, STREAM_VIEW, self.plan.epoch))
            view_of = torch.randint(k, (self.views.shape[1],), generator=g)
        else:
            view_of = torch.zeros(self.views.shape[1], dtype=torch.long)
        for batch in self.plan:
            idx = torch.tensor([i for _, i in batch])
            yield self.views[view_of[idx], idx], self.labels[idx]
