"""The numbers of docs/trust.md: ECE before/after temperature scaling, "unknown" detection (AUROC and
FPR at 95 % TPR of msp, energy, maxlogit) and TTA's gain and cost, for trained runs.

    python bench/trust.py --run hymenoptera=RUN1 --run flowers=RUN2 --ood-run flowers \
        --ood ../shared/data/hymenoptera_data/val --fmnist /usr/share/datasets/fashion-mnist \
        --json bench/results/CPU-KIND/trust_flowers-hymenoptera_lite0.json

The result file (bench/resultfile.py: the machine, the command; by default
bench/results/<cpu-kind>/trust_<run names>_<arch>.json) is what docs/benchmarks.md's trust tables are made of.

ECE is measured honestly by 2-fold cross-fitting on val: T fitted on one half, ECE measured on the other,
both ways, then the two halves' ECE averaged (weighted by size); the in-sample figure (T fitted and
measured on all of val, as `transferlearn calibrate` reports) is given beside it.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from transferlearn.evaluation import metrics as M
from transferlearn.evaluation.calibrate import fit_temperature
from transferlearn.evaluation.evaluate import predict_folder, resolve_samples
from transferlearn.models import load_model, merge_views, score

sys.path.insert(0, str(Path(__file__).resolve().parent))  # resultfile, beside this script
import resultfile  # noqa: E402

SHORT = {"efficientnet_lite0": "lite0", "mobilenet_v2": "mnv2"}  # arch -> the name result files use
FMNIST_SET = "fashion-mnist test"


def ece(labels, logits, t):
    return M.calibration_bins(labels, merge_views(logits, t)[0], 15)["ece"]


def cross_fit_ece(labels, logits, seed=0):
    idx = np.random.default_rng(seed).permutation(len(labels))
    halves = np.array_split(idx, 2)
    before = after = 0.0
    ts = []
    for a, b in (halves, halves[::-1]):
        t = fit_temperature(logits[a], labels[a])
        ts.append(t)
        before += len(b) / len(labels) * ece(labels[b], logits[b], 1.0)
        after += len(b) / len(labels) * ece(labels[b], logits[b], t)
    return before, after, ts


def ood_metrics(s_in, s_out) -> dict:
    """In-distribution is the positive class; higher score = more in-distribution."""
    from sklearn.metrics import roc_auc_score
    y = np.r_[np.ones(len(s_in)), np.zeros(len(s_out))]
    auroc = roc_auc_score(y, np.r_[s_in, s_out])
    thr = np.quantile(s_in, 0.05)  # keeps 95 % of in-distribution images
    return {"auroc": round(float(auroc), 4), "fpr95": round(float((s_out >= thr).mean()), 4)}


def fmnist_images(src: Path, out: Path, n: int = 500) -> Path:
    """n Fashion-MNIST test images as PNG files (the OOD set)."""
    from PIL import Image

    from transferlearn.datatools.get import read_idx
    out.mkdir(parents=True, exist_ok=True)
    x = read_idx(src / "t10k-images-idx3-ubyte.gz")
    for i in np.random.default_rng(0).permutation(len(x))[:n]:
        p = out / f"fmnist_{i}.png"
        if not p.exists():
            Image.fromarray(x[i]).save(p)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", action="append", required=True, help="NAME=RUN_FOLDER")
    ap.add_argument("--ood-run", default=None, help="NAME of the run whose unknown detection is measured")
    ap.add_argument("--ood", action="append", default=[], help="a folder of OOD images (recursive)")
    ap.add_argument("--fmnist", default=None, help="folder of the Fashion-MNIST idx.gz files (500 test images used)")
    ap.add_argument("--tta", default="none,flip,5crop")
    ap.add_argument("--workers", default="1")
    ap.add_argument("--json", default=None,
                    help="the result file (default bench/results/<cpu-kind>/trust_<run names>_<arch>.json)")
    a = ap.parse_args()
    load0 = os.getloadavg()[0]
    res = {"machine": resultfile.machine(), "runs": {}}
    for name, run in (r.split("=", 1) for r in a.run):
        model, ckpt = load_model(run)
        samples, src = resolve_samples((ckpt.get("args") or {})["data"], "val", list(ckpt["classes"]), ckpt.get("args"))
        r = res["runs"][name] = {"run": run, "arch": ckpt["arch"], "mode": ckpt.get("mode"), "val": src,
                                 "images": len(samples), "tta": {}}
        for mode in a.tta.split(","):
            t0 = time.perf_counter()
            p = predict_folder(model, samples, ckpt["preprocess"], 32, a.workers, "cpu", tta=mode)
            sec = time.perf_counter() - t0
            acc = float((p.probs.argmax(1) == p.labels).mean())
            r["tta"][mode] = {"accuracy": round(acc, 4), "seconds": round(sec, 1),
                              "images_per_second": round(len(p.labels) / sec, 1),
                              "ece_t1": round(M.calibration_bins(p.labels, p.probs, 15)["ece"], 4)}
            if mode == "none":
                before, after, ts = cross_fit_ece(p.labels, p.logits)
                t_all = fit_temperature(p.logits, p.labels)
                r["calibration"] = {"ece_before_crossfit": round(before, 4), "ece_after_crossfit": round(after, 4),
                                    "t_halves": [round(t, 3) for t in ts], "t_all": round(t_all, 4),
                                    "ece_after_in_sample": round(ece(p.labels, p.logits, t_all), 4),
                                    "ece_before": round(ece(p.labels, p.logits, 1.0), 4)}
                base = p
            print(name, mode, r["tta"][mode], flush=True)
        print(name, r["calibration"], flush=True)
        if name == a.ood_run:
            sets = {f"{Path(f).parent.name}/{Path(f).name}": f for f in a.ood}
            if a.fmnist:
                sets[FMNIST_SET] = str(fmnist_images(Path(a.fmnist), Path("/tmp/trust_ood/fmnist")))
            t_all = r["calibration"]["t_all"]
            r["ood"] = []
            for name_ood, folder in sets.items():
                from transferlearn.data import list_images
                files = [(f, 0) for f in list_images(folder)]
                q = predict_folder(model, files, ckpt["preprocess"], 32, a.workers, "cpu")
                for t in (1.0, t_all):
                    pin, zin = merge_views(base.logits, t)
                    pout, zout = merge_views(q.logits, t)
                    for kind in ("msp", "energy", "maxlogit"):
                        row = {"set": name_ood, "temperature": t, "score": kind,
                               **ood_metrics(score(kind, pin, zin), score(kind, pout, zout)), "images": len(q.labels)}
                        r["ood"].append(row)
                        print(row, flush=True)
    m = res["machine"]
    m["notes"] = (f"last-layer runs' val splits through `predict_folder` ({a.workers} loader worker(s), batch 32, "
                  f"PyTorch on the CPU); ECE in 15 bins, cross-fitted on 2 random halves of val (seed 0); load "
                  f"average {load0:.1f} -> {os.getloadavg()[0]:.1f} (1 minute, {os.cpu_count()} logical CPUs; "
                  f"above their count, other jobs shared the machine and only the times' ratios mean something)")
    arch = "-".join(sorted({SHORT.get(r["arch"], r["arch"]) for r in res["runs"].values()}))
    out = Path(a.json) if a.json else resultfile.result_path("trust", "-".join(sorted(res["runs"])), arch, m)
    resultfile.write(out, res)
    print(f"raw numbers: {out}")


if __name__ == "__main__":
    main()
