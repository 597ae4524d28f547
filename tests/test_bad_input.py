"""Bad input found by trying the tool as a new user: a decompression bomb in the training data, and a
checkpoint that carries pickled code. Each is refused by name in one line; nothing crashes."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import FAST, make_dataset


def bomb(path: Path, side=20000):
    """A tiny PNG (a few hundred KB) that decodes to side x side pixels."""
    Image.new("L", (side, side), 0).save(path, optimize=True)


@pytest.mark.parametrize("cache", [True, False], ids=["decode-cache", "no-cache"])
def test_decompression_bomb_is_skipped_by_name(tmp_path, capfd, cache):
    from transferlearn.train import train
    data = make_dataset(tmp_path / "d", n_train=4, n_val=2)
    b = data / "train" / "香蕉" / "bomb.png"
    bomb(b)
    assert b.stat().st_size < 1_000_000
    s = train(data=str(data), epochs=1, project=str(tmp_path / "r"), cache=cache, **FAST)
    err = capfd.readouterr().err
    assert f"skipping unreadable image {b}" in err and "20000x20000 pixels" in err and "decompression bomb" in err
    assert s["best_val_acc"] >= 0


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


@pytest.fixture
def evil_ckpt(tmp_path):
    p = tmp_path / "evil.pt"
    torch.save({"format": "transferlearn-checkpoint/1", "model": {}, "x": Evil()}, p)
    return p


def run(*args):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    return subprocess.run([sys.executable, "-m", "transferlearn", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_pickled_code_refused_in_one_line(evil_ckpt, tmp_path, tiny_data):
    img = next((tiny_data / "val").rglob("*.png"))
    for args in (["predict", str(evil_ckpt), str(img)], ["eval", str(evil_ckpt), "--data", str(tiny_data)],
                 ["export", str(evil_ckpt), "--format", "onnx"],
                 ["train", "--data", str(tiny_data), "--weights", str(evil_ckpt), "--arch", "mobilenet_v2",
                  "--epochs", "1", "--project", str(tmp_path / "r")]):
        r = run(*args)
        assert r.returncode == 2, (args, r.stderr[-2000:])
        assert "Traceback" not in r.stderr, (args, r.stderr[-2000:])
        assert f"{evil_ckpt} holds pickled Python objects (code)" in r.stderr, (args, r.stderr[-2000:])
