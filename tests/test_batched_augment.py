"""Batched augmentation from the decode cache (train/augment.py, pipeline.CachedBatches): the same
distribution of crops and flips as torchvision's per-sample transforms, torchvision's pixels where nothing is
resampled, every draw a pure function of (seed, epoch, sample), validation bit-identical to the per-sample
eval pipeline, and DDP shards that add up to the one-process batch."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats
from torchvision import transforms as T1
from torchvision.transforms.v2 import functional as TF

from transferlearn.cache import DecodedImages
from transferlearn.data import eval_transform, preprocess_config, train_transform
from transferlearn.train import augment as A
from transferlearn.train.distributed import DistContext
from transferlearn.train.pipeline import CachedBatches, CachedImages, ImageBatches, canvas, split_uint8
from transferlearn.train.sampling import BatchPlan

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
N = 20000


def test_resized_crop_draws_match_torchvision_in_distribution():
    """Area fraction, log aspect, relative position and flip rate: two-sample KS tests / a binomial interval
    against torchvision's RandomResizedCrop.get_params on the same frame (fixed seeds, so not flaky)."""
    r = A.recipe_of(train_transform(preprocess_config(224, MEAN, STD, 160), "standard"))
    for H, W in ((256, 341), (256, 512), (40, 24)):  # a photo, a 2:1 panorama, a tall small one (fallbacks)
        d = A.draw(r, np.tile([H, W], (N, 1)), seed=3, epoch=2, idx=np.arange(N))
        top, left, h, w = d.box.T
        torch.manual_seed(0)
        ref = np.array([T1.RandomResizedCrop.get_params(torch.empty(3, H, W), r.scale, r.ratio) for _ in range(N)])
        for name, ours, theirs in (
                ("area", h * w / (H * W), ref[:, 2] * ref[:, 3] / (H * W)),
                ("log aspect", np.log(w / h), np.log(ref[:, 3] / ref[:, 2])),
                ("top", (top + 0.5) / (H - h + 1), (ref[:, 0] + 0.5) / (H - ref[:, 2] + 1)),
                ("left", (left + 0.5) / (W - w + 1), (ref[:, 1] + 0.5) / (W - ref[:, 3] + 1))):
            p = stats.ks_2samp(ours, theirs).pvalue
            assert p > 1e-3, f"{H}x{W} {name}: KS p={p:.2g}"
        assert ((top >= 0) & (left >= 0) & (top + h <= H) & (left + w <= W) & (h > 0) & (w > 0)).all()
        rate, sd = d.flip.mean(), math.sqrt(0.25 / N)
        assert abs(rate - 0.5) < 4 * sd


def test_pad_crop_offsets_are_uniform_and_integer_crops_are_torchvisions_pixels():
    pre = preprocess_config(28, [0.5], [0.5], channels=1)
    tf = train_transform(pre, "pad-crop-flip")
    r = A.recipe_of(tf)
    d = A.draw(r, np.tile([28, 28], (N, 1)), seed=0, epoch=1, idx=np.arange(N))
    offsets = d.box[:, 0] + r.pad  # 0 .. 2 pad
    counts = np.bincount(offsets, minlength=2 * r.pad + 1)
    assert len(counts) == 2 * r.pad + 1 and stats.chisquare(counts).pvalue > 1e-3
    # the pixels: torchvision's functional ops with the same offsets and flips, equal bit for bit
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (64, 28, 28, 1), dtype=np.uint8)
    d = A.draw(r, np.tile([28, 28], (64, 1)), seed=5, epoch=2, idx=np.arange(64))
    got = A.gather_crops(torch.from_numpy(imgs), d, 28)
    for b in range(64):
        x = TF.pad(torch.from_numpy(imgs[b]).permute(2, 0, 1), [r.pad] * 4)
        x = TF.crop(x, int(d.box[b, 0]) + r.pad, int(d.box[b, 1]) + r.pad, 28, 28)
        assert torch.equal(got[b], TF.horizontal_flip(x) if d.flip[b] else x)
    assert d.flip.any() and not d.flip.all()


