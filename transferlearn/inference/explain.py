"""Class activation maps (Grad-CAM and friends, via pytorch-grad-cam) for a trained TransferNet.

`Explainer(model, classes, preprocess).explain(image)` returns the CAM for the predicted class (or
a chosen one) over the exact crop the model sees, and `overlay()` blends it on that crop.
The target layer is found generically: the last module of `model.backbone` that outputs a spatial
(N, C, H, W) feature map, i.e. the last conv block before global pooling (per-arch hints first).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..data import Preprocess, crop_for_display, load_rgb, to_rgb

METHODS = ("gradcam", "gradcam++", "scorecam", "eigencam")

# arch -> dotted module path under the TransferNet; checked first, generic search otherwise
TARGET_LAYER_HINTS = {
    "resnet18": "backbone.layer4", "resnet34": "backbone.layer4", "resnet50": "backbone.layer4",
    "mobilenet_v2": "backbone.features", "efficientnet_lite0": "backbone.bn2",
}


def _cam_class(method: str):
    from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, ScoreCAM
    table = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "scorecam": ScoreCAM, "eigencam": EigenCAM}
    if method not in table:
        raise ValueError(f"unknown CAM method {method!r}; choose one of: {', '.join(METHODS)}")
    return table[method]


def find_target_layer(model: nn.Module, img_size: int = 224, arch: str | None = None,
                      channels: int = 3) -> tuple[str, nn.Module]:
    """(name, module): the last backbone module with a spatial 4-D output, found by tracing one forward pass."""
    modules = dict(model.named_modules())
    if arch in TARGET_LAYER_HINTS and TARGET_LAYER_HINTS[arch] in modules:
        name = TARGET_LAYER_HINTS[arch]
        return name, modules[name]
    root = getattr(model, "backbone", model)
    prefix = "backbone." if root is not model else ""
    seen: list[tuple[str, tuple]] = []
    hooks = []
    for name, m in root.named_modules():
        if m is root or isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d, nn.MaxPool2d)):
            continue

        def hook(mod, inp, out, name=name):
            if isinstance(out, torch.Tensor) and out.ndim == 4:
                seen.append((name, tuple(out.shape)))
        hooks.append(m.register_forward_hook(hook))
    try:
        with torch.no_grad():
            root(torch.zeros(1, channels, img_size, img_size, device=next(model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
    spatial = [n for n, s in seen if s[2] > 1 or s[3] > 1] or [n for n, _ in seen]
    if not spatial:
        raise ValueError("cannot find a convolutional layer with a spatial output in model.backbone for CAM")
    name = spatial[-1]  # forward hooks fire on completion: the last one is the outermost last block
    return prefix + name, dict(root.named_modules())[name]


@dataclass
class Explanation:
    cam: np.ndarray  # (img_size, img_size) in [0, 1]
    image: Image.Image  # the RGB crop the model sees
    class_name: str
    class_index: int
    confidence: float  # softmax probability of that class
    predicted: str
    method: str
    layer: str

    def overlay(self, alpha: float = 0.45) -> Image.Image:
        return overlay_cam(self.image, self.cam, alpha)


def overlay_cam(image: Image.Image, cam: np.ndarray, alpha: float = 0.45, cmap: str = "jet") -> Image.Image:
    """Blend a [0, 1] heat-map (resized to the image if needed) over an RGB image."""
    from matplotlib import colormaps
    if cam.shape != (image.height, image.width):
        cam = np.asarray(Image.fromarray((cam * 255).astype(np.uint8)).resize(image.size, Image.BILINEAR),
                         dtype=np.float32) / 255.0
    heat = colormaps[cmap](np.clip(cam, 0, 1))[..., :3]
    base = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    out = (1 - alpha) * base + alpha * heat
    return Image.fromarray(np.clip(out * 255, 0, 255).astype(np.uint8))


class Explainer:
    """CAM heat-maps for a TransferNet. Not thread-safe (hooks on the shared model): lock around it."""

    def __init__(self, model: nn.Module, classes: Sequence[str], preprocess: Preprocess | Mapping, method: str = "gradcam",
                 arch: str | None = None, target_layer: str | None = None):
        from ..data import eval_transform
        self.model = model.eval()
        self.classes = list(classes)
        self.preprocess = preprocess = Preprocess.of(preprocess)
        self.transform = eval_transform(preprocess)
        self.method = method
        if target_layer:
            modules = dict(model.named_modules())
            if target_layer not in modules:
                raise ValueError(f"no module {target_layer!r} in the model")
            self.layer_name, self.layer = target_layer, modules[target_layer]
        else:
            self.layer_name, self.layer = find_target_layer(model, preprocess.img_size, arch,
                                                            preprocess.channels)
        self._cams: dict = {}

    @classmethod
    def load(cls, checkpoint: str | os.PathLike, method: str = "gradcam", device: str = "cpu",
             target_layer: str | None = None) -> "Explainer":
        from ..models import load_model
        model, ckpt = load_model(checkpoint, device=device)
        return cls(model, ckpt["classes"], ckpt["preprocess"], method, ckpt["arch"], target_layer)

    def _cam(self, method: str):
        if method not in self._cams:
            cam = _cam_class(method)(model=self.model, target_layers=[self.layer])
            if method == "scorecam":
                cam.batch_size = 64
            self._cams[method] = cam
        return self._cams[method]

    def class_index(self, target_class: str | int | None) -> int | None:
        if target_class is None or isinstance(target_class, int):
            return target_class
        if target_class in self.classes:
            return self.classes.index(target_class)
        if target_class.isdigit() and int(target_class) < len(self.classes):
            return int(target_class)
        raise ValueError(f"--target-class {target_class!r} is not a class of this model "
                         f"({', '.join(self.classes)})")

    def explain(self, image: Image.Image | str | os.PathLike, target_class: str | int | None = None,
                method: str | None = None) -> Explanation:
        """CAM for `target_class` (name or index; default: the predicted class)."""
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
        method = method or self.method
        img = load_rgb(image) if isinstance(image, (str, os.PathLike)) else to_rgb(image)
        device = next(self.model.parameters()).device
        x = self.transform(img).unsqueeze(0).to(device)
        with torch.no_grad():
            probs = torch.softmax(self.model(x).float(), dim=1)[0].cpu().numpy()
        pred = int(probs.argmax())
        idx = self.class_index(target_class)
        idx = pred if idx is None else idx
        grayscale = self._cam(method)(input_tensor=x, targets=[ClassifierOutputTarget(idx)])[0]
        grayscale = np.nan_to_num(grayscale.astype(np.float32))
        return Explanation(cam=grayscale, image=crop_for_display(img, self.preprocess), class_name=self.classes[idx],
                           class_index=idx, confidence=float(probs[idx]), predicted=self.classes[pred],
                           method=method, layer=self.layer_name)


def save_explanation(exp: Explanation, path: str | os.PathLike, title: str | None = None) -> Path:
    """PNG: the crop the model sees, and the CAM overlaid on it, titled with class and confidence."""
    from ..reporting.plots import plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 4.4))
    a.imshow(exp.image)
    a.set_title(title or "input", fontsize=10)
    b.imshow(exp.overlay())
    what = "predicted" if exp.class_name == exp.predicted else f"target (predicted {exp.predicted})"
    b.set_title(f"{exp.method}: {exp.class_name} {exp.confidence:.1%}\n{what}", fontsize=10)
    for ax in (a, b):
        ax.set_axis_off()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight", pad_inches=0.15)
    plt.close(fig)
    return path
