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
from .data import find_splits, make_loader, preprocess_config, train_transform, eval_transform, resolve_workers
from .data import balance_report, balance_setup
from .engine import create_state, evaluate, resolve_amp, train_one_epoch
from .models import create_model, get_spec
from .modes import DEFAULTS, MODES, check_mode
from .plots import plot_comparison, plot_curves
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
    img_size: int = 224
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
    amp: str = "off"  # off | bf16 | fp16 | auto
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
        if c.mode == "scratch" and c.weights == "imagenet":
            raise ValueError("mode scratch trains from random init; --weights imagenet contradicts it "
                             "(use --mode all-layers to fine-tune ImageNet weights)")
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


def _log(msg: str) -> None:
    print(msg, flush=True)


def train(cfg: TrainConfig | None = None, **overrides) -> dict:
    """Train one model; returns the run's summary (also written to summary.json)."""
    cfg = (cfg or TrainConfig())
    if overrides:
        cfg = TrainConfig(**{**asdict(cfg), **overrides})
    cfg = cfg.resolved()
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    amp = resolve_amp(cfg.amp, device)
    log = _log

    # files -> datasets
    splits = find_splits(cfg.data, cfg.val_split, cfg.seed)
    for note in splits.notes:
        log(note)
    spec = get_spec(cfg.arch)
    pre = preprocess_config(cfg.img_size, spec.mean, spec.std)
    counts = splits.counts("train")
    sampler, loss_weight = balance_setup(splits.train, counts, cfg.balance, cfg.seed)  # --balance
    train_loader = make_loader(splits.train, train_transform(pre, cfg.augment), cfg.batch_size, shuffle=True,
                               workers=cfg.workers, seed=cfg.seed, sampler=sampler)
    val_loader = make_loader(splits.val, eval_transform(pre), cfg.batch_size, shuffle=False, workers=cfg.workers)
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
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_all = sum(p.numel() for p in model.parameters())

    # run folder
    run_dir = increment_path(cfg.project, cfg.name or cfg.mode, cfg.exist_ok)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_yaml(run_dir / "args.yaml", asdict(cfg))
    write_json(run_dir / "classes.json", splits.classes)
    tb = TensorBoardLogger(run_dir)
    log(f"{cfg.mode} | {cfg.arch} weights={cfg.weights} | {n_train:,} of {n_all:,} parameters trainable | "
        f"{cfg.optimizer} lr={cfg.lr:g} wd={cfg.weight_decay:g} {cfg.scheduler} | device {device}"
        f"{' ' + amp if amp != 'off' else ''} | workers {resolve_workers(cfg.workers)} | run folder {run_dir}")

    meta = {"format": ckpt_io.FORMAT, "arch": cfg.arch, "num_classes": len(splits.classes),
            "classes": splits.classes, "preprocess": pre, "mode": cfg.mode, "weights": cfg.weights,
            "args": {k: v for k, v in asdict(cfg).items()}, "train_counts": counts, "augment": cfg.augment,
            "versions": ckpt_io.versions()}

    def save(path: Path, row: dict, with_state: bool) -> None:
        obj = {**meta, "model": model.state_dict(), "epoch": state.epoch,
               "metrics": {k: v for k, v in row.items() if v is not None}}
        if with_state:
            obj["train_state"] = state.state_dict()
        ckpt_io.save(obj, path)

    t_start = time.perf_counter()
    try:
        while state.epoch < cfg.epochs:
            epoch = state.epoch + 1
            lr = state.optimizer.param_groups[0]["lr"]
            t0 = time.perf_counter()
            row = {"epoch": epoch, "lr": lr,
                   **train_one_epoch(state, train_loader, train_criterion, device, amp,
                                     desc=f"epoch {epoch}/{cfg.epochs} train", quiet=cfg.quiet)}
            state.epoch = epoch
            if _should_eval(epoch, cfg):
                row.update(evaluate(model, val_loader, criterion, device, amp,
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
               "images_per_second": round(state.images_seen / max(state.train_seconds, 1e-9), 1),
               "train_images": len(splits.train), "val_images": len(splits.val),
               "classes": len(splits.classes), "trainable_params": n_train, "total_params": n_all,
               "device": str(device), "amp": amp, "run_dir": str(run_dir)}
    write_json(run_dir / "summary.json", summary)
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
