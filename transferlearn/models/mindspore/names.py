"""Parameter names: MindSpore model zoo / mindcv ResNets <-> torchvision's (ours).

    MindSpore                                  torchvision
    *.gamma / *.beta                           *.weight / *.bias                 (BatchNorm)
    *.moving_mean / *.moving_variance          *.running_mean / *.running_var
    (none)                                     *.num_batches_tracked             (dropped when writing)
    layerN.i.down_sample_layer.* (model zoo)   layerN.i.downsample.*
    layerN.i.down_sample.*       (mindcv)      layerN.i.downsample.*
    layerN.i.bn1d / bn2d (model zoo 18/34)     layerN.i.bn1 / bn2
    end_point.* (model zoo), classifier.* (mindcv)   fc.*

Optimiser state and bookkeeping (moments.*, learning_rate, global_step, ...) is not part of the
network: it is dropped and reported. Anything else that does not map is an error listing it.
"""
from __future__ import annotations

import re

import torch

BN_MS_TO_TV = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
BN_TV_TO_MS = {v: k for k, v in BN_MS_TO_TV.items()}
HEADS = {"modelzoo": "end_point", "mindcv": "classifier"}
DOWNSAMPLE = {"modelzoo": "down_sample_layer", "mindcv": "down_sample"}

# optimiser slots (Momentum, Adam/AdamWeightDecay, Adagrad, RMSProp, LAMB...) and training bookkeeping
OPTIMIZER_PREFIXES = ("moments.", "moment1.", "moment2.", "adam_m.", "adam_v.", "accum.", "mean_grad.",
                      "mean_square.", "vhat.", "global_step.")
BOOKKEEPING = {"global_step", "learning_rate", "momentum", "epoch_num", "step_num", "cur_step_num",
               "cur_epoch_num", "loss_scale", "scale_sense", "current_iterator_step",
               "last_overflow_iterator_step", "beta1_power", "beta2_power", "weight_decay", "total_steps"}


def is_bookkeeping(name: str, value) -> bool:
    return isinstance(value, str) or name in BOOKKEEPING or name.startswith(OPTIMIZER_PREFIXES)


def detect_style(names) -> str:
    """'modelzoo' or 'mindcv', from names only one of them uses."""
    names = list(names)
    if any("down_sample_layer." in n or n.startswith("end_point.") or re.search(r"\.bn[12]d\.", n) for n in names):
        return "modelzoo"
    if any(".down_sample." in n or n.startswith("classifier.") for n in names):
        return "mindcv"
    raise ValueError("neither a MindSpore model-zoo ResNet (down_sample_layer, end_point) nor a mindcv ResNet "
                     "(down_sample, classifier): no name says which")


def ms_to_torch_name(name: str) -> str:
    parts = name.split(".")
    if parts[0] in HEADS.values():
        parts[0] = "fc"
    parts = ["downsample" if p in DOWNSAMPLE.values() else p for p in parts]
    parts = [{"bn1d": "bn1", "bn2d": "bn2"}.get(p, p) for p in parts]
    parts[-1] = BN_MS_TO_TV.get(parts[-1], parts[-1])
    return ".".join(parts)


def ms_to_torch(params: dict) -> tuple[dict, list[str], str]:
    """(torchvision-named state_dict, dropped bookkeeping names, style) from a read .ckpt."""
    dropped = [k for k, v in params.items() if is_bookkeeping(k, v)]
    net = {k: v for k, v in params.items() if k not in dropped}
    style = detect_style(net)
    sd = {}
    for k, v in net.items():
        new = ms_to_torch_name(k)
        if new in sd:
            raise ValueError(f"two entries map to {new!r} (one is {k!r})")
        sd[new] = v
    return sd, dropped, style


def torch_to_ms(sd: dict, style: str, basic_block_names: bool = False) -> dict:
    """MindSpore-named dict from a torchvision-named state_dict; num_batches_tracked dropped.

    basic_block_names: the model zoo's ResNet18/34 call the blocks' BatchNorms bn1d/bn2d."""
    if style not in HEADS:
        raise ValueError(f"unknown MindSpore naming {style!r}; choose modelzoo or mindcv")
    bn = {k[: -len(".running_mean")] for k in sd if k.endswith(".running_mean")}
    out = {}
    for k, v in sd.items():
        if k.endswith(".num_batches_tracked"):
            continue
        prefix, _, leaf = k.rpartition(".")
        parts = prefix.split(".") if prefix else []
        if prefix in bn:
            leaf = BN_TV_TO_MS.get(leaf, leaf)
        if parts and parts[0] == "fc":
            parts[0] = HEADS[style]
        parts = [DOWNSAMPLE[style] if p == "downsample" else p for p in parts]
        if basic_block_names and style == "modelzoo" and len(parts) == 3 and parts[0].startswith("layer"):
            parts[2] = {"bn1": "bn1d", "bn2": "bn2d"}.get(parts[2], parts[2])
        out[".".join(parts + [leaf])] = v.detach().cpu() if isinstance(v, torch.Tensor) else v
    return out
