"""Decode-once cache and the frozen-backbone feature cache."""
import os
import time

import numpy as np
import pytest
import torch

from transferlearn.cache import DecodedImages
from transferlearn.data import eval_transform, find_splits, preprocess_config
from transferlearn.files import load_rgb
from transferlearn.trainer import train

from conftest import FAST, make_dataset


def test_decoded_val_pixels_match_the_eval_pipeline(dataset, tmp_path):
    pre = preprocess_config(40, (0.5,) * 3, (0.5,) * 3)
    paths = [p for p, _ in find_splits(dataset).val]
    dec = DecodedImages.build(paths, pre["resize"], tmp_path, workers=0, quiet=True)
    tf_cached = tf_pil = eval_transform(pre)  # one transform serves PIL images and cached tensors
    for i, p in enumerate(paths):
        a = tf_cached(torch.from_numpy(dec[i]).permute(2, 0, 1))
        b = tf_pil(load_rgb(p))
        assert a.shape == b.shape == (3, 40, 40)
        assert (a - b).abs().mean() < 0.03  # same resize-then-centre-crop, up to resampling detail


def test_decode_cache_keeps_the_whole_frame(tmp_path):
    """Training crops come from the full image, as in the uncached loop, not from a centre square."""
    from PIL import Image
    from torchvision.transforms import v2 as T

    wide = np.zeros((40, 80, 3), np.uint8)
    wide[:, :10] = (255, 0, 0)  # a red left edge that a centre square would cut off
    wide[:, 10:] = (0, 0, 255)
    Image.fromarray(wide).save(tmp_path / "wide.png")
    Image.fromarray(np.full((20, 200, 3), 128, np.uint8)).save(tmp_path / "panorama.png")
    Image.fromarray(np.full((45, 30, 3), 60, np.uint8)).save(tmp_path / "tall.png")  # 2:3 portrait
    dec = DecodedImages.build([str(tmp_path / n) for n in ("wide.png", "panorama.png", "tall.png")], 20,
                              tmp_path / "c", quiet=True)
    assert dec[0].shape == (20, 40, 3) and dec[1].shape == (20, 40, 3) and dec[2].shape == (30, 20, 3)
    assert dec[0][:, 0, 0].min() > 200 and dec[0][:, 0, 2].max() < 60  # left edge still red
    assert dec[0][:, -1, 2].min() > 200
    x = torch.from_numpy(dec[0]).permute(2, 0, 1)
    assert torch.equal(T.Resize(20, antialias=True)(x), x)  # eval's Resize is the identity on cached pixels


def test_decode_cache_is_reused_and_rebuilt_when_a_file_changes(dataset, tmp_path):
    paths = [p for p, _ in find_splits(dataset).train]
    a = DecodedImages.build(paths, 32, tmp_path, quiet=True)
    files = sorted((tmp_path / "decoded").glob("*.u8"))
    b = DecodedImages.build(paths, 32, tmp_path, quiet=True)
    assert sorted((tmp_path / "decoded").glob("*.u8")) == files and a.meta == b.meta  # reused
    st = os.stat(paths[0])
    os.utime(paths[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    DecodedImages.build(paths, 32, tmp_path, quiet=True)
    assert len(list((tmp_path / "decoded").glob("*.u8"))) == 2  # changed file -> new cache
    DecodedImages.build(paths, 48, tmp_path, quiet=True)
    assert len(list((tmp_path / "decoded").glob("*.u8"))) == 3  # other resize -> new cache


def test_feature_cache_matches_uncached_training(tmp_path):
    """Same data, seed and epochs: head trained on cached features vs the full loop, within 1 val image."""
    root = make_dataset(tmp_path / "d", n_train=10, n_val=8)
    common = dict(data=str(root), mode="last-layer", epochs=4, lr=3e-3, project=str(tmp_path / "r"), **FAST)
    cached = train(**common, name="cached", feature_cache=True, aug_views=4)
    plain = train(**common, name="plain", feature_cache=False, cache=False)
    assert cached["feature_cache"] is True and plain["feature_cache"] is False
    one_image = 1 / 24
    assert abs(cached["best_val_acc"] - plain["best_val_acc"]) <= one_image + 1e-9
    assert cached["best_val_acc"] >= 0.9


def test_feature_cache_needs_a_frozen_backbone(dataset, tmp_path):
    with pytest.raises(ValueError, match="frozen backbone"):
        train(data=str(dataset), mode="all-layers", feature_cache=True, epochs=1, project=str(tmp_path), **FAST)
