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
        a = tf_cached(torch.from_numpy(np.array(dec.array[i])).permute(2, 0, 1))
        b = tf_pil(load_rgb(p))
        assert a.shape == b.shape == (3, 40, 40)
        assert (a - b).abs().mean() < 0.03  # same resize-then-centre-crop, up to resampling detail


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
