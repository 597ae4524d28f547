"""Frozen-backbone inference throughput by engine: PyTorch fp32, PyTorch bf16 autocast, onnxruntime fp32.

    python bench/frozen_backbone.py --arch efficientnet_lite0 --size 224 --threads 1 2
    python bench/frozen_backbone.py --threads 1 --json bench/results/CPU-KIND/frozen-backbone_synthetic_lite0.json

The engines alternate within each round (so a drifting machine affects all alike) and the fastest of the
rounds is kept; also prints the largest difference of onnxruntime's features from PyTorch's fp32 ones.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import resultfile  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="efficientnet_lite0")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", default=None, help="also write the table as a result file (bench/results/...)")
    a = ap.parse_args()
    load0 = os.getloadavg()[0]
    rows = []
    from transferlearn.models import create_model
    from transferlearn.train.frozen import backbone_runner
    cpu = torch.device("cpu")
    bb = create_model(a.arch, 2, weights="imagenet").backbone.eval().to(memory_format=torch.channels_last)
    x = torch.randn(a.batch, 3, a.size, a.size).contiguous(memory_format=torch.channels_last)
    print(f"{a.arch} {a.size} px, batch {a.batch}, CPU {torch.backends.cpu.get_cpu_capability()}")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        ort = backbone_runner(bb, "onnxruntime", cpu, "off", 3, Path(tmp))
        print(f"export + InferenceSession: {time.perf_counter() - t0:.2f} s")
        for threads in a.threads:
            torch.set_num_threads(threads)
            ort = backbone_runner(bb, "onnxruntime", cpu, "off", 3, Path(tmp))  # an InferenceSession with `threads` threads
            engines = {"torch fp32": backbone_runner(bb, "torch", cpu, "off", 3, Path(tmp)),
                       "torch bf16": backbone_runner(bb, "torch", cpu, "bf16", 3, Path(tmp)), "onnxruntime": ort}
            best = {k: float("inf") for k in engines}
            for fn in engines.values():
                fn(x)  # warm-up (and onnxruntime's per-size check)
            for _ in range(a.rounds):
                for k, fn in engines.items():
                    t = time.perf_counter()
                    fn(x)
                    best[k] = min(best[k], time.perf_counter() - t)
            diff = float((ort(x) - engines["torch fp32"](x)).abs().max())
            print(f"{threads} thread(s): " + ", ".join(f"{k} {a.batch / v:.1f} img/s" for k, v in best.items())
                  + f" | onnxruntime / torch fp32 {best['torch fp32'] / best['onnxruntime']:.2f}x, / torch bf16 "
                  f"{best['torch bf16'] / best['onnxruntime']:.2f}x | max |diff| {diff:.2e}")
            rows.append([threads, *(round(a.batch / best[k], 1) for k in engines),
                         round(best["torch fp32"] / best["onnxruntime"], 2), f"{diff:.1e}"])
    if a.json:
        meta = resultfile.machine()
        meta["threads"] = a.threads[0] if len(a.threads) == 1 else "/".join(str(n) for n in a.threads)
        meta["notes"] = (f"the {a.arch} ImageNet backbone at {a.size} px, batch {a.batch}, channels_last, synthetic "
                         f"input; the engines alternate in each of {a.rounds} rounds and the fastest round of each is "
                         f"kept; load average {load0:.1f} -> {os.getloadavg()[0]:.1f} (1 minute, "
                         f"{os.cpu_count()} logical CPUs; above their count, other jobs shared the machine)")
        resultfile.write(Path(a.json), {
            "machine": meta, "title": "The frozen backbone's features by engine (the feature cache and head warm-up)",
            "columns": ["threads", "torch fp32 img/s", "torch bf16 img/s", "onnxruntime fp32 img/s",
                        "onnxruntime / torch fp32", "largest difference from torch fp32"],
            "rows": rows})


if __name__ == "__main__":
    main()
