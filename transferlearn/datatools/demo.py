"""The offline demo: a seeded Fashion-MNIST subset as an image folder, then `compare` on it.

Fashion-MNIST comes from Debian's dataset-fashion-mnist when installed (no network needed),
otherwise from torchvision's download. Images are written once as PNGs under the cache folder.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
from PIL import Image

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["T-shirt_top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle_boot"]


def cache_dir() -> Path:
    return Path(os.environ.get("TRANSFERLEARN_CACHE", Path.home() / ".cache" / "transferlearn"))


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_fashion_mnist(source_dir: Path | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{'train': (images, labels), 'test': (...)} as uint8 arrays."""
    d = Path(source_dir) if source_dir else DEBIAN_DIR
    if (d / "train-images-idx3-ubyte.gz").is_file():
        return {s: (_read_idx(d / f"{p}-images-idx3-ubyte.gz"), _read_idx(d / f"{p}-labels-idx1-ubyte.gz"))
                for s, p in (("train", "train"), ("test", "t10k"))}
    from torchvision.datasets import FashionMNIST
    root = cache_dir() / "torchvision"
    try:
        out = {}
        for s in ("train", "test"):
            ds = FashionMNIST(str(root), train=s == "train", download=True)
            out[s] = (ds.data.numpy(), ds.targets.numpy())
        return out
    except Exception as e:
        raise RuntimeError(f"Fashion-MNIST is not installed and could not be downloaded ({e}). "
                           f"On Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist") from e


def make_demo_folder(n_train: int = 2000, n_val: int = 500, seed: int = 0, out: Path | None = None,
                     source_dir: Path | None = None) -> Path:
    """Write a class-balanced seeded subset as train/<class>/*.png and val/<class>/*.png (once)."""
    out = Path(out or cache_dir() / f"fashion-mnist-{n_train}-{n_val}-s{seed}")
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
    from ..train import TrainConfig, compare

    data = make_demo_folder(n_train, n_val)
    print(f"demo data: Fashion-MNIST subset, {n_train} train / {n_val} val images in {data}", flush=True)
    return compare(TrainConfig(data=str(data), arch=arch, epochs=epochs, img_size=img_size, batch_size=64,
                               project=project, name="demo", quiet=quiet))
