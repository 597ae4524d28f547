"""Shared fixtures: small synthetic image datasets made on the fly (no downloads, no shared data)."""
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
