"""Where an all-layers training step's time goes, and what smaller crops or frozen first stages buy per step.

    python bench/step_profile.py --arch efficientnet_lite0 --size 160 --profile
    python bench/step_profile.py --arch efficientnet_lite0 --sweep 160:0 160:1 160:2 144:0 128:0

Synthetic batch, channels_last, fp32 (this CPU has no AMX, so `--amp auto` trains in fp32); forward, backward
and AdamW as `transferlearn train --mode all-layers` runs them, with `--freeze-stages K` given as SIZE:K.
"""
from __future__ import annotations

import argparse

import torch

from step_sweep import make_step, train_step  # bench/ is on sys.path when this file runs as a script


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="efficientnet_lite0")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--profile", action="store_true", help="torch.profiler table of two steps at --size")
    ap.add_argument("--sweep", nargs="*", default=[], metavar="SIZE:FREEZE")
    a = ap.parse_args()
    print(f"CPU {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads, batch {a.batch}")
    for spec in a.sweep:
        size, freeze = (int(v) for v in spec.split(":"))
        ips, _ = train_step(a.arch, size, a.batch, amp="off", steps=a.steps, warmup=2, classes=5,
                            freeze_stages=freeze)
        print(f"{size} px, --freeze-stages {freeze}: {ips:.1f} img/s", flush=True)
    if a.profile:
        from torch.profiler import ProfilerActivity, profile
        step = make_step(a.arch, a.size, a.batch, amp="off", classes=5)[0]
        for _ in range(2):
            step()
        with profile(activities=[ProfilerActivity.CPU]) as p:
            for _ in range(2):
                step()
        print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
