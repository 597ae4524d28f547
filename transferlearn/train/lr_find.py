"""The learning-rate range test (Leslie Smith, "Cyclical Learning Rates for Training Neural Networks", 2017; fastai's
`lr_find`): train for about 100 steps while the lr grows exponentially from 1e-7 to 1, record the smoothed loss,
stop once it diverges, and suggest an lr where the loss still falls fast.

The model is built as a run would build it (the same data, preprocessing, mode, optimiser and batches; last-layer
mode on the frozen backbone's cached features, all-layers from a fresh head as fine-tuning starts after the head
warm-up with --warmup-head reset), and its weights and RNGs are put back afterwards: nothing is saved, no run
folder is made. Two suggestions, as fastai prints them: `steep`, the lr of the steepest fall of the loss, and
`minimum / 10`, a tenth of the lr at the lowest loss; `train --lr find` uses the second, the safer one (at the
steepest point the loss still falls, but the next decade up is often already past the minimum).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data import balance_setup, default_cache_root, find_splits, preprocess_config
from ..models import create_model, get_spec
from ..models.device import autocast, model_to, pick_device, to_device
from ..modes import set_train
from .config import TrainConfig
from .distributed import DistContext
from .features import feature_batches, remembered_features
from .pipeline import image_batches, image_datasets
from .precision import choose_amp
from .state import create_state, rng_state, set_rng_state


@dataclass
class LRFinding:
    """The range test's record: lrs and smoothed losses step by step, and the two suggestions."""
    lrs: list[float]
    losses: list[float]
    steep: float
    minimum: float  # the lr at the lowest smoothed loss
    stopped: str  # why the test ended: "diverged" or "end of range"

    @property
    def suggested(self) -> float:
        return self.minimum / 10

    def summary(self) -> str:
        return (f"lr finder: suggested lr {self.suggested:.2e} (minimum/10; the loss was lowest at {self.minimum:.2e}), "
                f"steepest fall at {self.steep:.2e}; {len(self.lrs)} steps, {self.stopped}")


def suggestions(lrs: list[float], losses: list[float]) -> tuple[float, float]:
    """(steep, minimum) as fastai computes them, on the record without its first tenth and last 5 steps (the start
    is noise of a fresh head, the end is the divergence)."""
    n = len(lrs)
    lo, hi = n // 10, max(n - 5, n // 10 + 2)
    x, y = np.log(np.asarray(lrs[lo:hi])), np.asarray(losses[lo:hi])
    if len(x) < 2:
        raise ValueError(f"the lr range test ran {n} steps, too few to suggest an lr: give more training images "
                         f"or a smaller --batch-size")
    grads = (y[1:] - y[:-1]) / (x[1:] - x[:-1])
    return float(np.exp(x[int(np.argmin(grads))])), float(np.exp(x[int(np.argmin(y))]))


def range_test(model: nn.Module, forward, batches, criterion, state, device, amp: str, start_lr: float = 1e-7,
               end_lr: float = 1.0, steps: int = 100, smooth: float = 0.98, diverge: float = 4.0) -> LRFinding:
    """Steps with an lr from start_lr to end_lr (exponential; --layer-decay's ratios between groups kept) until the
    smoothed loss exceeds `diverge` times its minimum. The model's weights and the RNGs are restored at the end."""
    saved, rngs = {k: v.detach().clone() for k, v in model.state_dict().items()}, rng_state()
    opt = state.optimizer
    ratios = [g["lr"] / opt.param_groups[-1]["lr"] for g in opt.param_groups]
    lrs, losses, avg, best, stopped, epoch = [], [], 0.0, math.inf, "end of range", 0
    try:
        set_train(model, state.mode, state.freeze_stages)
        while len(lrs) < steps and stopped == "end of range":
            epoch, before = epoch + 1, len(lrs)
            batches.set_epoch(epoch, 0)
            for batch in batches:
                if batch is None:
                    continue
                lr = start_lr * (end_lr / start_lr) ** (len(lrs) / max(steps - 1, 1))
                for g, r in zip(opt.param_groups, ratios):
                    g["lr"] = lr * r
                x, y = to_device(batch[0], device), batch[1].to(device)
                with autocast(device, amp):
                    loss = criterion(forward(x).float(), y)
                opt.zero_grad(set_to_none=True)
                if state.scaler is not None:
                    state.scaler.scale(loss).backward()
                    state.scaler.step(opt)
                    state.scaler.update()
                else:
                    loss.backward()
                    opt.step()
                value = loss.item()
                if not math.isfinite(value):
                    stopped = "diverged"
                    break
                avg = smooth * avg + (1 - smooth) * value
                smoothed = avg / (1 - smooth ** (len(lrs) + 1))
                lrs.append(lr)
                losses.append(smoothed)
                best = min(best, smoothed)
                if smoothed > diverge * best:
                    stopped = "diverged"
                    break
                if len(lrs) >= steps:
                    break
            if len(lrs) == before:  # an epoch without a readable batch: more would not help
                break
    finally:
        model.load_state_dict(saved)
        set_rng_state(rngs)
    steep, minimum = suggestions(lrs, losses)
    return LRFinding(lrs, losses, steep, minimum, stopped)


