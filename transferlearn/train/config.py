"""Every training option in one dataclass, the per-mode defaults filled in, and what a resume may change.

A run's options are stored in args.yaml and in last.pt. A resumed run continues with those: only the
options in RESUMABLE may be given again with a new value, and `options_hash` covers everything that
changes results, so a checkpoint is never continued under different settings by accident.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields

from ..modes import DEFAULTS, backbone_frozen, check_mode, warmup_head_default

WARMUP_HEADS = ("reset", "keep")  # where fine-tuning starts after the head warm-up (train/warmup.py)


@dataclass
class TrainConfig:
    """Every training option. None means "the default for this mode" (see modes.DEFAULTS)."""
    data: str = ""
    mode: str = "last-layer"
    arch: str = "resnet18"
    weights: str | None = None  # imagenet | none | PATH
    init: str = "kaiming"  # scratch mode only: kaiming | xavier | normal | default (models.INITS)
    in_channels: int = 3  # 1: grayscale images, 1-channel stem (pretrained RGB kernels summed)
    epochs: int | None = None  # None: the mode's default (modes.DEFAULTS)
    batch_size: int = 32  # per process; the global batch is batch_size x world size
    img_size: int | None = None  # eval / inference size, stored in the checkpoint; None: the arch's (224 mostly)
    train_size: int | None = None  # training crop; None: the mode's default (modes.DEFAULTS train_scale)
    progressive_resize: int = 0  # first epoch's training crop, growing to train_size (pipeline.train_size_at); 0 off
    optimizer: str | None = None
    lr: float | str | None = None  # "find": the lr range test's suggestion (train/lr_find.py), `train` only
    momentum: float = 0.9
    weight_decay: float | None = None
    scheduler: str | None = None
    step_size: int = 7
    gamma: float = 0.1
    label_smoothing: float = 0.0
    balance: str = "none"  # none | weighted-loss | sampler (class imbalance)
    imbalance_warn: float = 3.0  # warn when the largest class has more than this times the smallest's images
    augment: str | None = None  # data.AUGMENT_PRESETS; None: data.default_augment (by size and channels)
    val_split: float = 0.2
    workers: str | int = "auto"
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"  # off | bf16 | fp16 | auto (bf16 on GPUs; on an AMX CPU the faster, timed: train/precision.py)
    feature_cache: bool | None = None  # None: on in last-layer mode (frozen backbone features computed once)
    aug_views: int = 4  # augmented views per training image in the feature cache
    backbone_runtime: str = "auto"  # frozen backbone's engine: auto (onnxruntime on a CPU) | torch | onnxruntime
    cache: bool = True  # decode + resize every image once into an on-disk uint8 cache
    batch_augment: bool = True  # augment whole batches from the decode cache on the device (train/augment.py)
    cache_dir: str | None = None
    compile: bool = False  # torch.compile the trained module (minutes of compiling; pays on long GPU runs)
    head_warmup: int | None = None  # all-layers: epochs of head training on frozen features first; None: mode's
    freeze_stages: int = 0  # all-layers: keep the backbone's first K stages frozen (models/stages.py)
    layer_decay: float = 1.0  # all-layers: lr x decay^k for the backbone's k-th stage from the top (1: one lr)
    warmup_views: int = 2  # augmented views per training image for the head warm-up's features
    warmup_head: str | None = None  # fine-tuning starts from the probe's head (keep) or a fresh one (reset)
    bn_eval_epochs: int | None = None  # all-layers: first N epochs with BatchNorm on running statistics; -1 all
    backbone_warmup: float = 0.0  # all-layers: epochs over which the backbone's lr rises linearly from 0
    head_lr_scale: float = 1.0  # all-layers: the head's lr = lr x this
    ema: float | None = None  # evaluate and ship a moving average of the weights over about E epochs; 0 off
    patience: int | None = None  # early stopping: evaluations without a better val acc; 0 never; None: mode's
    warmup_patience: int | None = None  # all-layers: stop fine-tuning stalled this long below the probe; None: mode's
    eval_interval: int = 1
    eval_start_epoch: int = 1
    sync_bn: bool = False  # DDP: BatchNorm statistics over the global batch (slower; see docs/distributed.md)
    checkpoint_steps: int = 0  # also write last.pt every N optimiser steps inside an epoch (0: epoch ends only)
    dist_timeout: float = 1800.0  # seconds any collective may wait for a peer before the run fails
    project: str = "runs"
    name: str | None = None
    exist_ok: bool = False
    output: str | None = None
    quiet: bool = False
    resume: str | None = None  # RUN folder | last.pt path | auto (runs/NAME if it has a checkpoint)

    def resolved(self) -> "TrainConfig":
        """A copy with the mode's defaults filled in, so args.yaml records what actually ran."""
        from ..data import default_augment, is_small
        from ..models import get_spec
        check_mode(self.mode)
        d = DEFAULTS[self.mode]
        c = TrainConfig(**asdict(self))
        if c.in_channels not in (1, 3):
            raise ValueError(f"--in-channels {c.in_channels}: use 1 (grayscale images) or 3 (colour)")
        spec = get_spec(c.arch)
        if c.img_size is None:
            c.img_size = spec.input_size
        c.augment = c.augment or default_augment(c.img_size, c.in_channels)
        c.epochs = d.epochs if c.epochs is None else c.epochs
        c.weights = c.weights or d.weights
        c.optimizer = c.optimizer or d.optimizer
        c.lr = d.lr if c.lr is None else c.lr
        if not isinstance(c.lr, (int, float)):
            raise ValueError(f"--lr {c.lr}: give a number; `--lr find` runs the lr range test before one `train` run")
        c.weight_decay = d.weight_decay if c.weight_decay is None else c.weight_decay
        c.scheduler = c.scheduler or d.scheduler
        if c.train_size is None:  # small images (28/32 px) train at native size
            c.train_size = (max(8, int(round(c.img_size * d.train_scale / 8)) * 8)  # fixed-size nets: timm's flag
                            if d.train_scale != 1 and not is_small(c.img_size)
                            and not spec.extra.get("fixed_input_size") else c.img_size)
        if not 8 <= c.train_size <= 4 * c.img_size:
            raise ValueError(f"--train-size {c.train_size} is out of range for --img-size {c.img_size}")
        if c.progressive_resize:
            check_progressive(c, spec)
        if c.mode == "scratch" and c.weights == "imagenet":
            raise ValueError("mode scratch trains from random init; --weights imagenet contradicts it "
                             "(use --mode all-layers to fine-tune ImageNet weights)")
        if c.feature_cache is None:
            c.feature_cache = backbone_frozen(c.mode)
        if c.feature_cache and not backbone_frozen(c.mode):
            raise ValueError(f"--feature-cache needs a frozen backbone (mode last-layer), not {c.mode}")
        c.head_warmup = d.head_warmup if c.head_warmup is None else c.head_warmup
        c.patience = d.patience if c.patience is None else c.patience
        c.warmup_patience = d.warmup_patience if c.warmup_patience is None else c.warmup_patience
        c.warmup_head = c.warmup_head or warmup_head_default(c.mode, c.arch)
        if c.ema is None:  # the average starts at the probe only where fine-tuning starts from its head
            c.ema = round(d.ema * c.epochs, 3) if c.head_warmup and c.warmup_head == "keep" else 0.0
        if c.bn_eval_epochs is None:  # running statistics keep the features the kept probe's head was fitted to
            c.bn_eval_epochs = d.bn_eval_epochs if c.head_warmup and c.warmup_head == "keep" else 0
        check_finetuning(c)
        for name in ("head_warmup", "patience", "warmup_patience"):
            if getattr(c, name) < 0:
                raise ValueError(f"{option_flag(name)} {getattr(c, name)}: give 0 (off) or a number of epochs")
        if c.warmup_views < 1:
            raise ValueError(f"--warmup-views {c.warmup_views}: give at least 1")
        if c.warmup_head not in WARMUP_HEADS:
            raise ValueError(f"--warmup-head {c.warmup_head}: choose one of {', '.join(WARMUP_HEADS)}")
        if c.head_warmup and c.mode != "all-layers":
            raise ValueError(f"--head-warmup trains the head on frozen pretrained features before fine-tuning: it "
                             f"belongs to --mode all-layers, not {c.mode} (use --head-warmup 0)")
        if (c.freeze_stages or c.layer_decay != 1.0) and c.mode != "all-layers":
            raise ValueError(f"--freeze-stages and --layer-decay shape how a pretrained backbone is fine-tuned: they "
                             f"belong to --mode all-layers, not {c.mode}")
        if c.freeze_stages < 0:
            raise ValueError(f"--freeze-stages {c.freeze_stages}: give 0 (train every stage) or more")
        if not 0 < c.layer_decay <= 1:
            raise ValueError(f"--layer-decay {c.layer_decay:g}: give a factor above 0 and at most 1 (1: one lr for all, "
                             f"0.7: each stage down gets 0.7x the lr of the one above)")
        if c.aug_views < 1:
            raise ValueError("--aug-views must be at least 1")
        if c.eval_interval < 1 or c.epochs < 1:
            raise ValueError("--epochs and --eval-interval must be at least 1")
        if c.checkpoint_steps < 0:
            raise ValueError("--checkpoint-steps must be 0 (epoch ends only) or a positive number of steps")
        return c


