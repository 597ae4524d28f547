"""Per-image cost of the training input pipeline, three ways: torchvision's whole pipeline per sample; the
split one (geometric part per sample on uint8, float conversion and normalisation per batch; the outputs are
checked equal); and the batched one (train/augment.py through pipeline.CachedBatches: vectorised draws, one
gather or roi_align per batch, or torchvision's uint8 kernel per crop for big photos on a CPU; batches of 64
read from a decode-cache file). Decoded uint8 images as the decode cache holds them; one thread.

    python bench/pipeline_split.py
"""
from __future__ import annotations

import time

import numpy as np
import torch

from transferlearn.data import preprocess_config, train_transform
from transferlearn.train.pipeline import normalize_batch, split_uint8

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def per_image_us(img_size: int, train_size: int, cached: tuple[int, int], augment: str, n: int = 256,
                 rounds: int = 7) -> tuple:
    pre = preprocess_config(img_size, MEAN, STD, train_size)
    full = train_transform(pre, augment)
    u8, norm = split_uint8(full)
    rng = np.random.default_rng(0)
    imgs = [torch.from_numpy(rng.integers(0, 256, (*cached, 3), dtype=np.uint8)).permute(2, 0, 1) for _ in range(n)]
    for x in imgs[:16]:  # warm-up: first calls of each kernel
        full(x), u8(x)
    before, after = [], []
    for _ in range(rounds):  # alternated, the fastest round of each quoted: this machine is shared and noisy
        torch.manual_seed(0)
        t0 = time.perf_counter()
        a = torch.stack([full(x) for x in imgs])
        t1 = time.perf_counter()
        torch.manual_seed(0)
        b = normalize_batch(torch.stack([u8(x) for x in imgs]), norm, torch.device("cpu"))
        t2 = time.perf_counter()
        assert torch.equal(a, b)
        before.append((t1 - t0) / n * 1e6)
        after.append((t2 - t1) / n * 1e6)
    return min(before), min(after)


def batched_us(img_size: int, train_size: int, shapes: list, augment: str, n: int = 256, rounds: int = 7) -> float:
    """us per image of CachedBatches over a decode-cache file of `n` random images (shapes cycled)."""
    import tempfile
    from pathlib import Path

    from transferlearn.cache import DecodedImages
    from transferlearn.train.augment import recipe_of
    from transferlearn.train.distributed import DistContext
    from transferlearn.train.pipeline import CachedBatches, CachedImages
    from transferlearn.train.sampling import BatchPlan
    pre = preprocess_config(img_size, MEAN, STD, train_size)
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (*shapes[i % len(shapes)], 3), dtype=np.uint8) for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.u8"
        path.write_bytes(b"".join(a.tobytes() for a in imgs))
        offsets = np.cumsum([0] + [a.nbytes for a in imgs[:-1]]).tolist()
        dec = DecodedImages(path, {"size": pre["resize"], "valid": [True] * n, "offsets": offsets,
                                   "shapes": [list(a.shape[:2]) for a in imgs], "channels": 3})
        images = CachedImages(dec, np.arange(n), [0] * n, recipe_of(train_transform(pre, augment)))
        batches = CachedBatches(images, BatchPlan(n, 64, DistContext(), seed=0), seed=0)
        times = []
        for r in range(rounds + 1):
            batches.set_epoch(r + 1)
            t0 = time.perf_counter()
            for _ in batches:
                pass
            times.append((time.perf_counter() - t0) / n * 1e6)
        return min(times[1:])


def main():
    torch.set_num_threads(1)
    print(f"cpu {torch.backends.cpu.get_cpu_capability()}, one thread")
    print("| case | per sample us/img | split us/img | batched us/img | batched vs per sample |\n"
          "|---|---|---|---|---|")  # fastest of 7
    for name, args, shapes in (
            ("32 px, pad-crop-flip (small images)", (32, 32, (32, 32), "pad-crop-flip"), [(32, 32)]),
            ("32 px from 37 px, standard", (32, 32, (37, 37), "standard"), [(37, 37)]),
            ("160 px from 256x341, standard (one shape)", (224, 160, (256, 341), "standard"), [(256, 341)]),
            ("160 px from 256x341/341x256/256x384, standard (lite0 all-layers)", (224, 160, (256, 341), "standard"),
             [(256, 341), (341, 256), (256, 384)])):
        try:
            before, after = per_image_us(*args)
        except ValueError:  # a preset this version does not have
            continue
        batched = batched_us(args[0], args[1], shapes, args[3])
        print(f"| {name} | {before:.0f} | {after:.0f} | {batched:.0f} | {before / batched:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
