"""A/B of models/bnfold.py: an all-layers training step with BatchNorm on its running statistics (what fine-tuning
from the probe's head runs), with each BatchNorm as its own layer against folded into its convolution.

    python bench/bnfold_ab.py --archs efficientnet_lite0 mobilenet_v2 --size 160 --rounds 7 --json out.json

One process; both sides are built from the same seed, warmed up, then timed in turn (A B A B ...), 3 steps a turn,
so a drift of the machine's speed falls on both; the median of each side's turns and of the pairs' ratios is printed.
Synthetic batch 32, channels_last, fp32, AdamW, as `transferlearn train --mode all-layers` steps on a CPU.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import resultfile  # noqa: E402

from transferlearn.models import create_model  # noqa: E402
from transferlearn.models.bnfold import folded_batchnorm  # noqa: E402
from transferlearn.modes import set_train  # noqa: E402
from transferlearn.train.loop import tune_malloc  # noqa: E402
from transferlearn.train.state import create_state  # noqa: E402


def make_step(arch: str, size: int, batch: int):
    torch.manual_seed(0)
    m = create_model(arch, 10, weights="none").to(memory_format=torch.channels_last)
    st = create_state(m, "all-layers", "adamw", 1e-4, 0.9, 1e-4, "none", 1, 1, 0.1)
    set_train(m, "all-layers", bn_eval=True)
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))

    def step():
        loss = F.cross_entropy(m(x), y)
        st.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        st.optimizer.step()
    return step, m, x


def ab(arch: str, size: int, batch: int, rounds: int, per_turn: int = 3) -> dict:
    plain, _, _ = make_step(arch, size, batch)
    fold_step, fm, fx = make_step(arch, size, batch)
    with folded_batchnorm(fm.backbone, fx[:2]) as folded:
        sides = {"separate": plain, "folded": fold_step}
        for s in sides.values():
            for _ in range(2):
                s()
        speed = {k: [] for k in sides}
        for _ in range(rounds):
            for k, s in sides.items():
                t0 = time.perf_counter()
                for _ in range(per_turn):
                    s()
                speed[k].append(batch * per_turn / (time.perf_counter() - t0))
    ratios = [f / p for f, p in zip(speed["folded"], speed["separate"])]
    return {"arch": arch, "size": size, "batch": batch, "folded_layers": folded,
            "separate": [round(v, 1) for v in speed["separate"]], "folded": [round(v, 1) for v in speed["folded"]],
            "median_separate": round(statistics.median(speed["separate"]), 1),
            "median_folded": round(statistics.median(speed["folded"]), 1),
            "median_ratio": round(statistics.median(ratios), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", nargs="+", default=["efficientnet_lite0", "mobilenet_v2"])
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    tune_malloc()
    rows = []
    for arch in a.archs:
        r = ab(arch, a.size, a.batch, a.rounds)
        print(r, flush=True)
        rows.append([arch, f"{a.size} px, batch {a.batch}", r["folded_layers"], r["median_separate"],
                     r["median_folded"], f"{r['median_ratio']:.2f}x",
                     " ".join(f"{v:.1f}" for v in r["separate"]), " ".join(f"{v:.1f}" for v in r["folded"])])
    if a.json:
        resultfile.write(Path(a.json), {
            "machine": resultfile.machine(), "title": "All-layers training step with BatchNorm on its running "
            "statistics: each BatchNorm a layer of its own, against folded into its convolution (models/bnfold.py)",
            "columns": ["arch", "step", "BatchNorm layers folded", "img/s, separate (median)",
                        "img/s, folded (median)", "speed-up (median of pairs)", "separate, each turn",
                        "folded, each turn"], "rows": rows})


if __name__ == "__main__":
    main()