# Options a resumed run may be given again with a new value; everything else comes from the run itself.
RESUMABLE = ("epochs", "device", "workers", "quiet", "resume", "dist_timeout")
# Options that cannot change a result (where files go, how progress is shown, how often it is saved).
NOT_RESULTS = RESUMABLE + ("project", "name", "exist_ok", "output", "cache_dir", "imbalance_warn", "checkpoint_steps")


# Options added after runs were made with them absent: the value that reproduces those runs' results.
LEGACY = {"batch_augment": False,  # before batched augmentation, every sample went through torchvision alone
          "backbone_runtime": "torch",  # before onnxruntime ran the frozen backbone
          "head_warmup": 0, "warmup_views": 2, "patience": 0,  # before the head warm-up and early stopping
          "freeze_stages": 0, "layer_decay": 1.0,  # before partial fine-tuning and discriminative lrs
          "warmup_head": "keep",  # before --warmup-head: fine-tuning continued from the probe's head
          "warmup_patience": 0, "progressive_resize": 0,
          "bn_eval_epochs": 0, "backbone_warmup": 0.0, "head_lr_scale": 1.0,  # before fine-tuning's BN/lr options
          "ema": 0.0}  # before the weights' moving average


def check_finetuning(c: TrainConfig) -> None:
    """--bn-eval-epochs, --backbone-warmup, --head-lr-scale: how a pretrained backbone meets its new head."""
    if c.bn_eval_epochs < -1:
        raise ValueError(f"--bn-eval-epochs {c.bn_eval_epochs}: give 0 (batch statistics from the first step), a "
                         f"number of epochs, or -1 (running statistics throughout)")
    if c.backbone_warmup < 0 or c.head_lr_scale <= 0:
        raise ValueError("--backbone-warmup takes 0 (off) or a number of epochs; --head-lr-scale a factor above 0")
    if c.ema < 0:
        raise ValueError(f"--ema {c.ema:g}: give the average's length in epochs (1: about the last epoch's steps), "
                         f"or 0 (off)")
    if c.ema and backbone_frozen(c.mode):
        raise ValueError("--ema averages the weights of a network whose backbone trains: it belongs to --mode "
                         "all-layers or scratch (last-layer's head on cached features has converged by its end)")
    if c.mode != "all-layers" and (c.bn_eval_epochs or c.backbone_warmup or c.head_lr_scale != 1.0):
        raise ValueError(f"--bn-eval-epochs, --backbone-warmup and --head-lr-scale shape how a pretrained backbone "
                         f"is fine-tuned: they belong to --mode all-layers, not {c.mode}")