def lr_find(cfg: TrainConfig, start_lr: float = 1e-7, end_lr: float = 1.0, steps: int = 100, plot: str | Path | None = None,
            log=print) -> LRFinding:
    """The range test for the run `cfg` describes (its lr is ignored); writes the plot to `plot` when given."""
    cfg = replace(cfg, lr=None, head_warmup=0, resume=None).resolved()
    if not 0 < start_lr < end_lr:
        raise ValueError(f"lr range {start_lr:g} to {end_lr:g}: give 0 < start < end")
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    splits = find_splits(cfg.data, cfg.val_split, cfg.seed)
    spec = get_spec(cfg.arch)
    pre = preprocess_config(cfg.img_size, spec.mean, spec.std, cfg.train_size, channels=cfg.in_channels,
                            crop_pct=spec.crop_pct, interpolation=spec.interpolation)
    _, weight = balance_setup(splits.train, splits.counts("train"), cfg.balance, cfg.seed)
    model = model_to(create_model(cfg.arch, len(splits.classes), weights=cfg.weights, init=cfg.init, log=log,
                                  in_channels=cfg.in_channels, img_size=(cfg.img_size, cfg.train_size, cfg.train_size)),
                     device)
    amp = choose_amp(cfg.amp, device, model, cfg.arch, (cfg.batch_size, cfg.in_channels, cfg.train_size, cfg.train_size),
                     cfg.mode, cfg.freeze_stages, cfg.cache_dir or default_cache_root(), log=log)  # as the run will
    state = create_state(model, cfg.mode, cfg.optimizer, start_lr, cfg.momentum, cfg.weight_decay, "none", 1,
                         cfg.step_size, cfg.gamma, amp, device.type, cfg.freeze_stages, cfg.layer_decay)
    criterion = nn.CrossEntropyLoss(weight=None if weight is None else weight.to(device),
                                    label_smoothing=cfg.label_smoothing)
    ctx = DistContext()
    train, val = image_datasets(splits, pre, cfg, ctx, log=log)
    if cfg.feature_cache:
        batches, _ = feature_batches(model.backbone, train, val, cfg, ctx, device, amp, len(splits.classes), log=log)
        forward = model.head
    else:
        batches, _ = image_batches(train, val, cfg, ctx, len(splits.classes), device)
        forward = model
    found = range_test(model, forward, batches, criterion, state, device, amp, start_lr, end_lr, steps)
    if plot is not None:
        from ..reporting.plots import plot_lr_find
        plot_lr_find(found.lrs, found.losses, {"steep": found.steep, "minimum/10": found.suggested}, plot,
                     title=f"{cfg.arch} {cfg.mode} on {Path(cfg.data).name}")
    return found


def train_with_found_lr(cfg: TrainConfig, callbacks=None, log=print) -> dict:
    """`train --lr find`: the range test first, then the run with its suggestion (the frozen features are computed
    once for both); the run folder also gets lr_find.png."""
    from .callbacks import Callback, default_callbacks
    from .trainer import train

    class LRFindPlot(Callback):
        def on_fit_start(self, trainer):
            from ..reporting.plots import plot_lr_find
            plot_lr_find(found.lrs, found.losses, {"steep": found.steep, "minimum/10": found.suggested},
                         trainer.run_dir / "lr_find.png", title=f"{cfg.arch} {cfg.mode}")

    with remembered_features():
        found = lr_find(TrainConfig(**asdict(cfg)), log=log)
        log(found.summary())
        return train(replace(cfg, lr=found.suggested),
                     callbacks=[*(default_callbacks() if callbacks is None else callbacks), LRFindPlot()])
