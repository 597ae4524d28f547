"""`train` and `compare`: files -> dataset -> model -> training loop -> run folder.

The Python API behind the CLI. Read top to bottom: configuration, then `train`, then `compare`.
"""
from __future__ import annotations

import random
import shutil
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import checkpoint as ckpt_io
from .data import (balance_report, balance_setup, eval_transform, find_splits, make_loader, preprocess_config,
                   resolve_workers, train_transform)
from .engine import autocast, create_state, evaluate, resolve_amp, train_one_epoch, tune_malloc
from .models import create_model, get_spec
from .modes import DEFAULTS, MODES, backbone_frozen, check_mode
from .plots import plot_comparison, plot_curves
from .report import write_compare_report, write_report
from .runs import RESULT_COLUMNS, TensorBoardLogger, increment_path, read_csv, write_csv, write_json, write_yaml


@dataclass
class TrainConfig:
    """Every training option. None means "the default for this mode" (see modes.DEFAULTS)."""
    data: str = ""
    mode: str = "last-layer"
    arch: str = "resnet18"
    weights: str | None = None  # imagenet | none | PATH
    init: str = "kaiming"  # scratch mode only
    epochs: int = 10
    batch_size: int = 32
    img_size: int = 224  # eval / inference size, stored in the checkpoint
    train_size: int | None = None  # training crop; None: the mode's default (modes.DEFAULTS train_scale)
    optimizer: str | None = None
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float | None = None
    scheduler: str | None = None
    step_size: int = 7
    gamma: float = 0.1
    label_smoothing: float = 0.0
    balance: str = "none"  # none | weighted-loss | sampler (class imbalance)
    imbalance_warn: float = 3.0  # warn when the largest class has more than this times the smallest's images
    augment: str = "standard"  # none | light | standard | strong (data.train_transform)
    val_split: float = 0.2
    workers: str | int = "auto"
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"  # off | bf16 | fp16 | auto (bf16 where the CPU/GPU runs it natively)
    feature_cache: bool | None = None  # None: on in last-layer mode (frozen backbone features computed once)
    aug_views: int = 4  # augmented views per training image in the feature cache
    cache: bool = True  # decode + resize every image once into an on-disk uint8 cache
    cache_dir: str | None = None
    eval_interval: int = 1
    eval_start_epoch: int = 1
    project: str = "runs"
    name: str | None = None
    exist_ok: bool = False
    output: str | None = None
    quiet: bool = False

    def resolved(self) -> "TrainConfig":
        """A copy with the mode's defaults filled in, so args.yaml records what actually ran."""
        check_mode(self.mode)
        d = DEFAULTS[self.mode]
        c = TrainConfig(**asdict(self))
        c.weights = c.weights or d.weights
        c.optimizer = c.optimizer or d.optimizer
        c.lr = d.lr if c.lr is None else c.lr
        c.weight_decay = d.weight_decay if c.weight_decay is None else c.weight_decay
        c.scheduler = c.scheduler or d.scheduler
        if c.train_size is None:
            c.train_size = max(8, int(round(c.img_size * d.train_scale / 8)) * 8) if d.train_scale != 1 else c.img_size
        if not 8 <= c.train_size <= 4 * c.img_size:
            raise ValueError(f"--train-size {c.train_size} is out of range for --img-size {c.img_size}")
        if c.mode == "scratch" and c.weights == "imagenet":
            raise ValueError("mode scratch trains from random init; --weights imagenet contradicts it "
                             "(use --mode all-layers to fine-tune ImageNet weights)")
        if c.feature_cache is None:
            c.feature_cache = backbone_frozen(c.mode)
        if c.feature_cache and not backbone_frozen(c.mode):
            raise ValueError(f"--feature-cache needs a frozen backbone (mode last-layer), not {c.mode}")
        if c.aug_views < 1:
            raise ValueError("--aug-views must be at least 1")
        if c.eval_interval < 1 or c.epochs < 1:
            raise ValueError("--epochs and --eval-interval must be at least 1")
        return c


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but PyTorch sees no CUDA GPU; use --device cpu")
    return torch.device(device)


def _should_eval(epoch: int, cfg: TrainConfig) -> bool:
    """MindSpore EvalCallBack semantics: from eval_start_epoch on, every eval_interval epochs, and at the end."""
    if epoch == cfg.epochs:
        return True
    return epoch >= cfg.eval_start_epoch and (epoch - cfg.eval_start_epoch) % cfg.eval_interval == 0


