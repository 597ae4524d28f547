"""The per-sample/per-batch split of the input pipeline changes no pixel: uint8 crops per sample, then
float conversion and normalisation per batch, equal bit for bit to torchvision's per-sample pipeline."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from transferlearn.data import eval_transform, preprocess_config, train_transform
from transferlearn.train.distributed import DistContext
from transferlearn.train.pipeline import ImageBatches, normalize_batch, split_uint8
from transferlearn.train.sampling import BatchPlan, STREAM_AUG, mix

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


class Images(torch.utils.data.Dataset):
    def __init__(self, tf, n=24):
        rng = np.random.default_rng(0)
        self.imgs = [torch.from_numpy(rng.integers(0, 256, (int(rng.integers(40, 80)), int(rng.integers(40, 80)), 3),
                                                   dtype=np.uint8)).permute(2, 0, 1) for _ in range(n)]
        self.tf = tf

    def __len__(self):
        return len(self.imgs)

    def __getitem__(self, i):
        return self.tf(self.imgs[i]), i % 3


@pytest.mark.parametrize("augment", ["none", "light", "standard"])
def test_split_pipeline_is_bit_identical_to_per_sample(augment):
    pre = preprocess_config(48, MEAN, STD, 40)
    full = train_transform(pre, augment)
    u8, norm = split_uint8(full)
    seed, epoch = 7, 3
    plan = BatchPlan(24, 8, DistContext(), seed=seed)
    plan.set_epoch(epoch)
    got = torch.cat([x for x, _ in ImageBatches(Images(u8), plan, seed, norm=norm)])
    want = []
    ds = Images(full)
    for i in plan.indices().tolist():  # the per-sample pipeline with the same per-sample RNG seeds
        torch.default_generator.manual_seed(mix(seed, STREAM_AUG, epoch, i))
        want.append(ds[i][0])
    assert got.dtype == torch.float32 and torch.equal(got, torch.stack(want))


def test_eval_split_identical_and_strong_stays_per_sample():
    pre = preprocess_config(48, MEAN, STD)
    tf = eval_transform(pre)
    u8, norm = split_uint8(tf)
    x = Images(None).imgs[0]
    assert torch.equal(normalize_batch(u8(x)[None], norm, torch.device("cpu"))[0], tf(x))
    assert u8(x).dtype == torch.uint8
    assert split_uint8(train_transform(pre, "strong")) is None  # RandomErasing works on normalised floats
