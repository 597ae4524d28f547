"""One LeNet-5 epoch over Fashion-MNIST's 60,000 training images: end to end (`transferlearn train`, decode
cache built first) against the bare model step (synthetic tensors, same batch, size and precision).

    transferlearn data get fashion-mnist data/        # offline from Debian's dataset-fashion-mnist
    python bench/classic.py --data data/fashion-mnist

Prints and writes (--json) img/s for: the whole run (cache build + epoch + validation), the training
epoch alone, and the bare step.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from step_sweep import train_step  # noqa: E402

from transferlearn.engine import resolve_amp, tune_malloc  # noqa: E402
from transferlearn.trainer import train  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--project", default="runs/bench_classic")
    ap.add_argument("--json", default=None)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (default: torch's, one per core); on a busy shared CPU, 1 can be "
                         "much faster for a model this small")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    amp = resolve_amp("auto", torch.device("cpu"))
    tune_malloc()
    t0 = time.perf_counter()
    # pad-crop-flip named: the grey small-image default became pad-crop; the recorded figures used this one
    s = train(data=a.data, arch="lenet", in_channels=1, img_size=28, mode="scratch", epochs=1, augment="pad-crop-flip",
              batch_size=a.batch_size, quiet=True, project=a.project, name="lenet_epoch", exist_ok=True)
    wall = time.perf_counter() - t0
    bare, _ = train_step("lenet", 28, batch=a.batch_size, amp=amp, steps=100, warmup=5, in_channels=1, classes=10)
    out = {"cpu": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(), "amp": amp,
           "batch_size": a.batch_size, "train_images": s["train_images"], "val_images": s["val_images"],
           "process_seconds": round(wall, 1), "prep_seconds": s["prep_seconds"],
           "train_seconds_incl_prep": s["train_seconds"],
           "end_to_end_img_s": round(s["train_images"] / wall, 1),
           "epoch_img_s": s["epoch_images_per_second"], "bare_step_img_s": round(bare, 1),
           "val_acc": s["best_val_acc"]}
    print(json.dumps(out, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