def build_loaders(splits, pre: dict, cfg: TrainConfig, model, device, amp: str, sampler=None):
    """(train batches, val batches, forward function) for this run's caching choices.

    Uncached: PIL decode + augment every epoch. Decode cache: pixels decoded once, augmented as
    tensors (same transforms). Feature cache (last-layer): the frozen backbone runs once over K
    augmented views of train and one clean view of val; the epochs train the head on those.
    """
    workers = resolve_workers(cfg.workers)
    train_tf, val_tf = train_transform(pre, cfg.augment), eval_transform(pre)

    decoded = {}  # split name -> DecodedImages, built (or found on disk) once per run

    def loader(split, tf, shuffle, sampler=None):
        samples = getattr(splits, split)
        if not cfg.cache:
            return make_loader(samples, tf, cfg.batch_size, shuffle=shuffle, workers=workers, seed=cfg.seed,
                               sampler=sampler)
        from .cache import CachedImageDataset, DecodedImages
        if split not in decoded:
            decoded[split] = DecodedImages.build([p for p, _ in samples], pre["resize"], cfg.cache_dir, workers,
                                                 cfg.quiet)
        ds = CachedImageDataset(decoded[split], [y for _, y in samples], tf)
        # cached samples cost ~1 ms to augment: worker processes would only compete with the model for cores
        return make_loader(ds, None, cfg.batch_size, shuffle=shuffle, workers=0, seed=cfg.seed, sampler=sampler)

    val_dl = loader("val", val_tf, False)
    if not cfg.feature_cache:
        return loader("train", train_tf, True, sampler), val_dl, None

    from .cache import FeatureBatches, extract_features
    ctx = lambda: autocast(device, amp)  # noqa: E731
    views, labels = [], None
    for k in range(cfg.aug_views):
        f, labels = extract_features(model.backbone, loader("train", train_tf, False), device, ctx,
                                     desc=f"features: train view {k + 1}/{cfg.aug_views}", quiet=cfg.quiet)
        views.append(f)
    vf, vl = extract_features(model.backbone, val_dl, device, ctx, desc="features: val", quiet=cfg.quiet)
    if sampler is not None:  # re-draw class-balanced over the images that decoded
        sampler, _ = balance_setup([(None, int(y)) for y in labels], torch.bincount(labels).tolist(),
                                   "sampler", cfg.seed)
    return (FeatureBatches(views, labels, cfg.batch_size, shuffle=True, seed=cfg.seed, sampler=sampler),
            FeatureBatches([vf], vl, cfg.batch_size, shuffle=False), model.head)


def _sizes(cfg: TrainConfig) -> str:
    if cfg.train_size == cfg.img_size:
        return f"{cfg.img_size} px"
    return f"train {cfg.train_size} px / eval {cfg.img_size} px"


def _log(msg: str) -> None:
    print(msg, flush=True)


def _report(writer, folder: Path) -> None:
    """report.html; a problem there is reported, never fatal to a finished training."""
    try:
        writer(folder)
    except Exception as e:  # pragma: no cover - defensive
        _log(f"warning: could not write {folder / 'report.html'}: {type(e).__name__}: {e}")