@pytest.mark.parametrize("augment", ["pad-crop-flip", "light", "none"])
def test_one_gather_equals_torchvision_per_crop_on_a_non_square_cache(augment):
    """Same-shape 32x44 images (shorter side = the resize): the centre window, its zero padding and the flips of the one-gather path
    are those of torchvision's functional crop, pad and flip per sample."""
    r = A.recipe_of(train_transform(preprocess_config(32, MEAN, STD), augment))
    imgs = np.random.default_rng(1).integers(0, 256, (48, 32, 44, 3), dtype=np.uint8)
    hw = np.tile([32, 44], (48, 1))
    d = A.draw(r, hw, 2, 5, np.arange(48))
    assert A.is_pure_crop(r, d, hw)
    got = A.gather_crops(torch.from_numpy(imgs), d, 32)
    want = A.flip_batch(A.sample_crops(list(imgs), r, d), d.flip)
    assert torch.equal(got, want)


def test_draws_are_a_pure_function_of_the_sample():
    r = A.recipe_of(train_transform(preprocess_config(224, MEAN, STD, 160), "standard"))
    hw = np.tile([256, 341], (4, 1))
    a = A.draw(r, hw, 1, 3, [5, 9, 2, 7])
    b = A.draw(r, hw[:1], 1, 3, [2])
    assert (a.box[2] == b.box[0]).all() and a.flip[2] == b.flip[0]
    assert (A.draw(r, hw, 1, 3, [5, 9, 2, 7]).box == a.box).all()  # reproducible
    assert not (A.draw(r, hw, 1, 4, [5, 9, 2, 7]).box == a.box).all()  # another epoch, other crops
    assert not (A.draw(r, hw, 2, 3, [5, 9, 2, 7]).box == a.box).all()  # another seed


