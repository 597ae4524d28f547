"""The training loop: one epoch of training, one pass of evaluation, and the state between them.

`TrainState` holds everything that changes while training (model, optimiser, scheduler, epoch,
best score, history), so that checkpointing, resume and distributed training deal with one
object. Functions here know nothing about files or the command line.
"""
from __future__ import annotations

import contextlib
import math
import random
import time
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from .modes import apply_mode, set_train


@dataclass
class TrainState:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object | None
    mode: str
    epoch: int = 0  # epochs completed
    best_acc: float = -1.0
    best_epoch: int = 0
    history: list = field(default_factory=list)  # one dict per epoch (the rows of results.csv)
    train_seconds: float = 0.0
    images_seen: int = 0

    def state_dict(self) -> dict:
        """Everything needed to continue exactly where training stopped."""
        return {"optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "epoch": self.epoch, "best_acc": self.best_acc, "best_epoch": self.best_epoch,
                "history": self.history, "train_seconds": self.train_seconds, "images_seen": self.images_seen,
                "rng": {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
                        "python_pos": random.getstate()[2]}}

    def load_state_dict(self, sd: dict) -> None:
        self.optimizer.load_state_dict(sd["optimizer"])
        if self.scheduler is not None and sd.get("scheduler") is not None:
            self.scheduler.load_state_dict(sd["scheduler"])
        for k in ("epoch", "best_acc", "best_epoch", "history", "train_seconds", "images_seen"):
            setattr(self, k, sd[k])
        torch.set_rng_state(sd["rng"]["torch"])
        random.setstate((3, tuple(sd["rng"]["python"]), sd["rng"]["python_pos"]))


def tune_malloc() -> bool:
    """Keep freed memory in the heap instead of giving it back to the OS at once.

    glibc hands large blocks back to the kernel when they are freed, so every CPU training step
    faults in fresh zeroed pages for its activations (about 30,000 page faults per EfficientNet-Lite0
    step at 160 px here). Raising the mmap and trim thresholds cuts that to under a thousand and made
    the step 3-6% faster (bench/malloc_ab.py, docs/speed.md). It changes no result; the process keeps its peak
    memory instead of returning it between steps. Linux/glibc only; elsewhere a no-op (False)."""
    import ctypes
    import sys
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
        return bool(libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, 2**31 - 1))
    except (OSError, AttributeError):  # musl or another libc without mallopt
        return False


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
                 scheduler: str, epochs: int, step_size: int, gamma: float) -> TrainState:
    params = apply_mode(model, mode)
    opt = build_optimizer(params, optimizer, lr, momentum, weight_decay)
    return TrainState(model=model, optimizer=opt, scheduler=build_scheduler(opt, scheduler, epochs, step_size, gamma),
                      mode=mode)


def autocast(device: torch.device, amp: str):
    """bf16 autocast on CPUs (and CUDA) when asked; a no-op context otherwise."""
    if amp == "off":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def resolve_amp(amp: str, device: torch.device) -> str:
    """'auto' picks bf16 where the hardware runs it natively, fp16 on older CUDA GPUs, else off."""
    if amp != "auto":
        return amp
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    try:
        isa = torch.backends.cpu.get_cpu_capability()
    except Exception:
        return "off"
    return "bf16" if "AVX512" in isa.upper() or "AMX" in isa.upper() else "off"


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Image batches go channels_last (faster convolutions on CPU and GPU); feature batches as they are."""
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x


def _batches(loader, device: torch.device, desc: str, quiet: bool):
    """(progress bar, iterator of (x, y) on `device`), skipping batches whose images were all unreadable."""
    bar = tqdm(loader, desc=desc, leave=False, disable=True if quiet else None, dynamic_ncols=True, unit="batch")
    return bar, ((to_device(b[0], device), b[1].to(device, non_blocking=True)) for b in bar if b is not None)


def train_one_epoch(state: TrainState, loader, criterion, device: torch.device, amp: str = "off",
                    desc: str = "train", quiet: bool = False, forward=None) -> dict:
    """`forward` defaults to the model; last-layer training on cached features passes model.head."""
    model = state.model
    forward = model if forward is None else forward
    set_train(model, state.mode)
    scaler = torch.amp.GradScaler(device.type) if amp == "fp16" else None
    loss_sum, correct, n = 0.0, 0, 0
    t0 = time.perf_counter()
    bar, batches = _batches(loader, device, desc, quiet)
    for x, y in batches:
        with autocast(device, amp):
            logits = forward(x)
            loss = criterion(logits.float(), y)
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"training loss became {loss.item()} at epoch {state.epoch + 1}; "
                                     f"lower --lr (now {state.optimizer.param_groups[0]['lr']:g})")
        state.optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(state.optimizer)
            scaler.update()
        else:
            loss.backward()
            state.optimizer.step()
        b = y.size(0)
        loss_sum += loss.item() * b
        correct += (logits.argmax(1) == y).sum().item()
        n += b
        bar.set_postfix(loss=f"{loss_sum / n:.4f}", acc=f"{correct / n:.3f}")
    seconds = time.perf_counter() - t0
    state.train_seconds += seconds
    state.images_seen += n
    if state.scheduler is not None:
        state.scheduler.step()
    return {"train_loss": loss_sum / max(n, 1), "train_acc": correct / max(n, 1), "train_seconds": seconds,
            "train_images": n}


@torch.no_grad()
def evaluate(model: nn.Module, loader, criterion, device: torch.device, amp: str = "off",
             desc: str = "val", quiet: bool = False, forward=None) -> dict:
    model.eval()
    forward = model if forward is None else forward
    loss_sum, correct, n = 0.0, 0, 0
    for x, y in _batches(loader, device, desc, quiet)[1]:
        with autocast(device, amp):
            logits = forward(x)
        loss_sum += criterion(logits.float(), y).item() * y.size(0)
        correct += (logits.argmax(1) == y).sum().item()
        n += y.size(0)
    return {"val_loss": loss_sum / max(n, 1), "val_acc": correct / max(n, 1), "val_images": n}
