"""`--ema E`: validate, keep and ship an exponential moving average of the weights instead of the last step's.

Fine-tuning from a probe (train/warmup.py) moves a converged model with noisy steps: its first epochs fall below
the probe before they climb (docs/finetune.md). An average over the recent steps (Polyak averaging; timm's
--model-ema) sits between where fine-tuning started and where it is, the interpolation WiSE-FT found better
than either end, and it smooths the epoch-to-epoch noise of small datasets. The average is PyTorch's own
`AveragedModel` with its EMA update (torch.optim.swa_utils), over parameters and buffers.

E is the average's time constant in epochs, so one value means the same on 250 images and on 25,000: each step
keeps 1 - 1/(E x steps per epoch) of the average. It starts at the weights fine-tuning starts from (the probe,
with --warmup-head keep), not at the first step's. The training state keeps both: the checkpoints' "model" is
the average (what was validated, what best.pt and predict use), train_state["trained"] the weights the
optimiser steps, so a resumed run continues both exactly. results.csv's train loss and accuracy stay those of
the trained weights, measured as they step; its val columns are the average's.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def ema_decay(epochs: float, steps_per_epoch: int) -> float:
    """The per-step decay whose time constant is `epochs` epochs of `steps_per_epoch` steps."""
    return 1.0 - 1.0 / max(epochs * steps_per_epoch, 1.0)


def new_ema(model: nn.Module, epochs: float, steps_per_epoch: int, saved: tuple | None = None) -> AveragedModel:
    """An average that starts at `model`'s current weights (n_averaged 1: the first step is averaged in, not
    copied over them), or a resumed run's `saved` (weights, steps averaged) from `trained_weights`."""
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay(epochs, steps_per_epoch)),
                        use_buffers=True)
    ema.n_averaged.fill_(1)
    if saved is not None:
        ema.module.load_state_dict(saved[0])
        ema.n_averaged.fill_(int(saved[1]))
    ema.requires_grad_(False)
    return ema


def trained_weights(ckpt: dict) -> tuple[dict, tuple | None]:
    """A resume point's weights the optimiser steps, and its average (weights, steps) where it has one."""
    ts = ckpt["train_state"]
    if "trained" not in ts:
        return ckpt["model"], None
    return ts["trained"], (ckpt["model"], ts["ema_steps"])


@torch.no_grad()
def update_ema(ema: AveragedModel | None, model: nn.Module) -> None:
    if ema is not None:
        ema.update_parameters(model)
