"""Crop + resize of one batch, per image, by kernel: which one train/augment.py uses where.

    python bench/crop_kernels.py --threads 1
    python bench/crop_kernels.py --threads 1 --json bench/results/CPU-KIND/crop-kernels_synthetic_no-model.json

The same random RandomResizedCrop boxes through: one `torchvision.ops.roi_align` per batch, one `grid_sample`
per batch (float input), torchvision's uint8 antialiased `resized_crop` per crop, and a float `interpolate` per
crop. Microseconds per image, fastest of --rounds; the batched kernels include the uint8 -> float conversion they
need. Small images take roi_align on a CPU, photos the per-crop uint8 kernel (`data.is_small`).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torchvision.ops import roi_align
from torchvision.transforms import RandomResizedCrop

sys.path.insert(0, str(Path(__file__).resolve().parent))
import resultfile  # noqa: E402

CASES = [(32, (32, 32), 64), (160, (256, 341), 32), (224, (256, 341), 32)]  # (out px, cached (h, w), batch)


def boxes(n: int, h: int, w: int) -> list[tuple[int, int, int, int]]:
    img = torch.empty(1, h, w)
    return [RandomResizedCrop.get_params(img, (0.08, 1.0), (3 / 4, 4 / 3)) for _ in range(n)]


def kernels(x: torch.Tensor, bx: list, out: int) -> dict:
    n = x.shape[0]
    rois = torch.tensor([[i, l, t, l + w, t + h] for i, (t, l, h, w) in enumerate(bx)], dtype=torch.float32)
    H, W = x.shape[-2:]
    theta = torch.zeros(n, 2, 3)
    for i, (t, l, h, w) in enumerate(bx):  # the box in grid_sample's [-1, 1] coordinates
        theta[i, 0, 0], theta[i, 0, 2] = w / W, (2 * l + w) / W - 1
        theta[i, 1, 1], theta[i, 1, 2] = h / H, (2 * t + h) / H - 1
    grid = F.affine_grid(theta, [n, x.shape[1], out, out], align_corners=False)
    return {
        "roi_align": lambda: roi_align(x.float(), rois, (out, out), 1.0, -1, aligned=True),
        "grid_sample": lambda: F.grid_sample(x.float(), grid, mode="bilinear", align_corners=False),
        "torchvision uint8 resized_crop per crop": lambda: [
            TF.resized_crop(x[i], t, l, h, w, [out, out], antialias=True) for i, (t, l, h, w) in enumerate(bx)],
        "float interpolate per crop": lambda: [
            F.interpolate(x[i:i + 1, :, t:t + h, l:l + w].float(), size=(out, out), mode="bilinear", antialias=True,
                          align_corners=False) for i, (t, l, h, w) in enumerate(bx)],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", default=None, help="also write the table as a result file (bench/results/...)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    load0 = os.getloadavg()[0]
    rows, names = [], None
    for out, (h, w), n in CASES:
        x = torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8)
        ks = kernels(x, boxes(n, h, w), out)
        names = list(ks)
        best = {k: float("inf") for k in ks}
        for fn in ks.values():
            fn()  # warm-up
        for _ in range(a.rounds):
            for k, fn in ks.items():  # alternated, so a drifting machine affects all alike
                t = time.perf_counter()
                fn()
                best[k] = min(best[k], time.perf_counter() - t)
        row = [f"{out} px from {h}x{w}, batch {n}", *(f"{best[k] / n * 1e6:,.0f} us" for k in ks)]
        print(" | ".join(row), flush=True)
        rows.append(row)
    if a.json:
        meta = resultfile.machine()
        meta["threads"] = a.threads
        meta["notes"] = (f"per image, fastest of {a.rounds} alternated rounds, random uint8 pixels, "
                         f"RandomResizedCrop's boxes; load average {load0:.1f} -> {os.getloadavg()[0]:.1f} (1 minute, {os.cpu_count()} "
                         f"logical CPUs; above their count, other jobs shared the machine)")
        resultfile.write(Path(a.json), {"machine": meta, "title": "Crop + resize of one batch, per image, by kernel",
                                        "columns": ["crop", *names], "rows": rows})


if __name__ == "__main__":
    main()