def check_progressive(c: TrainConfig, spec) -> None:
    """--progressive-resize changes the crop size of the batched pipeline (pipeline.CachedBatches) per epoch;
    the per-sample pipeline and a frozen backbone's cached features have one size."""
    flag = f"--progressive-resize {c.progressive_resize}"
    if backbone_frozen(c.mode) or c.feature_cache:
        raise ValueError(f"{flag}: last-layer mode trains the head on features computed once at one size; "
                         f"progressive resizing belongs to --mode all-layers or scratch")
    if not 8 <= c.progressive_resize <= c.train_size:
        raise ValueError(f"{flag}: give the first epoch's crop, from 8 up to the training crop ({c.train_size} px, "
                         f"--train-size), or 0 (off)")
    if not c.cache or not c.batch_augment or c.augment == "strong":
        raise ValueError(f"{flag} needs the batched pipeline (the decode cache and --batch-augment, with --augment "
                         f"other than strong): drop --no-cache / --no-batch-augment / --augment strong, or the option")
    if spec.extra.get("fixed_input_size"):
        raise ValueError(f"{flag}: {c.arch} takes one input size only")


def options_hash(cfg: TrainConfig) -> str:
    """A short hash of the resolved options that change results."""
    d = {k: v for k, v in asdict(cfg).items() if k not in NOT_RESULTS}
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def option_flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def config_fields() -> set[str]:
    return {f.name for f in fields(TrainConfig)}
