"""The training loop: one epoch of optimiser steps (`train_one_epoch`), one validation pass (`validate`).
No files, no console lines beyond a progress bar; the same code under 1 or N processes (sums are
all-reduced at the end)."""
from __future__ import annotations

import contextlib
import math
import os
import time
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from ..models.bnfold import folded_batchnorm
from ..models.device import autocast, infer_batches, to_device
from ..modes import set_train
from .distributed import DistContext
from .ema import update_ema
from .sampling import seed_step
from .state import TrainState, bn_eval_at, new_progress, warmup_factor


class Interrupted(Exception):
    """A stop was requested (SIGINT/SIGTERM) and every process stopped after the same optimiser step."""


def compile_module(module: nn.Module, cache_dir: str | None = None) -> nn.Module:
    """torch.compile, with Inductor's caches kept in transferlearn's cache folder (--cache-dir, else
    $TRANSFERLEARN_CACHE or ~/.cache/transferlearn; $TORCHINDUCTOR_CACHE_DIR wins when set): Inductor's own
    default is a folder under /tmp, which a reboot empties, and a warm cache is what lets a second run of the same
    model and sizes load its kernels instead of compiling them again."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir  # torch._inductor: only when compiling

    from ..data.cache import default_cache_root
    given = os.environ.get("TORCHINDUCTOR_CACHE_DIR")  # torch writes its default here once it has looked
    if given is None or os.path.abspath(given) == os.path.abspath(default_cache_dir()):
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(cache_dir or default_cache_root()) / "inductor")
    return torch.compile(module)


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


def _bar(batches, desc: str, quiet: bool, initial: int = 0):
    return tqdm(batches, desc=desc, leave=False, disable=True if quiet else None, dynamic_ncols=True, unit="batch",
                total=len(batches) if hasattr(batches, "__len__") else None, initial=initial)


def train_one_epoch(state: TrainState, batches, criterion, device: torch.device, amp: str = "off", *,
                    forward=None, ctx: DistContext | None = None, seed: int = 0, desc: str = "train",
                    quiet: bool = False, after_step=None, stop_requested=None) -> dict:
    """Optimiser steps from `state.progress['step']` to the end of epoch `state.epoch + 1`.

    `forward` defaults to the model; last-layer training on cached features passes the head (DDP-wrapped
    under several processes). `batches` must already be positioned at the epoch and step (set_epoch).
    After each step `after_step(state)` may save a checkpoint; when `stop_requested()` is true on any
    process, all stop after the same step and `Interrupted` is raised with the progress intact."""
    ctx = ctx or DistContext()
    forward = state.model if forward is None else forward
    epoch, p = state.epoch + 1, state.progress
    bn_eval = bn_eval_at(epoch, state.bn_eval_epochs)
    set_train(state.model, state.mode, state.freeze_stages, bn_eval)
    # torch.compile fuses BatchNorm itself, and a module swapped under a compiled one would make it compile again
    fold = bn_eval and not hasattr(getattr(forward, "module", forward), "_orig_mod")
    steps = len(batches) if state.backbone_warmup else 0
    bar = _bar(batches, desc, quiet, initial=p["step"])
    t_prev = time.perf_counter()
    with contextlib.ExitStack() as folding:  # BatchNorm on running statistics folded into convolutions (bnfold)
        folded = False
        for batch in bar:
            if batch is not None:  # None: every image of this batch was unreadable (reported when decoded)
                x, y = to_device(batch[0], device), batch[1].to(device, non_blocking=True)
                if fold and not folded:
                    folding.enter_context(folded_batchnorm(state.model.backbone, x[:2]))
                    folded = True
                seed_step(seed, epoch, p["step"], ctx.rank)
                with autocast(device, amp):
                    logits = forward(x)
                    loss = criterion(logits.float(), y)
                if not math.isfinite(loss.item()):
                    raise FloatingPointError(f"training loss became {loss.item()} at epoch {epoch}; "
                                             f"lower --lr (now {state.optimizer.param_groups[-1]['lr']:g})")
                state.optimizer.zero_grad(set_to_none=True)
                scaled = scale_backbone_lr(state, warmup_factor(epoch, p["step"], steps, state.backbone_warmup))
                if state.scaler is not None:
                    state.scaler.scale(loss).backward()
                    state.scaler.step(state.optimizer)
                    state.scaler.update()
                else:
                    loss.backward()
                    state.optimizer.step()
                for g, lr in scaled:  # the optimiser (and so a checkpoint) holds the scheduler's lr between steps
                    g["lr"] = lr
                update_ema(state.ema, state.model)
                b = y.size(0)
                p["loss_sum"] += loss.item() * b
                p["correct"] += int((logits.argmax(1) == y).sum().item())
                p["n"] += b
                bar.set_postfix(loss=f"{p['loss_sum'] / p['n']:.4f}", acc=f"{p['correct'] / p['n']:.3f}")
            p["step"] += 1
            now = time.perf_counter()
            p["seconds"] += now - t_prev  # loading the batch included
            t_prev = now
            if after_step is not None:
                after_step(state)
            if stop_requested is not None and ctx.any(stop_requested()):
                bar.close()
                raise Interrupted
    bar.close()
    loss_sum, correct, n = ctx.all_reduce_sum([p["loss_sum"], p["correct"], p["n"]])
    sync_buffers(state.model, ctx)
    if state.ema is not None:  # its buffers average each process's BatchNorm statistics: take the main one's
        sync_buffers(state.ema, ctx)
    state.train_seconds += p["seconds"]
    state.images_seen += int(n)
    row = {"train_loss": loss_sum / max(n, 1), "train_acc": correct / max(n, 1), "train_seconds": p["seconds"],
           "train_images": int(n)}
    state.epoch, state.progress = epoch, new_progress()
    if state.scheduler is not None:
        state.scheduler.step()
    return row


def scale_backbone_lr(state: TrainState, factor: float) -> list:
    """Multiply every group's lr but the head's (the last) by `factor` for one step; returns what to put back."""
    if factor == 1.0:
        return []
    scaled = [(g, g["lr"]) for g in state.optimizer.param_groups[:-1]]
    for g, lr in scaled:
        g["lr"] = lr * factor
    return scaled


def sync_buffers(model: nn.Module, ctx: DistContext) -> None:
    """BatchNorm running statistics: every process takes the main process's, so all hold one model
    (DDP broadcasts them before each forward, but the last step leaves each rank's own update)."""
    if not ctx.active:
        return
    import torch.distributed as dist
    for b in model.buffers():
        if b.is_floating_point() or b.dtype == torch.long:
            dist.broadcast(b.data, src=0)


def validate(model: nn.Module, batches, criterion, device: torch.device, amp: str = "off", *, forward=None,
             ctx: DistContext | None = None, desc: str = "val", quiet: bool = False) -> dict:
    """Loss and accuracy over every val image once; each process evaluates its shard, the sums are added."""
    ctx = ctx or DistContext()
    model.eval()
    forward = model if forward is None else forward
    loss_sum, correct, n = 0.0, 0, 0
    for batch, logits in infer_batches(forward, _bar(batches, desc, quiet), device, amp):
        y = batch[1].to(device, non_blocking=True)
        loss_sum += criterion(logits.float(), y).item() * y.size(0)
        correct += int((logits.argmax(1) == y).sum().item())
        n += y.size(0)
    loss_sum, correct, n = ctx.all_reduce_sum([loss_sum, correct, n])
    return {"val_loss": loss_sum / max(n, 1), "val_acc": correct / max(n, 1), "val_images": int(n)}
