"""The offline demo: a seeded Fashion-MNIST subset as an image folder, then `compare` on it.

Fashion-MNIST's files are found as `transferlearn data get fashion-mnist` finds them (Debian's
dataset-fashion-mnist package when installed, so no network is needed; else the download cache;
else a checked download) and read with the same idx reader; only the subset is written, as PNGs,
once, under the cache folder.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..data import default_cache_root
from .get import fetch, read_idx
from .sources import dataset_spec

FASHION = dataset_spec("fashion-mnist")
CLASSES = FASHION.classes


def load_fashion_mnist(source_dir: Path | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{'train': (images, labels), 'test': (...)} as uint8 arrays. `source_dir`: a folder holding the
    four idx.gz files (as `data get --from`), read without checksums: read_idx checks their structure."""
    files, _ = fetch(FASHION, default_cache_root() / "datasets", from_path=source_dir,
                     no_verify=source_dir is not None, progress=True, log=lambda msg: None)
    path = {f.name: f for f in files}
    return {s: (read_idx(path[f"{p}-images-idx3-ubyte.gz"]), read_idx(path[f"{p}-labels-idx1-ubyte.gz"]))
            for s, p in (("train", "train"), ("test", "t10k"))}


def make_demo_folder(n_train: int = 2000, n_val: int = 500, seed: int = 0, out: Path | None = None,
                     source_dir: Path | None = None) -> Path:
    """Write a class-balanced seeded subset as train/<class>/*.png and val/<class>/*.png (once)."""
    out = Path(out or default_cache_root() / f"fashion-mnist-{n_train}-{n_val}-s{seed}")
    if (out / ".complete").is_file():
        return out
    data = load_fashion_mnist(source_dir)
    rng = np.random.default_rng(seed)
    for split, src, n in (("train", "train", n_train), ("val", "test", n_val)):
        x, y = data[src]
        per = n // len(CLASSES)
        for c, name in enumerate(CLASSES):
            idx = rng.permutation(np.flatnonzero(y == c))[:per]
            d = out / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in idx:
                Image.fromarray(x[i], "L").save(d / f"{i:05d}.png")
    (out / ".complete").write_text("ok\n")
    return out


def run_demo(epochs: int = 5, n_train: int = 2000, n_val: int = 500, img_size: int = 64,
             arch: str = "efficientnet_lite0", project: str = "runs", quiet: bool = False) -> dict:
    from ..train import TrainConfig
    from ..train.compare import compare

    data = make_demo_folder(n_train, n_val)
    print(f"demo data: Fashion-MNIST subset, {n_train} train / {n_val} val images in {data}", flush=True)
    return compare(TrainConfig(data=str(data), arch=arch, epochs=epochs, img_size=img_size, batch_size=64,
                               project=project, name="demo", quiet=quiet))
