"""How much a trained model's accuracy on its own training images depends on BatchNorm's mode: eval (running
statistics, as the head warm-up's frozen features are computed) against train (batch statistics, as every
fine-tuning step runs), for eval-style and training-style crops. A large gap says a head trained on frozen
features meets different features at fine-tuning's first step (docs/recipe.md, "Why the warm-up fails on
Fashion-MNIST").

    python bench/bn_shift.py runs/NAME/best.pt DATA/train --batches 30
"""
from __future__ import annotations

import argparse

import torch
import torchvision.transforms as T
from torchvision.datasets import ImageFolder

from transferlearn import load_model


def accuracy(model, folder: str, tf, bn_train: bool, batches: int, channels: int) -> float:
    grey = [T.Grayscale(1)] if channels == 1 else []  # ImageFolder decodes to RGB
    ds = ImageFolder(folder, transform=T.Compose([*grey, tf]))
    dl = torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    if bn_train:
        model.backbone.train()
    correct = n = 0
    with torch.no_grad():
        for i, (x, y) in enumerate(dl):
            correct += (model(x).argmax(1) == y).sum().item()
            n += len(y)
            if i + 1 == batches:
                break
    model.load_state_dict(saved)  # batch-statistics passes moved the running statistics: put them back
    return correct / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("train_folder")
    ap.add_argument("--batches", type=int, default=30)
    a = ap.parse_args()
    torch.manual_seed(0)
    model, ck = load_model(a.checkpoint)
    pre = ck["preprocess"]
    norm = T.Normalize(pre["mean"], pre["std"])
    sizes = {pre["img_size"], pre.get("train_size", pre["img_size"])}
    for size in sorted(sizes, reverse=True):
        for kind, tf in (("centre crop", T.Compose([T.Resize(int(size / pre.get("crop_pct", 0.875))),
                                                    T.CenterCrop(size), T.ToTensor(), norm])),
                         ("RandomResizedCrop", T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(),
                                                          T.ToTensor(), norm]))):
            ev = accuracy(model, a.train_folder, tf, False, a.batches, pre.get("channels", 3))
            tr = accuracy(model, a.train_folder, tf, True, a.batches, pre.get("channels", 3))
            print(f"{kind:>18} {size:>4} px: train acc with BN running statistics {ev:.3f}, with batch statistics "
                  f"{tr:.3f}", flush=True)


if __name__ == "__main__":
    main()
