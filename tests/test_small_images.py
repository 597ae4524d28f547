"""The small-image defaults (--img-size 32 or less): grey images train with pad-crop (no flip: a mirrored
digit is another symbol), colour with pad-crop-flip (the CIFAR recipe), large images with standard; and a
user's --augment wins. docs/classic.md has the measurements behind them.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from transferlearn.data import SMALL_IMAGE, default_augment, preprocess_config, train_transform
from transferlearn.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).parent / "transferlearn"


@pytest.mark.parametrize("size,channels,expected", [
    (28, 1, "pad-crop"), (SMALL_IMAGE, 1, "pad-crop"), (SMALL_IMAGE, 3, "pad-crop-flip"), (20, 3, "pad-crop-flip"),
    (SMALL_IMAGE + 1, 1, "standard"), (224, 3, "standard"), (224, 1, "standard")])
def test_default_augment_by_size_and_channels(size, channels, expected):
    assert default_augment(size, channels) == expected


def test_resolved_config_picks_the_small_image_preset_and_keeps_a_given_one():
    grey = TrainConfig(data="x", mode="scratch", arch="lenet", in_channels=1, img_size=28).resolved()
    colour = TrainConfig(data="x", mode="scratch", arch="lenet", img_size=32).resolved()
    assert (grey.augment, grey.train_size) == ("pad-crop", 28)
    assert (colour.augment, colour.train_size) == ("pad-crop-flip", 32)
    given = TrainConfig(data="x", mode="scratch", arch="lenet", in_channels=1, img_size=28,
                        augment="pad-crop-flip").resolved()
    assert given.augment == "pad-crop-flip"  # Fashion-MNIST users may ask for the flip
    assert TrainConfig(data="x", mode="scratch", in_channels=1).resolved().augment == "standard"


def test_train_transform_default_never_mirrors_a_grey_digit():
    """With no preset given, the transform itself follows the same rule: a bar on the left of a grey 28 px
    image stays on the left in every draw (a flip would put it on the right half the time)."""
    pre = preprocess_config(28, (0.5,), (0.5,), channels=1)
    a = np.zeros((28, 28), np.uint8)
    a[:, :6] = 255
    tf = train_transform(pre, None)
    import torch
    torch.manual_seed(0)
    for _ in range(30):
        x = tf(Image.fromarray(a, "L"))
        assert x.shape == (1, 28, 28) and x[0, :, :14].mean() > x[0, :, 14:].mean()


def test_train_help_states_the_small_image_defaults():
    r = tl("train", "--help")
    text = " ".join(r.stdout.split())
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"at --img-size {SMALL_IMAGE} or less pad-crop for --in-channels 1" in text.replace("- ", "-")
    assert "pad-crop-flip for colour" in text


def _digits(root: Path) -> Path:
    """Two classes of grey 28 px 'digits' (a bar on the left vs on the right), 12 train / 4 val each: a
    mirror turns one class into the other."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("val", 4)):
        for name, cols in (("左", slice(4, 10)), ("right", slice(18, 24))):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                a = rng.integers(0, 30, (28, 28)).astype(np.uint8)
                a[4:24, cols] = 230
                Image.fromarray(a, "L").save(root / split / name / f"{i}.png")
    return root


def tl(*args) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", PYTHONIOENCODING="utf-8")
    return subprocess.run([str(SCRIPT), *map(str, args)], capture_output=True, text=True, env=env, timeout=300)


def test_cli_trains_grey_digits_without_flipping(tmp_path):
    data = _digits(tmp_path / "digits")
    r = tl("train", "--data", data, "--arch", "lenet", "--in-channels", "1", "--img-size", "28", "--mode", "scratch",
           "--epochs", "1", "--batch-size", "8", "--workers", "0", "--project", tmp_path / "runs", "--name", "d")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "augment pad-crop" in r.stdout and "pad-crop-flip" not in r.stdout
    args = yaml.safe_load((tmp_path / "runs" / "d" / "args.yaml").read_text(encoding="utf-8"))
    assert args["augment"] == "pad-crop" and args["in_channels"] == 1 and args["img_size"] == 28
    assert (tmp_path / "runs" / "d" / "best.pt").is_file()


def test_cli_small_images_bad_input(tmp_path):
    r = tl("train", "--data", tmp_path / "nowhere", "--arch", "lenet", "--in-channels", "1", "--img-size", "28",
           "--mode", "scratch", "--epochs", "1", "--workers", "0", "--project", tmp_path / "runs")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "nowhere" in errors[0], r.stderr[-2000:]
