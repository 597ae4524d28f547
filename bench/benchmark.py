"""Benchmark: the PyTorch tutorial's training loop vs transferlearn, same data, backbone, epochs, machine.

    python bench/benchmark.py --data ../shared/data/hymenoptera_data --epochs 25 \
        --reference ../shared/bench/reference_tutorial.py --modes last-layer all-layers

Runs each configuration in its own process, one after the other (never two at once), with a cold
decode cache for ours, and prints a markdown table; also the model-only training step throughput
(synthetic tensors) against our end-to-end throughput, so the data pipeline's share shows.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import resultfile  # bench/ is on sys.path when this file runs as a script

REF_MODE = {"last-layer": "fixed", "all-layers": "finetune", "scratch": "scratch"}


def run_reference(script: str, data: str, mode: str, epochs: int) -> dict:
    p = subprocess.run([sys.executable, script, "--data", data, "--mode", REF_MODE[mode], "--epochs", str(epochs)],
                       capture_output=True, text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def run_ours(data: str, mode: str, epochs: int, arch: str, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "TRANSFERLEARN_CACHE": str(Path(tmp) / "cache")}  # cold cache: decoding counts
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "transferlearn", "train", "--data", data, "--mode", mode,
                        "--arch", arch, "--epochs", str(epochs), "--project", tmp, "--name", "run", "--quiet",
                        *extra], check=True, env=env, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        s = json.loads((Path(tmp) / "run" / "summary.json").read_text())
    s["process_seconds"] = wall
    return s


def model_step_throughput(arch: str, size: int = 224, steps: int = 20) -> float:
    """Images/s of all-layers forward+backward+step on synthetic tensors: the ceiling for end-to-end training."""
    import torch
    from step_sweep import train_step  # bench/ is on sys.path when this file runs as a script
    from transferlearn.engine import resolve_amp, tune_malloc
    tune_malloc()  # as train() does on a CPU, so the ceiling and the end-to-end number are comparable
    return train_step(arch, size, amp=resolve_amp("auto", torch.device("cpu")), steps=steps)[0]


def format_table(raw: dict, arch: str, data: str, epochs: int, threads: int | None = None) -> str:
    """The markdown table from the raw numbers. img/s counts what the tutorial counts: train and val
    images through the model per epoch, times epochs, over the loop seconds."""
    rows = []
    for mode in [m for m in raw if isinstance(raw[m], dict) and "ours" in raw[m]]:
        ref, ours = raw[mode]["reference"], raw[mode]["ours"]
        if ref:
            rows.append(f"| {mode} | tutorial loop (fp32, PIL every epoch) | {ref['best_val_acc']:.4f} | "
                        f"{ref['seconds']:.1f} | - | {ref['images_per_second']:.1f} | 1.0x |")
        speed = f"{ref['seconds'] / ours['wall_seconds']:.1f}x" if ref else "-"
        how = "feature cache" if ours["feature_cache"] else "decode cache"
        if ours.get("train_size") and ours["train_size"] != ours.get("img_size"):
            how += f", train {ours['train_size']} px / val {ours['img_size']} px"
        seen = epochs * (ours["train_images"] + ours["val_images"])
        rows.append(f"| {mode} | transferlearn ({how}, {ours['amp']}) | {ours['best_val_acc']:.4f} | "
                    f"{ours['wall_seconds']:.1f} | {ours['process_seconds']:.1f} | "
                    f"{seen / ours['wall_seconds']:.1f} | {speed} |")
    out = [f"{arch}, {Path(data).name}, {epochs} epochs, {threads or os.cpu_count()} threads. 'loop s' is the span the "
           f"tutorial times (data loading, cold cache build, feature extraction, training, validation; not imports "
           f"or model construction); 'process s' is our whole command, imports included; img/s is (train + val "
           f"images) x epochs / loop s, as the tutorial counts.\n",
           "| mode | loop | best val acc | loop s | process s | img/s | speed-up (loop s) |",
           "|---|---|---|---|---|---|---|", *rows]
    if "model_only_images_per_second" in raw:
        ours = raw["all-layers"]["ours"]
        ceiling, e2e = raw["model_only_images_per_second"], ours["epoch_images_per_second"]
        out.append(f"\nall-layers training step at {ours.get('train_size', 224)} px, synthetic tensors (model only): "
                   f"{ceiling:.1f} img/s; end to end (epochs' train phase, real data): {e2e:.1f} img/s = "
                   f"{e2e / ceiling:.0%} of model-only")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--arch", default="efficientnet_lite0")
    ap.add_argument("--modes", nargs="+", default=["last-layer", "all-layers"])
    ap.add_argument("--reference", default=str(Path(__file__).resolve().parents[2] / "shared" / "bench" /
                                                "reference_tutorial.py"))
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--json", default=None, help="where the raw numbers go (default: "
                    "bench/results/<cpu-kind>/benchmark_<dataset>_<arch>.json)")
    ap.add_argument("--from-json", default=None, help="print the table from a --json file of an earlier run")
    a = ap.parse_args()
    if a.from_json:
        raw = json.loads(Path(a.from_json).read_text(encoding="utf-8"))
        print(format_table(raw, a.arch, a.data, a.epochs, raw.get("machine", {}).get("threads")))
        return
    raw = {"machine": resultfile.machine()}
    for mode in a.modes:
        ref = None
        if not a.skip_reference:
            print(f"reference loop, {mode} ...", file=sys.stderr, flush=True)
            ref = run_reference(a.reference, a.data, mode, a.epochs)
            print(f"  reference {mode}: {json.dumps(ref)}", file=sys.stderr, flush=True)
        print(f"transferlearn, {mode} ...", file=sys.stderr, flush=True)
        ours = run_ours(a.data, mode, a.epochs, a.arch, [])
        print(f"  transferlearn {mode}: best {ours['best_val_acc']:.4f}, {ours['process_seconds']:.1f} s",
              file=sys.stderr, flush=True)
        raw[mode] = {"reference": ref, "ours": ours}
    if "all-layers" in raw:
        size = raw["all-layers"]["ours"].get("train_size", 224)
        raw["model_only_images_per_second"] = model_step_throughput(a.arch, size=size)
    bench = "benchmark" if set(a.modes) == {"last-layer", "all-layers"} else "benchmark-" + "-".join(
        m.replace("-", "") for m in a.modes)
    a.json = a.json or resultfile.result_path(bench, Path(a.data).name.removesuffix("_data"),
                                              {"efficientnet_lite0": "lite0"}.get(a.arch, a.arch), raw["machine"])
    resultfile.write(a.json, raw)
    print("\n" + format_table(raw, a.arch, a.data, a.epochs, raw["machine"]["threads"]) + f"\n\nraw numbers: {a.json}")


if __name__ == "__main__":
    main()
