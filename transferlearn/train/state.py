"""Everything that changes while training, in one object that saves and loads exactly.

A checkpoint of `TrainState` taken after any optimiser step is a complete resume point: model,
optimiser, scheduler, the run's one GradScaler, the epoch and the step within it (with the epoch's
running sums), best score, history and every RNG. The data order and augmentation need no saved
generator: they are pure functions of (seed, epoch, sample) (see `sampling`), so the step number
is all it takes to continue with the very batches the uninterrupted run would have seen.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..modes import param_groups

STATE_VERSION = 2  # 1: epoch-level state without steps, scaler or numpy/CUDA RNGs (not resumable exactly)


def new_progress() -> dict:
    """Running sums of the epoch in progress (so a mid-epoch resume writes the same results.csv row)."""
    return {"step": 0, "loss_sum": 0.0, "correct": 0, "n": 0, "seconds": 0.0}


@dataclass
class TrainState:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object | None
    mode: str
    scaler: torch.amp.GradScaler | None = None  # fp16 only; one per run so the loss scale carries over
    epoch: int = 0  # epochs completed
    progress: dict = field(default_factory=new_progress)  # the epoch in progress (epoch + 1)
    best_acc: float = -1.0
    best_epoch: int = 0
    history: list = field(default_factory=list)  # one dict per epoch (the rows of results.csv)
    train_seconds: float = 0.0
    images_seen: int = 0
    warmup: dict | None = None  # what the head warm-up did (all-layers; train/warmup.py), once, before epoch 1
    stopped_early: int = 0  # the epoch after which early stopping ended the run (0: it did not)
    freeze_stages: int = 0  # all-layers: the backbone's first stages kept frozen (from the config, not saved)
    bn_eval_epochs: int = 0  # all-layers: first epochs with BatchNorm on running statistics; -1 all (config)
    backbone_warmup: float = 0.0  # all-layers: epochs of linear lr warm-up of the backbone's groups (config)
    ema: nn.Module | None = None  # --ema: the weights' moving average (train/ema.py), from fine-tuning's first step

    def evaluated(self) -> nn.Module:
        """The network validation scores and checkpoints ship: the moving average where there is one."""
        return self.ema.module if self.ema is not None else self.model

    def state_dict(self) -> dict:
        """The training state without the model weights (the checkpoint stores those next to it)."""
        return {"version": STATE_VERSION, "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "epoch": self.epoch, "progress": dict(self.progress), "best_acc": self.best_acc,
                "best_epoch": self.best_epoch, "history": self.history, "train_seconds": self.train_seconds,
                "images_seen": self.images_seen, "warmup": self.warmup, "stopped_early": self.stopped_early,
                **({"trained": self.model.state_dict(), "ema_steps": int(self.ema.n_averaged)}
                   if self.ema is not None else {})}

    def load_state_dict(self, sd: dict) -> None:
        if sd.get("version") != STATE_VERSION:
            raise ValueError(f"training state version {sd.get('version', 1)}, this transferlearn reads {STATE_VERSION}")
        self.optimizer.load_state_dict(sd["optimizer"])
        if self.scheduler is not None and sd.get("scheduler") is not None:
            self.scheduler.load_state_dict(sd["scheduler"])
        if self.scaler is not None and sd.get("scaler") is not None:
            self.scaler.load_state_dict(sd["scaler"])
        for k in ("epoch", "best_acc", "best_epoch", "history", "train_seconds", "images_seen"):
            setattr(self, k, sd[k])
        self.progress = dict(sd["progress"])
        self.warmup, self.stopped_early = sd.get("warmup"), sd.get("stopped_early", 0)


def rng_state() -> dict:
    """This process's RNGs: python, numpy, torch CPU and every CUDA device."""
    py = random.getstate()
    np_state = np.random.get_state()
    return {"python": [py[0], list(py[1]), py[2]],
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]),
                      float(np_state[4])],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else []}


def set_rng_state(s: dict) -> None:
    random.setstate((s["python"][0], tuple(s["python"][1]), s["python"][2]))
    n = s["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(s["torch"])
    if s["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"][:torch.cuda.device_count()])


def build_optimizer(params, name: str, lr: float, momentum: float, weight_decay: float):
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=momentum > 0)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; use sgd, adam or adamw")


def build_scheduler(optimizer, name: str, epochs: int, step_size: int, gamma: float):
    """Stepped once per epoch."""
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    if name == "none":
        return None
    raise ValueError(f"unknown scheduler {name!r}; use step, cosine or none")


def create_state(model: nn.Module, mode: str, optimizer: str, lr: float, momentum: float, weight_decay: float,
                 scheduler: str, epochs: int, step_size: int, gamma: float, amp: str = "off",
                 device_type: str = "cpu", freeze_stages: int = 0, layer_decay: float = 1.0,
                 head_lr_scale: float = 1.0, backbone_warmup: float = 0.0, bn_eval_epochs: int = 0) -> TrainState:
    groups = param_groups(model, mode, lr, freeze_stages, layer_decay, head_lr_scale, split=backbone_warmup > 0)
    opt = build_optimizer(groups, optimizer, lr, momentum, weight_decay)
    scaler = torch.amp.GradScaler(device_type) if amp == "fp16" else None
    return TrainState(model=model, optimizer=opt, scheduler=build_scheduler(opt, scheduler, epochs, step_size, gamma),
                      mode=mode, scaler=scaler, freeze_stages=freeze_stages, bn_eval_epochs=bn_eval_epochs,
                      backbone_warmup=backbone_warmup)


def bn_eval_at(epoch: int, bn_eval_epochs: int) -> bool:
    """Whether fine-tuning epoch `epoch` (1-based) runs the backbone's BatchNorm on running statistics."""
    return bn_eval_epochs < 0 or epoch <= bn_eval_epochs


def warmup_factor(epoch: int, step: int, steps_per_epoch: int, warmup_epochs: float) -> float:
    """The backbone's lr factor at (epoch, step): rising linearly from 1/n to 1 over the first n =
    warmup_epochs x steps_per_epoch steps, then 1. A pure function of the position, so a resumed run takes
    the very steps the uninterrupted one took."""
    n = warmup_epochs * steps_per_epoch
    i = (epoch - 1) * steps_per_epoch + step
    return 1.0 if n <= 0 or i >= n else (i + 1) / n
