"""--balance (weighted loss / sampler), the imbalance warning and --augment presets."""
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from defects import noise_image  # noqa: E402

from transferlearn.data import (AUGMENT_PRESETS, balance_report, balance_setup, class_weights,  # noqa: E402
                                preprocess_config, train_transform)

PRE = preprocess_config(32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def test_class_weights_inverse_to_frequency():
    w = class_weights([30, 10, 0])
    assert w[1] == pytest.approx(3 * w[0]) and w[2] == 0.0
    assert class_weights([5, 5]) == [1.0, 1.0]


def test_weighted_loss_and_sampler_setup():
    samples = [(f"a{i}", 0) for i in range(90)] + [(f"b{i}", 1) for i in range(10)]
    assert balance_setup(samples, [90, 10], "none") == (None, None)
    sampler, w = balance_setup(samples, [90, 10], "weighted-loss")
    assert sampler is None and w[1] / w[0] == pytest.approx(9.0)
    sampler, w = balance_setup(samples, [90, 10], "sampler", seed=3)
    assert w is None and len(sampler) == 100
    drawn = Counter(samples[i][1] for _ in range(20) for i in sampler)
    assert 0.4 < drawn[1] / sum(drawn.values()) < 0.6  # classes drawn about equally often
    again, _ = balance_setup(samples, [90, 10], "sampler", seed=3)
    assert list(again) == list(balance_setup(samples, [90, 10], "sampler", seed=3)[0])  # seeded
    with pytest.raises(ValueError, match="balance"):
        balance_setup(samples, [90, 10], "oversample")


def test_imbalance_warning():
    lines = balance_report(["cat", "dog"], [40, 10], "none", 3.0)
    assert lines[0] == "train images per class: cat 40, dog 10"
    assert len(lines) == 2 and "4.0x" in lines[1] and "--balance" in lines[1]
    assert len(balance_report(["cat", "dog"], [30, 10], "none", 3.0)) == 1  # exactly 3x: no warning


@pytest.mark.parametrize("augment", AUGMENT_PRESETS)
def test_augment_presets(augment):
    t = train_transform(PRE, augment)
    x = t(noise_image(1, (50, 40)))
    assert x.shape == (3, 32, 32)
    names = [type(s).__name__ for s in t.transforms]
    if augment == "strong":
        assert "TrivialAugmentWide" in names and "RandomErasing" in names
    if augment == "none":
        assert "RandomHorizontalFlip" not in names
    with pytest.raises(ValueError):
        train_transform(PRE, "extreme")


def test_train_with_weighted_loss_and_strong_augment_records_them(tmp_path, capsys):
    from transferlearn.trainer import train

    for split, n in (("train", {"big": 8, "small": 2}), ("val", {"big": 2, "small": 2})):
        for c, k in n.items():
            (tmp_path / "d" / split / c).mkdir(parents=True)
            for i in range(k):
                noise_image(hash((split, c, i)) % 1000, (36, 36)).save(tmp_path / "d" / split / c / f"{i}.png")
    summary = train(data=str(tmp_path / "d"), mode="scratch", weights="none", arch="resnet18", img_size=32,
                    batch_size=4, epochs=1, workers=0, quiet=True, project=str(tmp_path / "runs"),
                    balance="weighted-loss", augment="strong")
    out = capsys.readouterr().out
    assert "train images per class: big 8, small 2" in out and "warning: class imbalance" in out
    ck = torch.load(Path(summary["run_dir"]) / "best.pt", weights_only=True)
    assert ck["augment"] == "strong" and ck["args"]["balance"] == "weighted-loss"


def test_sampler_through_make_loader(tmp_path):
    from transferlearn.data import make_loader

    samples = []
    for y, n in enumerate((9, 1)):
        for i in range(n):
            p = tmp_path / f"{y}_{i}.png"
            noise_image(y * 10 + i, (36, 36)).save(p)
            samples.append((str(p), y))
    sampler, _ = balance_setup(samples, [9, 1], "sampler", seed=0)
    loader = make_loader(samples, train_transform(PRE, "light"), 10, shuffle=True, workers=0, sampler=sampler)
    ys = torch.cat([y for _ in range(10) for _, y in loader])
    assert len(ys) == 100 and 30 < int((ys == 1).sum()) < 70


def test_cli_flags_reach_config():
    from transferlearn.cli import build_parser
    from transferlearn.cli.train import config_from_args

    args = build_parser().parse_args(["train", "--data", "x", "--balance", "sampler", "--augment", "light",
                                      "--imbalance-warn", "5"])
    cfg = config_from_args(args)
    assert (cfg.balance, cfg.augment, cfg.imbalance_warn) == ("sampler", "light", 5.0)
