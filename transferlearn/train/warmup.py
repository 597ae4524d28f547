"""All-layers mode's head warm-up: a linear probe on frozen features, then fine-tuning (LP-FT; Kumar et al.
2022, "Fine-Tuning can Distort Pretrained Features and Underperform Out-of-Distribution").

A new head starts random, so the first fine-tuning steps send large, meaningless gradients into the
pretrained backbone. Training the head first on the frozen backbone's cached features (the last-layer
machinery: one backbone forward per image and view, then head epochs that cost milliseconds) lets the
fine-tuning start from a sensible classifier, so it needs fewer epochs. The backbone is in eval mode while
its features are computed: its weights and BatchNorm statistics are not touched here. The features are of
full-size crops (as last-layer mode's), not of the smaller fine-tuning crops: a linear head is evaluated at
full size, and on hymenoptera it reached 0.9608 on both seeds that way against 0.93-0.95 on 160 px crops
(docs/recipe.md). The warmed-up model is the run's epoch 0 and a candidate for best.pt (trainer.warmup_row).

Every process computes its share of the features and all are gathered, so each holds all of them; each then
trains the same head on all the features with the same seed (no DDP needed), and DDP's start-up broadcast
makes them bit-equal before fine-tuning begins.

`--warmup-head keep` with `--bn-eval-epochs -1` (all-layers' default for modes.PROBE_HEAD_ARCHS): fine-tuning
continues from the probe's head, and the backbone's BatchNorm keeps the running statistics the probe's features were
computed with (modes.set_train), so the kept head meets the features it was fitted to and fine-tuning builds on the
probe. Without them (LP-FT as published) fine-tuning ran BatchNorm on batch statistics, features far from the
probe's on data unlike ImageNet (Fashion-MNIST), and ended 1-5 points below a fresh head (docs/finetune.md).
`reset` (the default elsewhere: MobileNetV2's fine-tuning broke with keep): the probe is only a candidate, and
fine-tuning starts from the head's initial weights and RNG state, exactly as it would have without the warm-up.
"""
from __future__ import annotations

import time
from dataclasses import replace

from torch import nn

from ..modes import DEFAULTS, apply_mode
from ..runs import now_iso
from .distributed import DistContext
from .features import feature_batches
from .loop import train_one_epoch, validate
from .state import create_state, rng_state, set_rng_state


def warm_up_head(model: nn.Module, train, val, cfg, ctx: DistContext, device, amp: str, num_classes: int,
                 criterion: nn.Module, train_criterion: nn.Module, log=print) -> tuple[dict, dict | None]:
    """Train `model.head` for cfg.head_warmup epochs on the frozen backbone's features. Returns what it did
    (epochs, views, val accuracy of the probe, seconds) and, with --warmup-head reset, the probe's head weights
    (the model then holds its initial head again). The backbone's requires_grad is restored."""
    t0 = time.perf_counter()
    fresh = (head_weights(model), rng_state()) if cfg.warmup_head == "reset" else None
    one = DistContext()  # every process trains the same head on all the (gathered) features
    # the probe's images are full-size crops (trainer.setup), whatever --train-size: so says the features' key, and
    # `tune`'s trials with different training crops share one extraction (features.remembered_features)
    train_b, val_b = feature_batches(model.backbone, train, val, replace(cfg, train_size=cfg.img_size), ctx, device,
                                     amp, num_classes, views=cfg.warmup_views, plan_ctx=one, log=log)
    t_features = time.perf_counter() - t0
    d = DEFAULTS["last-layer"]  # a head on frozen features: the last-layer recipe
    state = create_state(model, "last-layer", d.optimizer, d.lr, cfg.momentum, d.weight_decay, d.scheduler,
                         cfg.head_warmup, cfg.step_size, cfg.gamma, "off", device.type)
    try:
        for epoch in range(1, cfg.head_warmup + 1):
            train_b.set_epoch(epoch)
            row = train_one_epoch(state, train_b, train_criterion, device, "off", forward=model.head, ctx=one,
                                  seed=cfg.seed, desc=f"head warm-up {epoch}/{cfg.head_warmup}", quiet=True)
        val_b.set_epoch(0)
        probe = validate(model, val_b, criterion, device, "off", forward=model.head, ctx=one, quiet=True)
    finally:
        apply_mode(model, cfg.mode, cfg.freeze_stages)
    probe_head = None
    if fresh is not None:  # fine-tuning starts where it would have started without the warm-up
        probe_head = swap_head(model, fresh[0])
        set_rng_state(fresh[1])
    return {"epochs": cfg.head_warmup, "views": cfg.warmup_views, "lr": d.lr, "start": cfg.warmup_head,
            "bn_eval_epochs": cfg.bn_eval_epochs,
            "train_loss": row["train_loss"], "train_acc": row["train_acc"], "val_acc": probe["val_acc"],
            "val_loss": probe["val_loss"], "val_images": probe["val_images"],
            "feature_seconds": round(t_features, 2), "seconds": round(time.perf_counter() - t0, 2),
            "time": now_iso()}, probe_head


def head_weights(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.head.state_dict().items()}


def swap_head(model: nn.Module, weights: dict | None) -> dict | None:
    """Load `weights` into model.head (None: leave it); returns the head's weights before."""
    if weights is None:
        return None
    before = head_weights(model)
    model.head.load_state_dict(weights)
    return before
