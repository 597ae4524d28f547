"""A/B of engine.tune_malloc: training-step throughput and page faults, each side in fresh processes, alternated.

    python bench/malloc_ab.py --size 160 --rounds 3
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time, torch
from transferlearn.engine import autocast, create_state, tune_malloc
from transferlearn.models import create_model
from transferlearn.modes import set_train
arch, size, steps, tuned = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
if tuned:
    assert tune_malloc()
dev = torch.device("cpu")
m = create_model(arch, 2, weights="none").to(memory_format=torch.channels_last)
st = create_state(m, "all-layers", "adamw", 1e-4, 0.9, 0.0, "none", 1, 1, 0.1)
set_train(m, "all-layers")
x = torch.randn(32, 3, size, size).contiguous(memory_format=torch.channels_last)
y = torch.randint(0, 2, (32,))
def step():
    with autocast(dev, "bf16"):
        loss = torch.nn.functional.cross_entropy(m(x).float(), y)
    st.optimizer.zero_grad(); loss.backward(); st.optimizer.step()
for _ in range(2):
    step()
f0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
for _ in range(steps):
    step()
dt, f1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(json.dumps({"img_s": 32 * steps / dt, "faults_per_step": (f1 - f0) / steps}))
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
            out = subprocess.run([sys.executable, "-c", CHILD, a.arch, str(a.size), str(a.steps), flag],
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
