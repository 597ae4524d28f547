"""The MindSpore ResNet variants, as changes to a torchvision-structured ResNet.

A network imported from a MindSpore checkpoint must compute what MindSpore computes. Where the
MindSpore networks differ from torchvision's (same parameters, same names once mapped):

- "mindspore-same" (model zoo ResNet50/101/152, `ResidualBlock`): every convolution and the max-pool
  use pad_mode='same', TensorFlow's rule: output ceil(in / stride), total padding
  max((out - 1) * stride + k - in, 0), the odd pixel at the bottom/right (the 7x7 stem on 224 px pads
  2 left, 3 right; torchvision pads 3 and 3). BatchNorm eps 1e-4 (torchvision: 1e-5).
- "mindspore-base" (model zoo ResNet18/34, `ResidualBlockBase`, res_base=True): torchvision's padding
  (pad_mode='pad'; the max-pool's zero padding after a ReLU equals torchvision's -inf padding), but the
  blocks' BatchNorms (bn1d, bn2d) use eps 1e-4; the stem's and the shortcut's keep 1e-5.
- "mindcv" (mindcv ResNets): torchvision's convolutions and eps; the max-pool is pad_mode='same'.

The 'same' layers subclass nn.Conv2d / nn.MaxPool2d, so state_dict names and shapes do not change
and everything else (modes, feature cache, CAM, export) treats the network as the plain ResNet.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

VARIANTS = ("mindspore-same", "mindspore-base", "mindcv")


def same_pads(size: int, k: int, s: int, d: int = 1) -> tuple[int, int]:
    """(before, after) padding of TensorFlow/MindSpore pad_mode='same' along one axis."""
    out = math.ceil(size / s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """nn.Conv2d with pad_mode='same' (asymmetric, depends on the input size)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        top, bottom = same_pads(x.shape[-2], kh, sh, dh)
        left, right = same_pads(x.shape[-1], kw, sw, dw)
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return self._conv_forward(x, self.weight, self.bias)


class SameMaxPool2d(nn.MaxPool2d):
    """nn.MaxPool2d with pad_mode='same' (padding never wins: -inf)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = _pair(self.kernel_size), _pair(self.stride)
        top, bottom = same_pads(x.shape[-2], k[0], s[0])
        left, right = same_pads(x.shape[-1], k[1], s[1])
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
        return F.max_pool2d(x, self.kernel_size, self.stride, 0, self.dilation, self.ceil_mode)


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _same_conv(conv: nn.Conv2d) -> SameConv2d:
    new = SameConv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, padding=0,
                     dilation=conv.dilation, groups=conv.groups, bias=conv.bias is not None)
    new.load_state_dict(conv.state_dict())
    return new.to(conv.weight.device, conv.weight.dtype)


def _replace(root: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, attr, new)


def apply_variant(net: nn.Module, variant: str | None) -> nn.Module:
    """Turn a torchvision-structured ResNet (conv1, bn1, maxpool, layer1..4) into `variant`, in place."""
    if not variant:
        return net
    if variant not in VARIANTS:
        raise ValueError(f"unknown MindSpore variant {variant!r}; known: {', '.join(VARIANTS)}")
    if not all(hasattr(net, a) for a in ("conv1", "bn1", "maxpool", "layer1")):
        raise ValueError(f"variant {variant!r} applies to ResNets only, not {type(net).__name__}")
    mp = net.maxpool
    if variant in ("mindspore-same", "mindcv"):
        net.maxpool = SameMaxPool2d(mp.kernel_size, mp.stride, 0, mp.dilation, ceil_mode=mp.ceil_mode)
    for name, m in list(net.named_modules()):
        if variant == "mindspore-same":
            if type(m) is nn.Conv2d:
                _replace(net, name, _same_conv(m))
            elif isinstance(m, nn.BatchNorm2d):
                m.eps = 1e-4
        elif variant == "mindspore-base" and isinstance(m, nn.BatchNorm2d):
            in_block = name.startswith("layer") and "downsample" not in name
            m.eps = 1e-4 if in_block else 1e-5
    return net


# ---------------------------------------------------------------- any-width ResNets (for checkpoints
# whose widths are not torchvision's, e.g. the reduced-width test networks)

class ResNet(nn.Module):
    """torchvision's ResNet layout and names, at any widths (torchvision's class fixes them at 64..512)."""

    def __init__(self, bottleneck: bool, layers: list[int], stem: int, widths: list[int], num_classes: int,
                 in_channels: int = 3):
        super().__init__()
        from torchvision.models.resnet import BasicBlock, Bottleneck
        block = Bottleneck if bottleneck else BasicBlock
        self.conv1 = nn.Conv2d(in_channels, stem, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = stem
        for i, (n, w) in enumerate(zip(layers, widths)):
            stride = 1 if i == 0 else 2
            down = None
            if stride != 1 or cin != w * block.expansion:
                down = nn.Sequential(nn.Conv2d(cin, w * block.expansion, 1, stride, bias=False),
                                     nn.BatchNorm2d(w * block.expansion))
            blocks = [block(cin, w, stride, down)]
            cin = w * block.expansion
            blocks += [block(cin, w) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def infer_config(sd: dict) -> dict:
    """ResNet shape from a torchvision-named state_dict: block kind, blocks per stage, widths."""
    try:
        bottleneck = "layer1.0.conv3.weight" in sd
        layers = [1 + max(int(k.split(".")[1]) for k in sd if k.startswith(f"layer{i}."))
                  for i in range(1, 5)]
        widths = [int(sd[f"layer{i}.0.conv1.weight"].shape[0]) for i in range(1, 5)]
        stem, in_ch = int(sd["conv1.weight"].shape[0]), int(sd["conv1.weight"].shape[1])
    except (KeyError, ValueError) as e:
        raise ValueError(f"not a ResNet state_dict (no {e})") from e
    return {"bottleneck": bottleneck, "layers": layers, "stem": stem, "widths": widths, "in_channels": in_ch,
            "num_classes": int(sd["fc.weight"].shape[0]) if "fc.weight" in sd else None}


TORCHVISION = {  # our archs' shapes, to name what a checkpoint holds
    "resnet18": {"bottleneck": False, "layers": [2, 2, 2, 2], "stem": 64, "widths": [64, 128, 256, 512]},
    "resnet34": {"bottleneck": False, "layers": [3, 4, 6, 3], "stem": 64, "widths": [64, 128, 256, 512]},
    "resnet50": {"bottleneck": True, "layers": [3, 4, 6, 3], "stem": 64, "widths": [64, 128, 256, 512]},
    "resnet101": {"bottleneck": True, "layers": [3, 4, 23, 3], "stem": 64, "widths": [64, 128, 256, 512]},
    "resnet152": {"bottleneck": True, "layers": [3, 8, 36, 3], "stem": 64, "widths": [64, 128, 256, 512]},
}


def describe(cfg: dict) -> str:
    for name, shape in TORCHVISION.items():
        if all(cfg.get(k) == v for k, v in shape.items()):
            return name
    kind = "Bottleneck" if cfg["bottleneck"] else "BasicBlock"
    return f"a ResNet ({kind} x {cfg['layers']}, stem {cfg['stem']}, widths {cfg['widths']})"


def build(cfg: dict, variant: str | None, num_classes: int | None = None) -> nn.Module:
    """A torchvision-structured ResNet of shape `cfg`, as `variant`, random init."""
    net = ResNet(cfg["bottleneck"], cfg["layers"], cfg["stem"], cfg["widths"],
                 num_classes or cfg.get("num_classes") or 1000, cfg.get("in_channels", 3))
    return apply_variant(net, variant)
