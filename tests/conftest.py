"""Shared fixtures: small synthetic image datasets made on the fly (no downloads, no shared data).

`dataset`: a fresh 3-class folder per test. `tiny_checkpoint`: a real (1-epoch, 64 px, mobilenet_v2)
checkpoint on synthetic data, trained once per test session (a few seconds on CPU).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("MPLBACKEND", "Agg")

CLASSES = ["苹果-红", "香蕉", "哈密瓜"]
COLORS = {"苹果-红": (200, 30, 30), "香蕉": (230, 210, 40), "哈密瓜": (60, 160, 60)}


def make_image(color, size=48, seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    a = np.clip(np.array(color, dtype=np.float32) + rng.normal(0, 25, (size, size, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(a, "RGB")


def make_dataset(root: Path, n_train=8, n_val=4, classes=CLASSES, ext=".jpg") -> Path:
    for split, n in (("train", n_train), ("val", n_val)):
        for ci, c in enumerate(classes):
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                make_image(COLORS.get(c, (40 * ci, 100, 200)), seed=hash((split, c, i)) % 2**32).save(d / f"{i}{ext}")
    return root


@pytest.fixture
def dataset(tmp_path) -> Path:
    return make_dataset(tmp_path / "fruit")


# Smallest settings that still run the real code paths; offline ImageNet weights (mobilenet_v2).
FAST = dict(arch="mobilenet_v2", img_size=64, batch_size=8, workers=0, quiet=True)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Decode caches go to a temporary folder, never the user's ~/.cache."""
    os.environ["TRANSFERLEARN_CACHE"] = str(tmp_path_factory.mktemp("tl_cache"))


TINY_CLASSES = ["red", "blue", "苹果"]  # one CJK class name, to exercise fonts and CSV/JSON encoding
TINY_COLORS = {"red": (200, 40, 40), "blue": (40, 60, 200), "苹果": (60, 180, 60)}


def _tiny_image(rng: np.random.Generator, color, size=(80, 72)) -> Image.Image:
    a = np.clip(rng.normal(0, 25, (size[1], size[0], 3)) + np.array(color), 0, 255).astype(np.uint8)
    return Image.fromarray(a)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """DIR/train/<class>/*.jpg (8 each) and DIR/val/<class>/*.png (3 each), solid colours plus noise."""
    root = tmp_path_factory.mktemp("tiny_data")
    rng = np.random.default_rng(0)
    for split, n, ext in (("train", 8, "jpg"), ("val", 3, "png")):
        for c in TINY_CLASSES:
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n):
                _tiny_image(rng, TINY_COLORS[c]).save(d / f"{c}_{i}.{ext}")
    return root


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_data, tmp_path_factory):
    """Path of best.pt from a 1-epoch last-layer mobilenet_v2 run on `tiny_data` (64 px)."""
    from pathlib import Path

    import torch

    from transferlearn.trainer import train
    project = tmp_path_factory.mktemp("tiny_runs")
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # see one_torch_thread
    try:
        summary = train(data=str(tiny_data), arch="mobilenet_v2", weights="imagenet", epochs=1, img_size=64,
                        batch_size=8, workers=0, quiet=True, project=str(project))
    finally:
        torch.set_num_threads(n)
    return Path(summary["run_dir"]) / "best.pt"


@pytest.fixture(scope="session")
def tiny_onnx(tiny_checkpoint, tmp_path_factory):
    """`tiny_checkpoint` exported to ONNX with a dynamic batch axis (verified); returns the ExportReport."""
    pytest.importorskip("onnxruntime")
    import torch

    from transferlearn.export import export
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return export(tiny_checkpoint, "onnx", tmp_path_factory.mktemp("tiny_onnx") / "tiny.onnx",
                      dynamic_batch=True)
    finally:
        torch.set_num_threads(n)


@pytest.fixture()
def one_torch_thread():
    """torch with one intra-op thread for the test: on a shared, busy CPU, OpenMP's spinning threads
    can make a small forward pass 50x slower."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
