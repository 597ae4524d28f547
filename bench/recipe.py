"""Recipe sweep: the same data and model trained under several option sets and seeds, one run after the
other, each in its own process; prints best val acc, the epoch it came at, epochs run and seconds.

    python bench/recipe.py --data ../shared/data/hymenoptera_data --arch efficientnet_lite0 --seeds 0 1 \
        --config "base=--epochs 5 --head-warmup 0" --config "warm=--epochs 5 --head-warmup 5" --json out.json

`--cold` gives every run a fresh decode cache (its build is then part of the time, as a first run's is);
by default the runs share one cache, which is what a sweep of accuracies needs. Accuracy does not depend on
the machine's load; quote times only from an otherwise idle machine (the script records the load average).
`--rows N` ends each run once results.csv holds N epochs (the probe counts as one): a screen of how the first
fine-tuning epochs go, under the full run's lr schedule, for a fraction of its time.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def run(data: str, arch: str, mode: str, seed: int, extra: list[str], cache: str | None,
        rows_wanted: int = 0) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "TRANSFERLEARN_CACHE": cache or str(Path(tmp) / "cache")}
        csv_path = Path(tmp) / "run" / "results.csv"
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "transferlearn", "train", "--data", data, "--mode", mode,
                                 "--arch", arch, "--seed", str(seed), "--project", tmp, "--name", "run", "--quiet",
                                 *extra], env=env, stdout=subprocess.DEVNULL)
        while proc.poll() is None:
            if rows_wanted and len(read_rows(csv_path)) >= rows_wanted:
                proc.terminate()
                proc.wait()
                break
            time.sleep(1)
        else:
            if proc.returncode:
                raise subprocess.CalledProcessError(proc.returncode, proc.args)
        wall = time.perf_counter() - t0
        rows = read_rows(csv_path)[:rows_wanted or None]
        summary = Path(tmp) / "run" / "summary.json"
        s = json.loads(summary.read_text(encoding="utf-8")) if summary.exists() else None
    val = [float(r["val_acc"]) if r["val_acc"] else None for r in rows]
    if s is None:  # ended by --rows: the best of the rows seen
        best = max(range(len(val)), key=lambda i: (val[i] or 0, -i))
        s = {"best_val_acc": val[best], "best_epoch": int(rows[best]["epoch"]), "epochs": len(rows) - 1,
             "train_seconds": sum(float(r["seconds"]) for r in rows), "head_warmup": {"val_acc": val[0]}}
    return {"seed": seed, "best_val_acc": s["best_val_acc"], "best_epoch": s["best_epoch"],
            "epochs_run": s.get("epochs_run", s["epochs"]), "train_seconds": s["train_seconds"],
            "process_seconds": round(wall, 1), "head_warmup": s.get("head_warmup"), "ended_by_rows": bool(rows_wanted),
            "val_acc": val, "epoch_seconds": [float(r["seconds"]) for r in rows], "load": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--arch", default="efficientnet_lite0")
    ap.add_argument("--mode", default="all-layers")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--config", action="append", required=True, metavar="NAME=OPTIONS")
    ap.add_argument("--cold", action="store_true", help="a fresh decode cache for every run")
    ap.add_argument("--json", default=None)
    ap.add_argument("--rows", type=int, default=0, metavar="N",
                    help="end each run once results.csv has N epochs (the probe is one); 0: run to the end")
    a = ap.parse_args()
    import torch
    out = {"data": a.data, "arch": a.arch, "mode": a.mode, "cpu": torch.backends.cpu.get_cpu_capability(),
           "threads": os.environ.get("OMP_NUM_THREADS"), "rows": a.rows or None, "configs": {}}
    shared = None if a.cold else tempfile.mkdtemp(prefix="tl_recipe_cache_")
    for spec in a.config:
        name, _, opts = spec.partition("=")
        res = [run(a.data, a.arch, a.mode, seed, shlex.split(opts), shared, a.rows) for seed in a.seeds]
        out["configs"][name] = {"options": opts, "runs": res}
        for r in res:
            print(f"{name:>14} seed {r['seed']}: best {r['best_val_acc']:.4f} @ {r['best_epoch']}/{r['epochs_run']} "
                  f"| train {r['train_seconds']:.1f}s process {r['process_seconds']:.1f}s | val {r['val_acc']} "
                  f"| warm-up {r['head_warmup'] and r['head_warmup']['val_acc']} | load {r['load']:.1f}", flush=True)
        if a.json:
            Path(a.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
