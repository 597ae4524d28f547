"""The preprocessing a model was trained with: one typed, frozen `Preprocess`, stored in every
checkpoint (and in exported files) as plain data. No torch here, so the CLI's help and the numpy
inference path read it cheaply.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

SMALL_IMAGE = 32  # --img-size at or below this: native-size images (MNIST 28, CIFAR 32), no border-cutting crop


def is_small(img_size: int) -> bool:
    return int(img_size) <= SMALL_IMAGE


@dataclass(frozen=True)
class Preprocess(Mapping):
    """Eval preprocessing (resize the shorter side to `resize`, centre-crop `img_size`, normalise by
    `mean`/`std` over `channels`) and the training crop `train_size`. Every reader of preprocessing
    takes one of these (`Preprocess.of` accepts the dict form too); `to_dict` is the plain form that
    checkpoints (torch.load weights_only) and ONNX metadata hold. It also reads like that dict
    (`pre["img_size"]`), for users' code written against the dict; the package reads the fields
    (tests/test_preprocess.py checks)."""
    img_size: int
    resize: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str = "bilinear"
    crop_pct: float = 1.0
    train_size: int = 0  # 0: the same as img_size
    channels: int = 3
    crop: str = "center"

    def __post_init__(self):
        if self.channels not in (1, 3):
            raise ValueError(f"--in-channels {self.channels}: use 1 (grayscale) or 3 (colour)")
        if len(self.mean) != len(self.std):
            raise ValueError(f"preprocessing has {len(self.mean)} mean values but {len(self.std)} std values")
        for name, cast in (("img_size", int), ("resize", int), ("channels", int), ("crop_pct", float)):
            object.__setattr__(self, name, cast(getattr(self, name)))
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(x) for x in self.std))
        object.__setattr__(self, "train_size", int(self.train_size or self.img_size))

    @classmethod
    def of(cls, pre: Preprocess | Mapping) -> Preprocess:
        """From a checkpoint's or an export's dict; keys that older checkpoints lack get the values those
        models were trained with (3 channels, train size = img_size, the crop that resize implies)."""
        if isinstance(pre, cls):
            return pre
        img_size = int(pre["img_size"])
        resize = int(pre.get("resize", img_size))
        return cls(img_size=img_size, resize=resize, mean=pre["mean"], std=pre["std"],
                   interpolation=pre.get("interpolation", "bilinear"),
                   crop_pct=pre.get("crop_pct", round(img_size / resize, 6)), train_size=pre.get("train_size") or 0,
                   channels=pre.get("channels", 3), crop=pre.get("crop", "center"))

    def to_dict(self) -> dict:
        """Plain data, in the checkpoint's form: lists, numbers and strings only."""
        return {"img_size": self.img_size, "resize": self.resize, "mean": list(self.mean), "std": list(self.std),
                "interpolation": self.interpolation, "crop": self.crop, "crop_pct": round(self.crop_pct, 6),
                "train_size": self.train_size, "channels": self.channels}

    # the dict view: pre["resize"], pre.get("channels", 3), dict(pre), **pre
    def __getitem__(self, key: str):
        return self.to_dict()[key]

    def __iter__(self):
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(fields(self))


def preprocess_config(img_size: int, mean, std, train_size: int | None = None, channels: int = 3,
                      crop_pct: float | None = None, interpolation: str = "bilinear") -> Preprocess:
    """Everything inference needs to reproduce eval preprocessing; stored in every checkpoint.

    `train_size` is the crop the training augmentation produces; it may be smaller than the eval
    `img_size` (train low, test high: RandomResizedCrop enlarges objects, so a smaller training crop
    matches their apparent size at test time and costs (train/img)^2 of the compute).
    `crop_pct` (eval crop / resize, from the weights' metadata; 224/256 when not given) is 1 for small
    images: a 28 px digit is evaluated whole. With 1 channel, RGB mean/std are averaged (the stem's
    kernels are summed over RGB, so a grey pixel keeps its meaning)."""
    if channels not in (1, 3):
        raise ValueError(f"--in-channels {channels}: use 1 (grayscale) or 3 (colour)")
    mean, std = [float(m) for m in mean], [float(s) for s in std]
    if channels == 1 and len(mean) == 3:
        mean, std = [round(sum(mean) / 3, 6)], [round(sum(std) / 3, 6)]
    crop_pct = 1.0 if is_small(img_size) else (crop_pct or 224 / 256)
    return Preprocess(img_size=int(img_size), resize=int(round(img_size / crop_pct)), mean=mean, std=std,
                      interpolation=interpolation, crop_pct=round(float(crop_pct), 6),
                      train_size=int(train_size or img_size), channels=int(channels))


def channels_of(pre: Preprocess | Mapping) -> int:
    """Input channels of a preprocessing config (3 for checkpoints made before --in-channels)."""
    return Preprocess.of(pre).channels


AUGMENT_PRESETS = ("none", "light", "standard", "strong", "pad-crop-flip", "pad-crop")


def default_augment(img_size: int, channels: int = 3) -> str:
    """standard for large images; at SMALL_IMAGE px or less the pad-and-crop presets, which keep the whole
    image (RandomResizedCrop would zoom into a 32 px image): pad-crop-flip (the CIFAR recipe) for colour,
    pad-crop (smaller padding, no flip) for grey. Grey small images are mostly symbols (digits, letters),
    which a mirror turns into other symbols: LeNet-5 ended 10 epochs on 8,000 MNIST digits at 0.943 with
    pad-crop-flip and 0.9825 with pad-crop, and on Fashion-MNIST (grey clothing, where the flip was neutral)
    at 0.815 and 0.8615 (docs/classic.md). `--augment` overrides it either way."""
    if not is_small(img_size):
        return "standard"
    return "pad-crop" if int(channels) == 1 else "pad-crop-flip"
