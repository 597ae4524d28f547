"""fp32 against bf16 autocast for one all-layers training step, per architecture and image size, each pair in a
fresh process: what `--amp auto` measures on a CPU with AMX (train/precision.py:step_speeds), with more rounds.

    python bench/amp_ab.py --arch efficientnet_lite0 mobilenet_v2 resnet18 --size 160 224 --rounds 6
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = """
import json, sys, time, torch
from transferlearn.models import create_model
from transferlearn.train.loop import tune_malloc
from transferlearn.train.precision import step_speeds
tune_malloc()  # as a training run does on a CPU
arch, size, batch, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
m = create_model(arch, 2, weights="none").to(memory_format=torch.channels_last)
t0 = time.perf_counter()
s = step_speeds(m, (batch, 3, size, size), "all-layers", rounds=rounds)
print(json.dumps({**s, "seconds": time.perf_counter() - t0}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", nargs="+", default=["efficientnet_lite0", "mobilenet_v2", "resnet18"])
    ap.add_argument("--size", nargs="+", type=int, default=[160, 224])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2, help="timed steps per precision (the run itself uses 2)")
    a = ap.parse_args()
    import torch
    from transferlearn.train.precision import cpu_has_amx, cpu_name
    print(f"{cpu_name()} | get_cpu_capability {torch.backends.cpu.get_cpu_capability()} | AMX {cpu_has_amx()} | "
          f"{torch.get_num_threads()} threads | batch {a.batch} | fastest of {a.rounds} steps after 2 warm-ups\n")
    print("| arch | px | fp32 img/s | bf16 img/s | bf16 / fp32 | seconds to measure |\n|---|---|---|---|---|---|")
    for arch in a.arch:
        for size in a.size:
            out = subprocess.run([sys.executable, "-c", CHILD, arch, str(size), str(a.batch), str(a.rounds)],
                                 capture_output=True, text=True, check=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(f"| {arch} | {size} | {r['off']:.1f} | {r['bf16']:.1f} | {r['bf16'] / r['off']:.2f} | "
                  f"{r['seconds']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
