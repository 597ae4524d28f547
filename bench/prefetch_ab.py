"""Does reading the next batch in a background thread pay on a CPU? One training run whose epochs alternate
between the batched pipeline's read-ahead thread on and off (pipeline.CachedBatches.prefetch), so both see
the same machine state; prints each epoch's training img/s and the medians.

    python bench/prefetch_ab.py --data ../shared/data/hymenoptera_data --epochs 8
"""
from __future__ import annotations

import argparse
import statistics

import torch

from transferlearn.train import TrainConfig, Trainer
from transferlearn.train.pipeline import CachedBatches


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--arch", default="efficientnet_lite0")
    ap.add_argument("--mode", default="all-layers")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--img-size", type=int, default=None)
    ap.add_argument("--in-channels", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    a = ap.parse_args()
    cfg = TrainConfig(data=a.data, arch=a.arch, mode=a.mode, epochs=a.epochs, img_size=a.img_size,
                      in_channels=a.in_channels, batch_size=a.batch_size, quiet=True, eval_interval=a.epochs,
                      project="runs/bench_prefetch", name="ab", exist_ok=True)
    t = Trainer(cfg, callbacks=[]).setup()
    if not isinstance(t.train_batches, CachedBatches):
        raise SystemExit("this run does not use the batched pipeline (strong augment, --no-cache?)")
    on_off = {True: [], False: []}
    for epoch in range(1, a.epochs + 1):
        t.train_batches.prefetch = epoch % 2 == 0
        t.cfg.epochs = epoch  # fit() runs one more epoch each time
        n = len(t.state.history)
        t.fit()
        row = t.state.history[n]
        ips = row["train_images"] / row["train_seconds"]
        on_off[t.train_batches.prefetch].append(ips)
        print(f"epoch {epoch} prefetch {'on ' if t.train_batches.prefetch else 'off'} {ips:.1f} img/s", flush=True)
    t.close()
    on, off = statistics.median(on_off[True]), statistics.median(on_off[False])
    print(f"cpu {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads | median img/s: "
          f"read-ahead thread {on:.1f}, none {off:.1f} ({on / off - 1:+.1%})")


if __name__ == "__main__":
    main()