def _smooth(h, w, seed):
    """A smooth image (so that bilinear and antialiased resampling agree closely)."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    ph = np.random.default_rng(seed).uniform(0, 6, 3)
    return (127.5 + 120 * np.sin(4 * x[..., None] + 3 * y[..., None] + ph)).astype(np.uint8)


def test_roi_align_crops_are_close_to_torchvision_and_a_canvas_changes_nothing():
    r = A.recipe_of(train_transform(preprocess_config(64, MEAN, STD, 48), "standard"))
    shapes = [(64, 85), (64, 128), (90, 64), (64, 64)]
    imgs = [_smooth(h, w, i) for i, (h, w) in enumerate(shapes)]
    d = A.draw(r, np.array(shapes), 0, 1, np.arange(4))
    got = A.roi_crops(canvas(imgs), np.array(shapes), d, 48)
    want = A.flip_batch(A.sample_crops(imgs, r, d).float(), d.flip)  # torchvision's antialiased kernel
    assert (got - want).abs().mean() < 2.0  # out of 255
    for b, img in enumerate(imgs):  # each image alone (no canvas padding): the same output
        alone = A.roi_crops(torch.from_numpy(img[None]), np.array(shapes[b:b + 1]),
                            A.Draws(d.box[b:b + 1], d.keep[b:b + 1], d.resized[b:b + 1], d.flip[b:b + 1]), 48)
        assert torch.allclose(alone[0], got[b], atol=1e-3)


@dataclass
class _Split:
    train: list
    val: list


def _cache(tmp_path, shapes, channels=3, size=32):
    paths = []
    for i, (h, w) in enumerate(shapes):
        p = tmp_path / f"{i}.png"
        a = np.random.default_rng(i).integers(0, 256, (h, w, channels), dtype=np.uint8)
        Image.fromarray(a[..., 0] if channels == 1 else a).save(p)
        paths.append(str(p))
    return paths, DecodedImages.build(paths, size, tmp_path / "c", quiet=True, channels=channels)


class _Decoded(torch.utils.data.Dataset):
    """The per-sample cached dataset, for comparison."""

    def __init__(self, dec, tf):
        self.dec, self.tf = dec, tf

    def __len__(self):
        return len(self.dec)

    def __getitem__(self, i):
        return self.tf(torch.from_numpy(self.dec[i]).permute(2, 0, 1)), i % 2


@pytest.mark.parametrize("shapes,img", [([(28, 28)] * 10, 28), ([(48, 64), (64, 48), (40, 90), (50, 50)] * 3, 40)])
def test_validation_batches_equal_the_per_sample_eval_pipeline(tmp_path, shapes, img):
    pre = preprocess_config(img, MEAN, STD)
    _, dec = _cache(tmp_path, shapes, size=pre["resize"])
    tf = eval_transform(pre)
    u8, norm = split_uint8(tf)
    labels = [i % 2 for i in range(len(shapes))]
    plan = lambda: BatchPlan(len(shapes), 4, DistContext(), shuffle=False, pad=False)  # noqa: E731
    got = list(CachedBatches(CachedImages(dec, np.arange(len(shapes)), labels, A.recipe_of(tf), exact=True),
                             plan(), seed=0))
    want = list(ImageBatches(_Decoded(dec, u8), plan(), seed=0, norm=norm))
    assert len(got) == len(want)
    for (x, y), (wx, wy) in zip(got, want):
        assert x.dtype == torch.float32 and torch.equal(x, wx) and torch.equal(y, wy)
        assert x.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("augment,shapes", [("pad-crop-flip", [(32, 32)] * 12), ("standard", [(32, 32)] * 12),
                                            ("standard", [(32, 40), (44, 32), (32, 64)] * 4),
                                            ("light", [(32, 40), (44, 32), (32, 64)] * 4)])
@pytest.mark.parametrize("prefetch", [False, True])
def test_ddp_shards_add_up_to_the_one_process_batch_and_resume_mid_epoch(tmp_path, augment, shapes, prefetch):
    pre = preprocess_config(32, MEAN, STD, 24 if augment != "pad-crop-flip" else 32)
    _, dec = _cache(tmp_path, shapes, size=pre["resize"])
    images = CachedImages(dec, np.arange(len(shapes)), [i % 3 for i in range(len(shapes))],
                          A.recipe_of(train_transform(pre, augment)))

    def batches(rank, world, batch, start=0):
        cb = CachedBatches(images, BatchPlan(len(shapes), batch, DistContext(rank=rank, world_size=world), seed=4),
                           seed=4, prefetch=prefetch)
        cb.set_epoch(2, start)
        return list(cb)

    one = batches(0, 1, 6)
    r0, r1 = batches(0, 2, 3), batches(1, 2, 3)
    for k, (x, y) in enumerate(one):  # rank r holds positions r, r + 2, ... of the global batch
        assert torch.equal(x[0::2], r0[k][0]) and torch.equal(x[1::2], r1[k][0])
        assert torch.equal(y[0::2], r0[k][1])
    resumed = batches(0, 1, 6, start=1)  # a resume at step 1 continues with the same batch
    assert torch.equal(resumed[0][0], one[1][0])
    other = CachedBatches(images, BatchPlan(len(shapes), 6, DistContext(), seed=4), seed=4)
    other.set_epoch(3)
    assert not torch.equal(next(iter(other))[0], one[0][0])  # a new epoch draws anew


def test_read_ahead_keeps_order_stops_with_its_consumer_and_passes_errors():
    import time

    from transferlearn.train.pipeline import ahead

    def slow_square(i):
        time.sleep(0.01 * (i % 3))  # out-of-order completion across threads
        if i == 7:
            raise ValueError("boom")
        return i * i

    it = ahead(slow_square, range(10), workers=3, depth=6)
    assert [next(it) for _ in range(7)] == [i * i for i in range(7)]
    with pytest.raises(ValueError, match="boom"):
        next(it)
    endless = ahead(slow_square, iter(range(10 ** 9)), workers=2)
    assert next(endless) == 0
    endless.close()  # queued work is cancelled, the threads end


def test_what_stays_per_sample(dataset, tmp_path):
    """--augment strong (TrivialAugment, RandomErasing on floats), --no-cache and --no-batch-augment keep
    torchvision's per-sample pipeline."""
    from types import SimpleNamespace

    from transferlearn.data import find_splits
    from transferlearn.train.pipeline import image_datasets
    splits = find_splits(dataset)
    pre = preprocess_config(48, MEAN, STD, 40)
    base = dict(in_channels=3, cache_dir=str(tmp_path), workers=0, quiet=True)
    for kw, batched in ((dict(augment="standard", cache=True, batch_augment=True), True),
                        (dict(augment="strong", cache=True, batch_augment=True), False),
                        (dict(augment="standard", cache=False, batch_augment=True), False),
                        (dict(augment="standard", cache=True, batch_augment=False), False)):
        (tr, _, _), (va, _, _) = image_datasets(splits, pre, SimpleNamespace(**base, **kw), DistContext())
        assert isinstance(tr, CachedImages) is batched, kw
        assert isinstance(va, CachedImages) is (kw["cache"] and kw["batch_augment"]), kw
