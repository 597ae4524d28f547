"""A/B of engine.tune_malloc: training-step throughput and page faults, each side in fresh processes, alternated.

    python bench/malloc_ab.py --size 160 --rounds 3
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from step_sweep import train_step
from transferlearn.engine import tune_malloc
arch, size, steps, tuned = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
if tuned:
    assert tune_malloc()
ips, faults = train_step(arch, size, steps=steps, warmup=2)
print(json.dumps({"img_s": ips, "faults_per_step": faults}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="efficientnet_lite0")
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    res = {"default": [], "tuned": []}
    for _ in range(a.rounds):
        for name, flag in (("default", "0"), ("tuned", "1")):
            out = subprocess.run([sys.executable, "-c", CHILD, str(Path(__file__).parent), a.arch, str(a.size), str(a.steps), flag],
                                 capture_output=True, text=True, check=True).stdout
            res[name].append(json.loads(out.strip().splitlines()[-1]))
    print(f"{a.arch}, all-layers step at {a.size} px, batch 32, bf16, {a.steps} steps x {a.rounds} rounds\n\n"
          f"| malloc | img/s (mean) | img/s (each) | page faults per step |\n|---|---|---|---|")
    for name, rs in res.items():
        ips = [r["img_s"] for r in rs]
        print(f"| {name} | {statistics.mean(ips):.1f} | {', '.join(f'{v:.1f}' for v in ips)} | "
              f"{statistics.mean(r['faults_per_step'] for r in rs):,.0f} |")


if __name__ == "__main__":
    main()