def train(cfg: TrainConfig | None = None, **overrides) -> dict:
    """Train one model; returns the run's summary (also written to summary.json)."""
    cfg = (cfg or TrainConfig())
    if overrides:
        cfg = TrainConfig(**{**asdict(cfg), **overrides})
    cfg = cfg.resolved()
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    amp = resolve_amp(cfg.amp, device)
    if device.type == "cpu":
        tune_malloc()  # fewer page faults per step; no effect on results
    log = _log

    # files -> datasets
    splits = find_splits(cfg.data, cfg.val_split, cfg.seed)
    for note in splits.notes:
        log(note)
    spec = get_spec(cfg.arch)
    pre = preprocess_config(cfg.img_size, spec.mean, spec.std, cfg.train_size)
    counts = splits.counts("train")
    sampler, loss_weight = balance_setup(splits.train, counts, cfg.balance, cfg.seed)  # --balance
    log(f"data {cfg.data}: {len(splits.classes)} classes, {len(splits.train)} train / {len(splits.val)} val images")
    for line in balance_report(splits.classes, counts, cfg.balance, cfg.imbalance_warn):
        log(line)
    if cfg.balance != "none" or cfg.augment != "standard":
        log(f"balance {cfg.balance} | augment {cfg.augment}")

    # model and training state
    model = create_model(cfg.arch, len(splits.classes), weights=cfg.weights, init=cfg.init, log=log)
    model = model.to(device).to(memory_format=torch.channels_last)
    state = create_state(model, cfg.mode, cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay,
                         cfg.scheduler, cfg.epochs, cfg.step_size, cfg.gamma)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    # --balance weighted-loss weights the training loss only; val loss stays comparable across runs
    train_criterion = (criterion if loss_weight is None else
                       nn.CrossEntropyLoss(weight=loss_weight.to(device), label_smoothing=cfg.label_smoothing))
    t_start = time.perf_counter()
    train_loader, val_loader, forward = build_loaders(splits, pre, cfg, model, device, amp, sampler)
    prep_seconds = time.perf_counter() - t_start
    state.train_seconds += prep_seconds  # decoding and feature extraction are part of the training cost
    pipeline = ("frozen features cached" if cfg.feature_cache else "decoded once" if cfg.cache
                else f"decoded every epoch, {resolve_workers(cfg.workers)} workers")
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_all = sum(p.numel() for p in model.parameters())

    # run folder
    run_dir = increment_path(cfg.project, cfg.name or cfg.mode, cfg.exist_ok)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_yaml(run_dir / "args.yaml", asdict(cfg))
    write_json(run_dir / "classes.json", splits.classes)
    tb = TensorBoardLogger(run_dir)
    log(f"{cfg.mode} | {cfg.arch} weights={cfg.weights} | {n_train:,} of {n_all:,} parameters trainable | "
        f"{cfg.optimizer} lr={cfg.lr:g} wd={cfg.weight_decay:g} {cfg.scheduler} | "
        f"{_sizes(cfg)} | device {device}"
        f"{' ' + amp if amp != 'off' else ''} | data: {pipeline} | run folder {run_dir}")

    meta = {"format": ckpt_io.FORMAT, "arch": cfg.arch, "variant": getattr(model, "variant", None),
            "num_classes": len(splits.classes),
            "classes": splits.classes, "preprocess": pre, "mode": cfg.mode, "weights": cfg.weights,
            "args": {k: v for k, v in asdict(cfg).items()}, "train_counts": counts, "augment": cfg.augment,
            "versions": ckpt_io.versions()}

    def save(path: Path, row: dict, with_state: bool) -> None:
        obj = {**meta, "model": model.state_dict(), "epoch": state.epoch,
               "metrics": {k: v for k, v in row.items() if v is not None}}
        if with_state:
            obj["train_state"] = state.state_dict()
        ckpt_io.save(obj, path)

    try:
        while state.epoch < cfg.epochs:
            epoch = state.epoch + 1
            lr = state.optimizer.param_groups[0]["lr"]
            t0 = time.perf_counter()
            row = {"epoch": epoch, "lr": lr,
                   **train_one_epoch(state, train_loader, train_criterion, device, amp, forward=forward,
                                     desc=f"epoch {epoch}/{cfg.epochs} train", quiet=cfg.quiet)}
            state.epoch = epoch
            if _should_eval(epoch, cfg):
                row.update(evaluate(model, val_loader, criterion, device, amp, forward=forward,
                                    desc=f"epoch {epoch}/{cfg.epochs} val", quiet=cfg.quiet))
            row["seconds"] = round(time.perf_counter() - t0, 3)
            state.history.append(row)
            improved = row.get("val_acc") is not None and row["val_acc"] > state.best_acc
            if improved:
                state.best_acc, state.best_epoch = row["val_acc"], epoch
                save(run_dir / "best.pt", row, with_state=False)
            save(run_dir / "last.pt", row, with_state=True)
            write_csv(run_dir / "results.csv", state.history, RESULT_COLUMNS)
            tb.log(row, epoch)
            val = (f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f}{' *' if improved else ''}"
                   if "val_acc" in row else "val skipped")
            log(f"epoch {epoch}/{cfg.epochs}  train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}  "
                f"{val}  lr {lr:.2e}  {row['seconds']:.1f}s")
    finally:
        tb.close()
    wall = time.perf_counter() - t_start

    plot_curves(state.history, run_dir / "curves.png", title=f"{cfg.arch} {cfg.mode}")
    summary = {"mode": cfg.mode, "arch": cfg.arch, "weights": cfg.weights, "best_val_acc": state.best_acc,
               "best_epoch": state.best_epoch, "epochs": cfg.epochs,
               "final_train_acc": state.history[-1]["train_acc"],
               "final_val_acc": next((r["val_acc"] for r in reversed(state.history) if "val_acc" in r), None),
               "train_seconds": round(state.train_seconds, 2), "wall_seconds": round(wall, 2),
               "images_per_second": round(cfg.epochs * len(splits.train) / max(state.train_seconds, 1e-9), 1),
               "feature_cache": cfg.feature_cache, "decode_cache": cfg.cache,
               "prep_seconds": round(prep_seconds, 2),
               "epoch_images_per_second": round(sum(r["train_images"] for r in state.history) /
                                                max(sum(r["train_seconds"] for r in state.history), 1e-9), 1),
               "train_images": len(splits.train), "val_images": len(splits.val),
               "classes": len(splits.classes), "trainable_params": n_train, "total_params": n_all,
               "img_size": cfg.img_size, "train_size": cfg.train_size,
               "device": str(device), "amp": amp, "run_dir": str(run_dir)}
    write_json(run_dir / "summary.json", summary)
    _report(write_report, run_dir)
    if cfg.output:
        out = Path(cfg.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run_dir / "best.pt", out)
        log(f"best checkpoint also written to {out}")
    log(f"best val acc {state.best_acc:.4f} at epoch {state.best_epoch} | {wall:.1f}s | results in {run_dir}")
    return summary


