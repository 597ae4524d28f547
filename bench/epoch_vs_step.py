"""What the input pipeline costs inside a real training loop, measured paired: the same Trainer, model and
optimiser run chunks of K steps alternately on batches from its pipeline (read, augmented, normalised: end to
end) and on one batch prepared beforehand (the bare model step, same loop code), so a busy shared machine
slows both alike. Prints each chunk's img/s, the medians and their ratio.

    python bench/epoch_vs_step.py --data data/fashion-mnist --arch lenet --in-channels 1 --img-size 28 \\
        --mode scratch --batch-size 128
    python bench/epoch_vs_step.py --data data/fashion-mnist --arch mobilenet_v2 --img-size 32 --batch-size 64
"""
from __future__ import annotations

import argparse
import itertools
import statistics

import torch

from transferlearn.train import TrainConfig, Trainer
from transferlearn.train.loop import train_one_epoch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--arch", default="mobilenet_v2")
    ap.add_argument("--mode", default="all-layers")
    ap.add_argument("--img-size", type=int, default=32)
    ap.add_argument("--in-channels", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20, help="steps per chunk")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-batch-augment", dest="batch_augment", action="store_false")
    a = ap.parse_args()
    cfg = TrainConfig(data=a.data, arch=a.arch, mode=a.mode, img_size=a.img_size, in_channels=a.in_channels,
                      batch_size=a.batch_size, epochs=1000, quiet=True, batch_augment=a.batch_augment,
                      project="runs/bench_epoch_vs_step", name="ab", exist_ok=True)
    t = Trainer(cfg, callbacks=[]).setup()
    t.train_batches.set_epoch(1)
    batches = iter(t.train_batches)
    fixed = next(batches)
    fixed = (fixed[0].clone(), fixed[1].clone())
    speeds = {"pipeline": [], "bare": []}

    def chunk(items):
        row = train_one_epoch(t.state, items, t.train_criterion, t.device, t.amp, forward=t.forward, ctx=t.ctx,
                              seed=cfg.seed, quiet=True)
        return row["train_images"] / row["train_seconds"]

    chunk([fixed] * 3)  # warm-up
    for r in range(a.rounds):
        for name in (("pipeline", "bare") if r % 2 == 0 else ("bare", "pipeline")):
            items = itertools.islice(batches, a.steps) if name == "pipeline" else [fixed] * a.steps
            speeds[name].append(chunk(items))
        print(f"round {r + 1}: pipeline {speeds['pipeline'][-1]:.0f} img/s, bare {speeds['bare'][-1]:.0f} img/s",
              flush=True)
    t.close()
    p, b = statistics.median(speeds["pipeline"]), statistics.median(speeds["bare"])
    print(f"cpu {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads, amp {t.amp}, "
          f"{type(t.train_batches).__name__} | median img/s: end to end {p:.0f}, bare step {b:.0f} ({p / b:.0%})")


if __name__ == "__main__":
    main()
