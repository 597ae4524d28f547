"""What a resume point costs: the time to write last.pt (weights + AdamW state + RNGs, fsynced, the previous
file kept) for an architecture, and what --checkpoint-steps N adds per epoch.

    python bench/checkpoint_cost.py --arch efficientnet_lite0 resnet50 --steps-per-epoch 8 --every 10
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from transferlearn import checkpoint as ckpt_io
from transferlearn.models import create_model
from transferlearn.train.state import create_state, rng_state


def write_seconds(arch: str, repeats: int = 5) -> tuple[float, float]:
    """(median seconds per last.pt write, file MB) with a populated AdamW state."""
    m = create_model(arch, 10, weights="none")
    st = create_state(m, "all-layers", "adamw", 1e-4, 0.9, 1e-4, "cosine", 10, 7, 0.1)
    m(torch.randn(2, 3, 64, 64)).sum().backward()
    st.optimizer.step()
    with tempfile.TemporaryDirectory(dir=".") as d:
        path = Path(d) / "last.pt"
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            ckpt_io.save({"format": ckpt_io.FORMAT, "model": m.state_dict(), "train_state": st.state_dict(),
                          "rng": [rng_state()]}, path, keep_previous=True)
            times.append(time.perf_counter() - t0)
        return statistics.median(times), path.stat().st_size / 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", nargs="+", default=["efficientnet_lite0", "resnet50"])
    ap.add_argument("--steps-per-epoch", type=int, default=8, help="hymenoptera: 245 images / batch 32 = 8")
    ap.add_argument("--every", type=int, default=10, help="--checkpoint-steps")
    a = ap.parse_args()
    extra = (a.steps_per_epoch - 1) // a.every  # mid-epoch writes; the epoch-end write happens anyway
    print(f"cpu {torch.backends.cpu.get_cpu_capability()}, torch {torch.__version__}")
    print("| arch | last.pt MB | write s (median of 5) | --checkpoint-steps "
          f"{a.every} adds per epoch ({a.steps_per_epoch} steps) |")
    print("|---|---|---|---|")
    for arch in a.arch:
        s, mb = write_seconds(arch)
        print(f"| {arch} | {mb:.1f} | {s:.3f} | {extra} writes = {extra * s:.3f} s |")


if __name__ == "__main__":
    main()
