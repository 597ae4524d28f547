"""A stand-in for the lesson's model-zoo resnet50.ckpt, for running the lesson offline.

The lesson downloads MindSpore's model-zoo ResNet50 (trained on CIFAR-10, 10-class `end_point`). That
file, and ImageNet ResNet50 weights, cannot be downloaded here. This script writes a .ckpt with the same
names, shapes and extras (end_point for 10 classes, moments.*, learning_rate, global_step) from a
*randomly initialised* network: torchvision's ResNet50 init (seed 0), built as MindSpore's 'same'-padding
variant, whose BatchNorm statistics are then re-estimated on the training images (one pass, no labels) so
the random features are not badly scaled. Accuracy from these weights says nothing about the lesson's.

    python examples/mindspore/make_standin_ckpt.py --data hymenoptera_data --out resnet50.ckpt
"""
from __future__ import annotations

import argparse

import torch
import torchvision

from transferlearn.data import eval_transform, list_images, load_rgb
from transferlearn.models.mindspore import apply_variant, write_ckpt
from transferlearn.models.mindspore.convert import to_mindspore


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="dataset folder with train/")
    ap.add_argument("--out", default="resnet50.ckpt")
    ap.add_argument("--images", type=int, default=128, help="training images used to re-estimate BatchNorm stats")
    a = ap.parse_args()
    torch.manual_seed(0)
    net = apply_variant(torchvision.models.resnet50(num_classes=10), "mindspore-same")
    tf = eval_transform({"img_size": 224, "resize": 256, "mean": [0.485, 0.456, 0.406],
                         "std": [0.229, 0.224, 0.225], "interpolation": "bilinear"})
    paths = list_images(f"{a.data}/train")[:: max(1, len(list_images(f"{a.data}/train")) // a.images)][: a.images]
    x = torch.stack([tf(load_rgb(p)) for p in paths])
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches below
    net.train()
    with torch.no_grad():
        for i in range(0, len(x), 32):
            net(x[i:i + 32])
    tensors, _ = to_mindspore(net.state_dict(), "mindspore-same", "modelzoo")
    tensors.update({"moments." + k: torch.zeros_like(v) for k, v in list(tensors.items())
                    if k.endswith((".weight", ".bias", ".gamma", ".beta"))})
    tensors.update({"learning_rate": torch.tensor(0.1), "global_step": torch.tensor([0], dtype=torch.int32)})
    write_ckpt(tensors, a.out)
    print(f"wrote {a.out}: {len(tensors)} entries (random-init ResNet50, BatchNorm stats from {len(x)} images)")


if __name__ == "__main__":
    main()