COMPARISON_COLUMNS = ["mode", "arch", "best_val_acc", "best_epoch", "final_train_acc", "final_val_acc",
                      "train_seconds", "images_per_second", "trainable_params", "run_dir"]


def compare(cfg: TrainConfig | None = None, modes=MODES, **overrides) -> dict:
    """Train each mode with the same data, epochs and seed; write comparison.csv and comparison.png."""
    cfg = cfg or TrainConfig()
    if overrides:
        cfg = TrainConfig(**{**asdict(cfg), **overrides})
    out_dir = increment_path(cfg.project, cfg.name or "compare", cfg.exist_ok)
    out_dir.mkdir(parents=True, exist_ok=True)
    summaries, results = {}, {}
    for mode in modes:
        print(f"\n=== {mode} ===", flush=True)
        # user-set weights apply to the pretrained modes; scratch always starts from random init
        weights = None if mode == "scratch" or cfg.weights in (None, "imagenet", "none") else cfg.weights
        run_cfg = TrainConfig(**{**asdict(cfg), "mode": mode, "weights": weights, "project": str(out_dir),
                                 "name": mode, "exist_ok": True, "output": None})
        summaries[mode] = train(run_cfg)
        results[mode] = read_csv(Path(summaries[mode]["run_dir"]) / "results.csv")
    write_csv(out_dir / "comparison.csv", [summaries[m] for m in modes], COMPARISON_COLUMNS)
    plot_comparison(results, summaries, out_dir / "comparison.png",
                    title=f"{cfg.arch} on {Path(cfg.data).name}, {cfg.epochs} epochs")
    best = max(modes, key=lambda m: summaries[m]["best_val_acc"])
    write_json(out_dir / "summary.json", {"best_mode": best, "modes": summaries})
    _report(write_compare_report, out_dir)
    print("\n" + format_comparison(summaries), flush=True)
    print(f"\nwinner: {best} (best val acc {summaries[best]['best_val_acc']:.4f}); "
          f"plots: {out_dir / 'comparison.png'}", flush=True)
    return {"best_mode": best, "modes": summaries, "dir": str(out_dir)}


def format_comparison(summaries: dict) -> str:
    lines = ["| mode | best val acc | best epoch | final train acc | train s | img/s |",
             "|---|---|---|---|---|---|"]
    for m, s in summaries.items():
        lines.append(f"| {m} | {s['best_val_acc']:.4f} | {s['best_epoch']} | {s['final_train_acc']:.4f} | "
                     f"{s['train_seconds']:.1f} | {s['images_per_second']:.1f} |")
    return "\n".join(lines)
