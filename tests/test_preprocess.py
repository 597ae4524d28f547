"""The typed preprocessing: frozen, read by attribute, stored as plain data, and old checkpoints' dicts
(missing keys) still read the way those models were trained."""
import dataclasses
import io

import numpy as np
import pytest
import torch
from PIL import Image

from transferlearn.data import Preprocess, eval_transform, numpy_preprocess, preprocess_config, train_transform


def test_plain_data_round_trip_through_a_safe_torch_load():
    pre = preprocess_config(64, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), train_size=48, interpolation="bicubic")
    buf = io.BytesIO()
    torch.save({"preprocess": pre.to_dict()}, buf)
    buf.seek(0)
    back = torch.load(buf, weights_only=True)["preprocess"]
    assert type(back) is dict and Preprocess.of(back) == pre
    assert (pre.img_size, pre.resize, pre.train_size, pre.crop_pct, pre.interpolation) == (64, 73, 48, 0.875, "bicubic")
    assert pre.mean == (0.485, 0.456, 0.406) and back["mean"] == [0.485, 0.456, 0.406]


def test_frozen_and_checked():
    pre = preprocess_config(32, (0.5,) * 3, (0.5,) * 3, channels=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        pre.img_size = 64
    assert pre.channels == 1 and pre.mean == (0.5,) and pre.crop_pct == 1.0 and pre.resize == 32  # small: whole
    with pytest.raises(ValueError, match="--in-channels 2"):
        Preprocess(img_size=32, resize=32, mean=(0.5,), std=(0.5,), channels=2)


def test_old_checkpoint_dict_reads_as_it_was_trained():
    old = {"img_size": 224, "resize": 256, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
           "interpolation": "bilinear", "crop": "center"}  # before channels, crop_pct and train_size
    pre = Preprocess.of(old)
    assert (pre.channels, pre.train_size, pre.crop_pct) == (3, 224, 0.875)
    assert Preprocess.of(pre) is pre


def test_dict_view_for_code_written_against_the_dict():
    pre = preprocess_config(40, (0.5,) * 3, (0.5,) * 3)
    assert pre["resize"] == pre.resize and pre.get("channels", 3) == 3 and dict(pre) == pre.to_dict()
    assert {**pre}["mean"] == [0.5, 0.5, 0.5]


def test_every_reader_takes_the_object_or_the_dict():
    pre = preprocess_config(40, (0.5,) * 3, (0.5,) * 3, train_size=32)
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8))
    for p in (pre, pre.to_dict()):
        assert eval_transform(p)(img).shape == (3, 40, 40)
        assert train_transform(p, "standard")(img).shape == (3, 32, 32)
        assert numpy_preprocess(img, p).shape == (3, 40, 40)
    assert np.allclose(numpy_preprocess(img, pre), eval_transform(pre)(img).numpy(), atol=0.02)


def test_the_package_reads_it_by_attribute_not_by_key(monkeypatch, tmp_path):
    """The dict view is for users' code: the transforms, the numpy path and the training datasets (with
    and without the decode cache) read the typed fields."""
    from types import SimpleNamespace

    from transferlearn.train.config import TrainConfig
    from transferlearn.train.distributed import DistContext
    from transferlearn.train.pipeline import image_datasets

    def no_keys(self, key):
        raise AssertionError(f"Preprocess read by key: pre[{key!r}]")

    monkeypatch.setattr(Preprocess, "__getitem__", no_keys)
    pre = preprocess_config(40, (0.5,) * 3, (0.5,) * 3, train_size=32)
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8))
    assert eval_transform(pre)(img).shape == (3, 40, 40) and numpy_preprocess(img, pre).shape == (3, 40, 40)
    for augment in ("none", "light", "standard", "strong", "pad-crop-flip", "pad-crop"):
        assert train_transform(pre, augment)(img).shape == (3, 32, 32)
    img.save(tmp_path / "a.png")
    splits = SimpleNamespace(train=[(str(tmp_path / "a.png"), 0)], val=[(str(tmp_path / "a.png"), 0)])
    for cache in (False, True):
        cfg = TrainConfig(augment="standard", cache=cache, cache_dir=str(tmp_path / "cache"), workers=0, quiet=True)
        (train, _, _), (val, _, _) = image_datasets(splits, pre, cfg, DistContext())
        assert len(train) == len(val) == 1
