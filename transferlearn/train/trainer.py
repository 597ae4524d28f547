"""The Trainer: setup -> fit -> finish. Reads top to bottom: what a run is made of, the epoch loop, the
resume points, and the summary. Files are written by callbacks (callbacks.py), on the main process only.
"""
from __future__ import annotations

import random
import signal
import threading
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data import balance_report, balance_setup, find_splits, preprocess_config, resolve_workers
from ..models import create_model, get_spec
from ..models.device import model_to, pick_device
from ..modes import backbone_frozen
from ..runs import RunLock, checkpoint as ckpt_io, claim_run_dir, now_iso
from . import distributed
from .callbacks import Callback, default_callbacks
from .config import TrainConfig, options_hash
from .ema import new_ema, trained_weights
from .features import feature_batches
from .loop import Interrupted, compile_module, train_one_epoch, tune_malloc, validate
from .pipeline import image_batches, image_datasets
from .precision import probe_first, run_precision
from .resume import (check_same_options, has_checkpoint, load_resume_checkpoint, resume_command, resumed_config,
                     run_folder)
from .state import create_state, rng_state, set_rng_state
from .stopping import stop_reason
from .warmup import swap_head, warm_up_head


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT/SIGTERM after saving last.pt; `command` continues it."""

    def __init__(self, command: str, signum: int):
        super().__init__(command)
        self.command, self.signum = command, signum


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def device_type(device: str) -> str:
    return "cuda" if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()) else "cpu"


def should_eval(epoch: int, cfg: TrainConfig) -> bool:
    """MindSpore EvalCallBack semantics: from eval_start_epoch on, every eval_interval epochs, and at the end."""
    if epoch == cfg.epochs:
        return True
    return epoch >= cfg.eval_start_epoch and (epoch - cfg.eval_start_epoch) % cfg.eval_interval == 0


def warmup_row(w: dict) -> dict:
    """results.csv's epoch 0: the model after the head warm-up (pretrained backbone, trained head), as fastai's
    fine_tune shows its frozen epoch before the unfrozen ones."""
    return {"epoch": 0, "lr": w["lr"], "train_loss": w["train_loss"], "train_acc": w["train_acc"],
            "val_loss": w["val_loss"], "val_acc": w["val_acc"], "seconds": w["seconds"], "time": w.get("time"),
            "train_images": 0, "train_seconds": 0.0, "val_images": w["val_images"]}


class Trainer:
    def __init__(self, cfg: TrainConfig, callbacks: list[Callback] | None = None, given: dict | None = None,
                 log=print):
        """`given`: with cfg.resume, the options stated for this invocation (only some may differ from the run's)."""
        self.raw_cfg, self.given, self._log, self.resumed = cfg, dict(given or {}), log, False
        self.callbacks = default_callbacks() if callbacks is None else callbacks
        self._stop = self._ckpt = self._probe_head = self._ema_saved = None  # _ema_saved: a resumed run's average

    def log(self, msg: str) -> None:
        if self.ctx.is_main:
            self._log(msg)

    # ------------------------------------------------------------------ setup

    def setup(self) -> "Trainer":
        cfg = self.raw_cfg
        if cfg.resume and cfg.resume != "auto":
            self._ckpt, path = load_resume_checkpoint(cfg.resume, warn=self._log)
            cfg = resumed_config(self._ckpt, {**self.given, "resume": cfg.resume})
        cfg = cfg.resolved()
        auto_dir = Path(cfg.project) / (cfg.name or cfg.mode)
        if cfg.resume == "auto" and has_checkpoint(auto_dir):
            self._ckpt, _ = load_resume_checkpoint(auto_dir, warn=self._log)
            check_same_options(self._ckpt, cfg)
        self.cfg, self.resumed = cfg, self._ckpt is not None

        self.ctx = ctx = distributed.from_env(device_type(cfg.device), cfg.dist_timeout)
        if self.resumed and self._ckpt.get("world_size", 1) != ctx.world_size:
            raise ValueError(f"this run was trained by {self._ckpt.get('world_size', 1)} process(es) and is resumed by "
                             f"{ctx.world_size}: the batches and their order would differ. Resume it with "
                             f"--nproc_per_node={self._ckpt.get('world_size', 1)} (torchrun) or start a new run.")
        self.device = pick_device(cfg.device, ctx.local_rank)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fastest convolution algorithms for the fixed input sizes
        threads = distributed.threads_per_process(ctx)
        if threads and self.device.type == "cpu":
            torch.set_num_threads(threads)
        if self.device.type == "cpu":
            tune_malloc()  # fewer page faults per step; no effect on results
        seed_everything(cfg.seed)  # same initial weights on every process

        # files -> datasets
        splits = find_splits(cfg.data, cfg.val_split, cfg.seed)
        for note in splits.notes:
            self.log(note)
        self.classes, self.splits = splits.classes, splits
        spec = get_spec(cfg.arch)
        self.pre = preprocess_config(cfg.img_size, spec.mean, spec.std, cfg.train_size, channels=cfg.in_channels,
                                     crop_pct=spec.crop_pct, interpolation=spec.interpolation)
        self.counts = splits.counts("train")
        _, loss_weight = balance_setup(splits.train, self.counts, cfg.balance, cfg.seed)  # weighted-loss
        self.log(f"data {cfg.data}: {len(splits.classes)} classes, {len(splits.train)} train / "
                 f"{len(splits.val)} val images")
        for line in balance_report(splits.classes, self.counts, cfg.balance, cfg.imbalance_warn):
            self.log(line)
        if cfg.balance != "none" or cfg.augment != "standard":
            self.log(f"balance {cfg.balance} | augment {cfg.augment}")

        # model and training state
        model = create_model(cfg.arch, len(splits.classes), weights=cfg.weights, init=cfg.init, log=self.log,
                             in_channels=cfg.in_channels,
                             img_size=(cfg.img_size, cfg.train_size, cfg.progressive_resize or cfg.train_size))
        if cfg.sync_bn and ctx.active and not backbone_frozen(cfg.mode):
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        if cfg.freeze_stages:
            n = len(model.stages())
            if cfg.freeze_stages >= n:
                raise ValueError(f"--freeze-stages {cfg.freeze_stages}: {cfg.arch}'s backbone has {n} stages; freeze "
                                 f"at most {n - 1}, or use --mode last-layer to freeze all of it")
        self.model = model_to(model, self.device)
        t0 = time.perf_counter()  # set-up cost from here: measuring the precision, decoding, features
        late = probe_first(cfg, self.device, self.resumed)  # fp32 until the probe is there, then measured
        self.amp = "off" if late else run_precision(cfg, ctx, self.device, self.model, self._ckpt, self.log)
        self.state = create_state(self.model, cfg.mode, cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay,
                                  cfg.scheduler, cfg.epochs, cfg.step_size, cfg.gamma, self.amp, self.device.type,
                                  cfg.freeze_stages, cfg.layer_decay, cfg.head_lr_scale, cfg.backbone_warmup,
                                  cfg.bn_eval_epochs)
        if self.resumed:
            self._restore(self._ckpt)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        # --balance weighted-loss weights the training loss only; val loss stays comparable across runs
        self.train_criterion = (self.criterion if loss_weight is None else nn.CrossEntropyLoss(
            weight=loss_weight.to(self.device), label_smoothing=cfg.label_smoothing))

        # datasets -> batches (a frozen backbone's features are computed here, once)
        train, val = image_datasets(splits, self.pre, cfg, ctx, log=self.log)
        if cfg.feature_cache:
            self.train_batches, self.val_batches = feature_batches(self.model.backbone, train, val, cfg, ctx,
                                                                   self.device, self.amp, len(splits.classes),
                                                                   log=self.log)
            trained = self.model.head
        else:
            if cfg.head_warmup and not self.resumed:  # a resumed run's weights already hold the warmed-up head
                # the head learns on features of full-size crops, as last-layer mode's: the size it is evaluated at
                probe_train = train if cfg.train_size == cfg.img_size else image_datasets(
                    splits, replace(self.pre, train_size=cfg.img_size), cfg, ctx, log=self.log)[0]
                self.state.warmup, self._probe_head = warm_up_head(
                    self.model, probe_train, val, cfg, ctx, self.device, self.amp, len(splits.classes),
                    self.criterion, self.train_criterion, log=self.log)
            self.amp = run_precision(cfg, ctx, self.device, self.model, None, self.log) if late else self.amp
            self.train_batches, self.val_batches = image_batches(train, val, cfg, ctx, len(splits.classes),
                                                                 self.device)
            trained = self.model
        if cfg.compile:  # the uncompiled modules stay in self.model: checkpoints keep their plain names
            trained = compile_module(trained, cfg.cache_dir)
        self.eval_forward = trained
        self.forward = self._wrap_ddp(trained)
        warm = self.state.warmup["seconds"] if self.state.warmup and not self.resumed else 0.0
        self.prep_seconds = time.perf_counter() - t0 - warm  # the warm-up is epoch 0's row (warmup_row)
        self.state.train_seconds += self.prep_seconds + warm  # decoding and feature extraction are part of the cost

        # the run folder: chosen once, by the main process, and told to the others
        self.run_dir = Path(ctx.broadcast(str(self._claim_run_dir()) if ctx.is_main else None))
        self._lock = RunLock(self.run_dir).acquire() if ctx.is_main else None
        if ctx.is_main:
            for cb in self.callbacks:
                cb.on_fit_start(self)
        return self

    def _restore(self, ck: dict) -> None:
        weights, self._ema_saved = trained_weights(ck)  # --ema: the checkpoint's "model" is the average
        self.model.load_state_dict(weights)
        self.state.load_state_dict(ck["train_state"])
        if self.cfg.epochs != ck["args"]["epochs"] and self.state.scheduler is not None:
            sched = self.state.scheduler  # --epochs raised: the schedule stretches to the new length
            if hasattr(sched, "T_max"):
                sched.T_max = self.cfg.epochs
        rngs = ck.get("rng") or []
        if self.ctx.rank < len(rngs):
            set_rng_state(rngs[self.ctx.rank])
        progress = ck.get("rank_progress") or []
        if self.ctx.rank < len(progress):  # each process's running sums of the epoch in progress
            self.state.progress = dict(progress[self.ctx.rank])

    def _wrap_ddp(self, module: nn.Module):
        if not self.ctx.active or not any(p.requires_grad for p in module.parameters()):
            return module
        from torch.nn.parallel import DistributedDataParallel as DDP
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DDP(module, device_ids=ids)

    def _claim_run_dir(self) -> Path:
        cfg = self.cfg
        if self.resumed:
            return run_folder(cfg.resume) if cfg.resume != "auto" else Path(cfg.project) / (cfg.name or cfg.mode)
        if cfg.resume == "auto":
            return claim_run_dir(cfg.project, cfg.name or cfg.mode, exist_ok=True)
        return claim_run_dir(cfg.project, cfg.name or cfg.mode, cfg.exist_ok)

    def describe(self) -> str:
        cfg, ctx = self.cfg, self.ctx
        n_train = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        n_all = sum(p.numel() for p in self.model.parameters())
        crop = f"{cfg.progressive_resize}-{cfg.train_size}" if cfg.progressive_resize else str(cfg.train_size)
        sizes = f"{cfg.img_size} px" if crop == str(cfg.img_size) else f"train {crop} px / eval {cfg.img_size} px"
        pipeline = ("frozen features cached" if cfg.feature_cache else "decoded once" if cfg.cache
                    else f"decoded every epoch, {resolve_workers(cfg.workers)} workers")
        procs = ""
        if ctx.world_size > 1:
            procs = (f" | {ctx.world_size} processes ({ctx.backend}), batch {cfg.batch_size} per process = "
                     f"{cfg.batch_size * ctx.world_size} global, lr as given (not scaled)")
        tuning = f" | EMA of the weights over {cfg.ema:g} epoch{'s' * (cfg.ema > 1)}" if cfg.ema else ""
        if cfg.freeze_stages or cfg.layer_decay != 1.0:
            n = len(self.model.stages())
            tuning += (f" | first {cfg.freeze_stages} of {n} backbone stages frozen" if cfg.freeze_stages else
                      f" | {n} backbone stages") + (f", layer decay {cfg.layer_decay:g}" if cfg.layer_decay != 1 else "")
        start = ""
        if self.resumed:
            p = self.state.progress
            start = f" | resumed after epoch {self.state.epoch}" + (f", step {p['step']}" if p["step"] else "")
        return (f"{cfg.mode} | {cfg.arch} weights={cfg.weights} | {n_train:,} of {n_all:,} parameters trainable | "
                f"{cfg.optimizer} lr={cfg.lr:g} wd={cfg.weight_decay:g} {cfg.scheduler}{tuning} | {sizes} | device {self.device}"
                f"{' ' + self.amp if self.amp != 'off' else ''} | data: {pipeline}{procs}{start} | "
                f"run folder {self.run_dir}")

    def meta(self) -> dict:
        """What every checkpoint carries besides weights: enough to rebuild, preprocess and explain the model."""
        cfg = self.cfg
        return {"format": ckpt_io.FORMAT, "arch": cfg.arch, "num_classes": len(self.classes), "classes": self.classes,
                "variant": getattr(self.model, "variant", None),  # MindSpore padding/eps (mindspore/resnet.py)
                "preprocess": self.pre.to_dict(), "mode": cfg.mode, "weights": cfg.weights, "args": asdict(cfg),
                "train_counts": self.counts, "augment": cfg.augment, "amp": self.amp, "versions": ckpt_io.versions()}

    # ------------------------------------------------------------------ fit

    def fit(self) -> "Trainer":
        cfg, state, ctx = self.cfg, self.state, self.ctx
        restore = self._install_signal_handlers()
        try:
            if state.warmup and not state.history:  # the warmed-up head is the run's first candidate for best.pt
                row = warmup_row(state.warmup)
                state.best_acc, state.best_epoch = row["val_acc"], 0
                state.history.append(row)
                if ctx.is_main:  # --warmup-head reset: best.pt gets the probe's head, fine-tuning the fresh one
                    fresh = swap_head(self.model, self._probe_head)
                    for cb in self.callbacks:
                        cb.on_epoch_end(self, {**row, "improved": True})
                    swap_head(self.model, fresh)
                self.checkpoint()
            if cfg.ema and state.ema is None:  # the average starts where fine-tuning starts (after the probe)
                state.ema = new_ema(self.model, cfg.ema, len(self.train_batches), self._ema_saved)
            while state.epoch < cfg.epochs and not state.stopped_early:
                epoch = state.epoch + 1
                lr = state.optimizer.param_groups[-1]["lr"]  # the head's (--layer-decay lowers the others)
                self.train_batches.set_epoch(epoch, state.progress["step"])
                t0, spent = time.perf_counter(), state.progress["seconds"]
                crop = {"train_size": self.train_batches.recipe.size} if cfg.progressive_resize else {}
                row = {"epoch": epoch, "lr": lr, **crop, **train_one_epoch(
                    state, self.train_batches, self.train_criterion, self.device, self.amp, forward=self.forward,
                    ctx=ctx, seed=cfg.seed, desc=f"epoch {epoch}/{cfg.epochs} train", quiet=cfg.quiet or not ctx.is_main,
                    after_step=self._after_step, stop_requested=lambda: self._stop is not None)}
                if should_eval(epoch, cfg):
                    self.val_batches.set_epoch(epoch)
                    evaluated = state.evaluated()
                    row.update(validate(evaluated, self.val_batches, self.criterion, self.device, self.amp,
                                        forward=self.eval_forward if evaluated is self.model else evaluated, ctx=ctx,
                                        desc=f"epoch {epoch}/{cfg.epochs} val", quiet=cfg.quiet or not ctx.is_main))
                row["seconds"], row["time"] = round(time.perf_counter() - t0 + spent, 3), now_iso()
                improved = row.get("val_acc") is not None and row["val_acc"] > state.best_acc
                if improved:
                    state.best_acc, state.best_epoch = row["val_acc"], epoch
                state.history.append(row)
                if ctx.is_main:
                    for cb in self.callbacks:
                        cb.on_epoch_end(self, {**row, "improved": improved})
                reason = stop_reason(state.history, cfg.patience, cfg.warmup_patience, cfg.epochs)
                if reason:
                    state.stopped_early = epoch
                    self.log(reason)
                self.checkpoint()
                if state.stopped_early:
                    break
        except Interrupted:
            self.checkpoint()
            cmd = resume_command(self.run_dir, ctx.world_size)
            self.log(f"\nstopped by {signal.Signals(self._stop).name}; saved {self.run_dir / 'last.pt'} "
                     f"(epoch {state.epoch}, step {state.progress['step']}). Continue with:\n  {cmd}")
            self.close(wait_for_peers=False)
            raise TrainingInterrupted(cmd, self._stop) from None
        except BaseException:
            self.close(wait_for_peers=False)
            raise
        finally:
            restore()
        return self

    def _after_step(self, state) -> None:
        n = self.cfg.checkpoint_steps
        if n and state.progress["step"] % n == 0 and state.progress["step"] < len(self.train_batches):
            self.checkpoint()

    def checkpoint(self) -> None:
        """A resume point: every process's RNG state is gathered, the main process hands the whole to the
        callbacks (last.pt). Called by every process at the same step."""
        per_rank = self.ctx.all_gather({"rng": rng_state(), "progress": dict(self.state.progress)})
        if not self.ctx.is_main:
            return
        last = self.state.history[-1] if self.state.history else {}
        ck = {**self.meta(), "model": self.state.evaluated().state_dict(), "epoch": self.state.epoch,
              "metrics": {k: v for k, v in last.items() if v is not None}, "train_state": self.state.state_dict(),
              "rng": [r["rng"] for r in per_rank], "rank_progress": [r["progress"] for r in per_rank],
              "world_size": self.ctx.world_size, "options_hash": options_hash(self.cfg)}
        for cb in self.callbacks:
            cb.on_checkpoint(self, ck)

    def _install_signal_handlers(self):
        """SIGINT/SIGTERM: finish the current step, save, stop. A second SIGINT stops at once."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

        def handler(signum, frame):
            if self._stop is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self._stop = signum

        for s in old:
            signal.signal(s, handler)
        return lambda: [signal.signal(s, h) for s, h in old.items()]

    # ------------------------------------------------------------------ finish

    def finish(self) -> dict:
        cfg, state = self.cfg, self.state
        h = state.history
        summary = {"mode": cfg.mode, "arch": cfg.arch, "weights": cfg.weights, "init": cfg.init,
                   "in_channels": cfg.in_channels, "best_val_acc": state.best_acc,
                   "best_epoch": state.best_epoch, "epochs": cfg.epochs, "final_train_acc": h[-1]["train_acc"],
                   "final_val_acc": next((r["val_acc"] for r in reversed(h) if "val_acc" in r), None),
                   "train_seconds": round(state.train_seconds, 2),
                   "wall_seconds": round(sum(r["seconds"] for r in h) + self.prep_seconds, 2),
                   "images_per_second": round(state.epoch * len(self.splits.train) / max(state.train_seconds, 1e-9), 1),
                   "feature_cache": cfg.feature_cache, "decode_cache": cfg.cache,
                   "prep_seconds": round(self.prep_seconds, 2),
                   "epoch_images_per_second": round(sum(r["train_images"] for r in h) /
                                                    max(sum(r["train_seconds"] for r in h), 1e-9), 1),
                   "train_images": len(self.splits.train), "val_images": len(self.splits.val),
                   "classes": len(self.classes),
                   "trainable_params": sum(p.numel() for p in self.model.parameters() if p.requires_grad),
                   "total_params": sum(p.numel() for p in self.model.parameters()),
                   "img_size": cfg.img_size, "train_size": cfg.train_size, "device": str(self.device), "amp": self.amp,
                   "world_size": self.ctx.world_size, "global_batch_size": cfg.batch_size * self.ctx.world_size,
                   "resumed": self.resumed, "run_dir": str(self.run_dir), "epochs_run": state.epoch,
                   "stopped_early": bool(state.stopped_early), "head_warmup": state.warmup}
        if self.ctx.is_main:
            for cb in self.callbacks:
                cb.on_fit_end(self, summary)
        self.close()
        return summary

    def close(self, wait_for_peers: bool = True) -> None:
        for cb in self.callbacks:
            if hasattr(cb, "close"):
                cb.close()
        if getattr(self, "_lock", None) is not None:
            self._lock.release()
            self._lock = None
        if wait_for_peers:
            self.ctx.barrier()


def train(cfg: TrainConfig | None = None, *, callbacks: list[Callback] | None = None, **overrides) -> dict:
    """Train one model; returns the run's summary (also written to summary.json). train(data=..., mode=...) starts a
    run (lr="find": after the lr range test, lr_find.py); train(resume="runs/NAME", epochs=30) continues one with
    its own options (only epochs, device, workers, quiet may be given again)."""
    cfg = TrainConfig(**{**asdict(cfg or TrainConfig()), **overrides})
    if cfg.lr == "find" and not cfg.resume:
        from .lr_find import train_with_found_lr
        return train_with_found_lr(cfg, callbacks)
    given = overrides if cfg.resume and cfg.resume != "auto" else {}
    return Trainer(cfg, callbacks=callbacks, given=given).setup().fit().finish()
