"""The three ways to train, defined here and nowhere else.

- last-layer: ImageNet backbone frozen (no gradients, BatchNorm/Dropout in eval mode so running
  statistics never move); only the new head is given to the optimiser.
- all-layers: ImageNet backbone and new head, everything trained (fine-tuning).
- scratch: no pretrained weights, random init (`--init`), everything trained.

Per-mode defaults are what a practitioner would pick for a small dataset: a frozen backbone
tolerates a high learning rate on the head, fine-tuning needs a small one so the pretrained
features are not destroyed, and from scratch needs a larger one plus more regularisation.

Where the backbone trains, it trains on smaller crops than it is evaluated on (160 px for 224;
"train low, test high", Touvron et al. 2019, FixRes; torchvision's recipes use 176): RandomResizedCrop
enlarges objects, so a smaller training crop matches their apparent size at test time, and each
step costs about half the compute. On hymenoptera (lite0, 25 epochs, two seeds) 160 px was both
faster and at least as accurate as 176 and 224 px (docs/speed.md).

All-layers first fits the new head on the frozen backbone's features (25 epochs, seconds: a linear probe, the
run's epoch 0 and a candidate for best.pt), then fine-tunes every layer from the head's initial weights, and
gives up when fine-tuning stalls for 2 epochs while still below the probe (train/warmup.py, stopping.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # no torch import: the CLI's help reads MODES and DEFAULTS
    from torch import nn

MODES = ("last-layer", "all-layers", "scratch")


@dataclass(frozen=True)
class ModeDefaults:
    weights: str
    optimizer: str
    lr: float
    weight_decay: float
    scheduler: str
    epochs: int = 10
    train_scale: float = 1.0  # training crop = round(img_size * train_scale), to a multiple of 8
    head_warmup: int = 0  # epochs of head-only training on frozen features before the backbone trains (train/warmup.py)
    patience: int = 0  # stop after this many evaluations without a better val accuracy (0: never)
    warmup_patience: int = 0  # stop fine-tuning that stalls this many evaluations below the probe (train/stopping.py)
    bn_eval_epochs: int = 0  # fine-tuning epochs with BatchNorm on running statistics (-1: all), from a kept probe
    warmup_head: str = "reset"  # fine-tuning starts from the probe's head (keep) or the initial one (reset)
    ema: float = 0.0  # from a kept probe: a moving average of the weights over this share of --epochs (train/ema.py)


DEFAULTS = {
    "last-layer": ModeDefaults(weights="imagenet", optimizer="adamw", lr=1e-3, weight_decay=1e-4, scheduler="cosine"),
    "all-layers": ModeDefaults(weights="imagenet", optimizer="adamw", lr=3e-4, weight_decay=1e-4, scheduler="cosine",
                               train_scale=160 / 224, head_warmup=25, warmup_patience=2,
                               warmup_head="keep", bn_eval_epochs=-1, ema=0.1),  # PROBE_HEAD_ARCHS only: see there
    "scratch": ModeDefaults(weights="none", optimizer="adamw", lr=1e-3, weight_decay=5e-4, scheduler="cosine",
                            train_scale=160 / 224),
}


# Where all-layers fine-tunes from the probe's head with BatchNorm on its running statistics by default: measured
# better on EfficientNet-Lite0 (4 datasets x 2 seeds), while on MobileNetV2 the same options broke fine-tuning
# (hymenoptera: val 0.54 after its first epoch, from a probe of 0.95). Elsewhere it is not measured, so other
# architectures fine-tune from a fresh head with batch statistics, as before (docs/finetune.md). From a kept head the
# validated and saved weights are a moving average over a tenth of the run (--ema 1 at 10 epochs), which starts at the
# probe: it took most of the fall below the probe out of fine-tuning's first epochs (docs/finetune.md, "The moving
# average"). A tenth, not a fixed epoch: on the 5-epoch demo an average over 1 epoch lagged the climbing weights.
PROBE_HEAD_ARCHS = ("efficientnet_lite0",)


def warmup_head_default(mode: str, arch: str) -> str:
    """--warmup-head's default: the mode's where PROBE_HEAD_ARCHS says it is measured, else reset."""
    return DEFAULTS[mode].warmup_head if arch in PROBE_HEAD_ARCHS else "reset"


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}")
    return mode


def backbone_frozen(mode: str) -> bool:
    return check_mode(mode) == "last-layer"


def apply_mode(model: nn.Module, mode: str, freeze_stages: int = 0) -> list[nn.Parameter]:
    """Set requires_grad for `mode` and return the parameters the optimiser should see. `freeze_stages` K
    (all-layers): the backbone's first K stages (TransferNet.stages) stay as last-layer mode keeps the whole
    backbone, so the backward pass stops at stage K."""
    frozen = backbone_frozen(mode)
    for p in model.backbone.parameters():
        p.requires_grad_(not frozen)
    if freeze_stages and not frozen:
        for group in model.stages()[:freeze_stages]:
            for p in group:
                p.requires_grad_(False)
    for p in model.head.parameters():
        p.requires_grad_(True)
    return [p for p in model.parameters() if p.requires_grad]


def param_groups(model: nn.Module, mode: str, lr: float, freeze_stages: int = 0, layer_decay: float = 1.0,
                 head_lr_scale: float = 1.0, split: bool = False) -> list:
    """The optimiser's parameter groups; the head's is always the last. `layer_decay` d < 1 (discriminative
    learning rates; ULMFiT, BEiT's layer-wise decay as in timm): the head trains at `lr`, the backbone's last
    stage at lr * d, the one before at lr * d^2 ..., so the early, most general features move least.
    `head_lr_scale` s: the head at lr * s. `split`: backbone and head in groups of their own even at one lr
    (a backbone lr warm-up scales the backbone's groups only); otherwise one group, as older checkpoints hold."""
    params = apply_mode(model, mode, freeze_stages)
    if backbone_frozen(mode) or (layer_decay == 1.0 and head_lr_scale == 1.0 and not split):
        return [{"params": params}]
    head = list(model.head.parameters())
    if layer_decay == 1.0:
        heads = {id(p) for p in head}
        groups = [{"params": [p for p in params if id(p) not in heads], "lr": lr}]
    else:
        st = model.stages()
        groups = [{"params": [p for p in g if p.requires_grad], "lr": lr * layer_decay ** (len(st) - i)}
                  for i, g in enumerate(st)]
    groups.append({"params": head, "lr": lr * head_lr_scale})
    return [g for g in groups if g["params"]]


def set_train(model: nn.Module, mode: str, freeze_stages: int = 0, bn_eval: bool = False) -> None:
    """model.train() for the training phase, except that a frozen backbone (or its frozen first stages) stays
    in eval mode: its BatchNorm statistics and dropout stay as they were. `bn_eval`: the backbone's BatchNorm
    layers also normalise with their running statistics and leave them as they are (their weights still
    train), so fine-tuning sees the features the head warm-up's probe was fitted to (train/warmup.py)."""
    model.train()
    if backbone_frozen(mode):
        model.backbone.eval()
        return
    if freeze_stages:
        for m in model.stage_modules(freeze_stages):
            m.eval()
    if bn_eval:
        from torch import nn as tnn  # torch only when training: the CLI's help reads this module
        norms = (tnn.BatchNorm1d, tnn.BatchNorm2d, tnn.BatchNorm3d, tnn.SyncBatchNorm)  # timm's BatchNormAct2d too
        for m in model.backbone.modules():
            if isinstance(m, norms):
                m.eval()
