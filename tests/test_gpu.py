"""The CUDA path: batched augmentation on the GPU, bf16 / fp16 training end to end, the feature cache
extracted on the GPU. Skipped without a CUDA GPU (CI has none); run on a GPU machine with
`python -m pytest -q tests/test_gpu.py`."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import FAST, make_dataset
from transferlearn.data import preprocess_config, train_transform
from transferlearn.train import augment as A
from transferlearn.train.distributed import DistContext
from transferlearn.train.pipeline import CachedBatches, CachedImages
from transferlearn.train.sampling import BatchPlan

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def _cache(tmp_path, shapes, size):
    from PIL import Image

    from transferlearn.cache import DecodedImages
    paths = []
    for i, (h, w) in enumerate(shapes):
        y, x = np.mgrid[0:h, 0:w] / max(h, w)
        a = (127 + 120 * np.sin(5 * x[..., None] + 3 * y[..., None] + np.arange(3) + i)).astype(np.uint8)
        Image.fromarray(a).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    return DecodedImages.build(paths, size, tmp_path / "c", quiet=True)


@pytest.mark.parametrize("augment,shapes", [("pad-crop-flip", [(32, 32)] * 16), ("standard", [(32, 32)] * 16),
                                            ("standard", [(32, 40), (44, 32), (32, 64), (50, 50)] * 4)])
def test_batches_on_the_gpu_match_the_cpu(tmp_path, augment, shapes):
    pre = preprocess_config(32, MEAN, STD)
    dec = _cache(tmp_path, shapes, pre["resize"])
    images = CachedImages(dec, np.arange(len(shapes)), [i % 2 for i in range(len(shapes))],
                          A.recipe_of(train_transform(pre, augment)))

    def run(device):
        cb = CachedBatches(images, BatchPlan(len(shapes), 8, DistContext(), seed=1), seed=1,
                           device=torch.device(device))
        cb.set_epoch(2)
        return [(x.cpu(), y.cpu(), x.is_contiguous(memory_format=torch.channels_last)) for x, y in cb]

    for (gx, gy, gcl), (cx, cy, _) in zip(run("cuda"), run("cpu")):
        assert gcl and torch.equal(gy, cy)
        if augment == "pad-crop-flip":  # a pure index gather on both
            assert torch.equal(gx, cx)
        elif len(set(shapes)) == 1:  # roi_align on both
            assert torch.allclose(gx, cx, atol=1e-4)
        else:  # roi_align on the GPU, torchvision's uint8 kernel per crop on the CPU
            assert (gx - cx).abs().mean() < 0.05  # normalised units (1/255 is ~0.017)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_training_end_to_end_on_the_gpu(tmp_path, amp):
    from transferlearn.train import Trainer, TrainConfig
    root = make_dataset(tmp_path / "d", n_train=8, n_val=4)
    cfg = TrainConfig(data=str(root), mode="all-layers", epochs=2, device="cuda", amp=amp,
                      project=str(tmp_path / "r"), **FAST)
    t = Trainer(cfg).setup()
    assert t.device.type == "cuda" and t.amp == amp and torch.backends.cudnn.benchmark
    assert isinstance(t.train_batches, CachedBatches) and t.train_batches.prefetch
    x, y = next(iter(t.train_batches))
    assert x.is_cuda and y.is_cuda and x.is_contiguous(memory_format=torch.channels_last)
    scaler = t.state.scaler
    assert (scaler is not None) == (amp == "fp16")  # one GradScaler for the run, fp16 only
    t.fit()
    s = t.finish()
    assert s["device"].startswith("cuda") and s["amp"] == amp and np.isfinite(t.state.history[-1]["train_loss"])
    assert t.state.scaler is scaler
    ck = torch.load(tmp_path / "r" / "all-layers" / "last.pt", map_location="cpu", weights_only=True)
    assert (ck["train_state"]["scaler"] is not None) == (amp == "fp16")


def test_feature_cache_extracted_on_the_gpu_matches_the_cpu(tmp_path):
    from transferlearn.train import Trainer, TrainConfig
    root = make_dataset(tmp_path / "d", n_train=6, n_val=4)
    feats = {}
    for device in ("cuda", "cpu"):
        cfg = TrainConfig(data=str(root), mode="last-layer", epochs=1, device=device, amp="off", aug_views=2,
                          project=str(tmp_path / device), **FAST)
        t = Trainer(cfg).setup()
        feats[device] = (t.train_batches.views.clone(), t.val_batches.views.clone())
        t.close()
    (gt, gv), (ct, cv) = feats["cuda"], feats["cpu"]
    assert torch.allclose(gv, cv, atol=1e-3, rtol=1e-3)  # val: the same pixels on both
    assert (gt - ct).abs().mean() < 0.05 * ct.abs().mean()  # train views: roi_align on the GPU
