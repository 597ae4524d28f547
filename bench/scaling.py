"""Scaling: time per epoch and peak memory on Fashion-MNIST subsets of growing size.

    python bench/scaling.py --sizes 6000 20000 60000

Each size trains in its own process (all-layers, decode cache, 1 epoch after the cache is built)
and reports the epoch's train time, images/s and the process's peak resident memory (ru_maxrss,
which also counts memory-mapped cache pages the kernel can drop at will), and the bare model step's
images/s in the same process (synthetic tensors, same size, batch and precision: bench/step_sweep.py),
so the epoch's share of it says how much the input pipeline costs.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[6])
from step_sweep import train_step
from transferlearn.demo import make_demo_folder
from transferlearn.engine import resolve_amp
from transferlearn.trainer import train
n, arch, size, epochs, project = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
data = make_demo_folder(n_train=n, n_val=1000)
s = train(data=str(data), mode="all-layers", arch=arch, img_size=size, train_size=size, epochs=epochs, batch_size=64,
          project=project, name=f"n{n}", quiet=True, eval_interval=epochs)
bare, _ = train_step(arch, size, batch=64, amp=resolve_amp("auto", __import__("torch").device("cpu")), steps=30, warmup=3,
                     classes=10)
print(json.dumps({"n": n, "prep_seconds": s["prep_seconds"], "epoch_images_per_second": s["epoch_images_per_second"],
                  "bare_step_images_per_second": bare,
                  "epoch_seconds": n / s["epoch_images_per_second"], "best_val_acc": s["best_val_acc"],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", type=int, default=[6000, 20000, 60000])
    ap.add_argument("--arch", default="mobilenet_v2")
    ap.add_argument("--img-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--project", default="runs/scaling")
    a = ap.parse_args()
    rows = []
    for n in a.sizes:
        p = subprocess.run([sys.executable, "-c", CHILD, str(n), a.arch, str(a.img_size), str(a.epochs), a.project,
                            str(Path(__file__).resolve().parent)],
                           capture_output=True, text=True, check=True)
        rows.append(json.loads(p.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(f"\n{a.arch} all-layers at {a.img_size}px, Fashion-MNIST subsets\n")
    print("| train images | cache build s | epoch s | img/s | bare step img/s | epoch / bare | s per 1k images | "
          "peak RSS MB |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']} | {r['prep_seconds']:.1f} | {r['epoch_seconds']:.1f} | {r['epoch_images_per_second']:.0f} | "
              f"{r['bare_step_images_per_second']:.0f} | {r['epoch_images_per_second'] / r['bare_step_images_per_second']:.0%} | "
              f"{1000 * r['epoch_seconds'] / r['n']:.2f} | {r['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
