"""The preprocessing a model was trained with, as stored in every checkpoint; no torch here, so the
CLI's help and the numpy inference path can read it cheaply."""
from __future__ import annotations

SMALL_IMAGE = 32  # --img-size at or below this: native-size images (MNIST 28, CIFAR 32), no border-cutting crop


def is_small(img_size: int) -> bool:
    return int(img_size) <= SMALL_IMAGE


def preprocess_config(img_size: int, mean, std, train_size: int | None = None, channels: int = 3,
                      crop_pct: float | None = None, interpolation: str = "bilinear") -> dict:
    """Everything inference needs to reproduce eval preprocessing; stored in every checkpoint.

    `train_size` is the crop the training augmentation produces; it may be smaller than the eval
    `img_size` (train low, test high: RandomResizedCrop enlarges objects, so a smaller training crop
    matches their apparent size at test time and costs (train/img)^2 of the compute).
    `crop_pct` (eval crop / resize, from the weights' metadata; 224/256 when not given) is 1 for small
    images: a 28 px digit is evaluated whole. With 1 channel, RGB mean/std are averaged (the stem's
    kernels are summed over RGB, so a grey pixel keeps its meaning). Older checkpoints lack
    channels/crop_pct: readers use `channels_of` (3)."""
    if channels not in (1, 3):
        raise ValueError(f"--in-channels {channels}: use 1 (grayscale) or 3 (colour)")
    mean, std = [float(m) for m in mean], [float(s) for s in std]
    if channels == 1 and len(mean) == 3:
        mean, std = [round(sum(mean) / 3, 6)], [round(sum(std) / 3, 6)]
    crop_pct = 1.0 if is_small(img_size) else (crop_pct or 224 / 256)
    return {"img_size": int(img_size), "resize": int(round(img_size / crop_pct)), "mean": mean, "std": std,
            "interpolation": interpolation, "crop": "center", "crop_pct": round(float(crop_pct), 6),
            "train_size": int(train_size or img_size), "channels": int(channels)}


def channels_of(pre: dict) -> int:
    """Input channels of a preprocessing config (3 for checkpoints made before --in-channels)."""
    return int(pre.get("channels", 3))


AUGMENT_PRESETS = ("none", "light", "standard", "strong", "pad-crop-flip", "pad-crop")


def default_augment(img_size: int) -> str:
    """pad-crop-flip for small images (CIFAR recipes: RandomResizedCrop would zoom into a 32 px image),
    standard otherwise."""
    return "pad-crop-flip" if is_small(img_size) else "standard"
