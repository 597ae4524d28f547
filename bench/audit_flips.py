"""How well `transferlearn data audit` finds wrong labels: plant known flips in a copy of a dataset, then score.

    python bench/audit_flips.py make /work/shared/data/flower_photos /tmp/flowers5 --frac 0.05 --seed 0
    transferlearn data audit /tmp/flowers5 --out /tmp/flowers5-audit
    python bench/audit_flips.py score /tmp/flowers5-flipped.csv /tmp/flowers5-audit/label_issues.csv \
        --json bench/results/CPU-KIND/audit-flips_flowers5_lite0.json
    python bench/audit_flips.py probes /tmp/flowers5 /tmp/flowers5-flipped.csv --c 1,3,10 --folds 10 \
        --json bench/results/CPU-KIND/audit-probes-k10_flowers5_lite0.json

`make` hard-links every file of SRC into DST (symlinks where hard links are impossible; SRC is never written)
with `frac` of them filed under another class, drawn with `seed`; the truth goes to DST-flipped.csv.
`score`: precision and recall of the audit's whole list and of its top N (N = the number planted).
`probes`: the audit's features once, then the out-of-fold probe per C (unit-length features + logistic
regression), with its log loss on the given labels (what a user without the truth can see) and its top-N recall.
`--json PATH` also writes the table as a result file for docs/benchmarks.md (bench/resultfile.py: the machine, the
command); `score` takes the audit's folds, backbone and time from audit.json beside the CSV.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # resultfile, beside this script


def make(src: Path, dst: Path, frac: float, seed: int) -> None:
    rng = random.Random(seed)
    files = sorted(p for p in src.rglob("*") if p.is_file())
    classes = sorted({p.parent.name for p in files})
    flip = set(rng.sample(range(len(files)), round(frac * len(files))))
    rows = []
    for i, p in enumerate(files):
        rel = p.relative_to(src)
        cls = rel.parts[-2]
        new = rng.choice([c for c in classes if c != cls]) if i in flip else cls
        out = dst.joinpath(*rel.parts[:-2], new, rel.name)
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(p, out)
        except OSError:
            os.symlink(p, out)
        if i in flip:
            rows.append({"path": out.relative_to(dst).as_posix(), "true": cls, "given": new})
    with open(dst.parent / f"{dst.name}-flipped.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, ["path", "true", "given"])
        w.writeheader()
        w.writerows(rows)
    print(f"{len(files)} files, {len(rows)} flipped; truth in {dst.parent / f'{dst.name}-flipped.csv'}")


def truth_of(path: Path) -> set[str]:
    with open(path, encoding="utf-8") as f:
        return {r["path"] for r in csv.DictReader(f)}


def score(truth_csv: Path, issues_csv: Path, json_path: Path | None = None) -> dict:
    truth = truth_of(truth_csv)
    with open(issues_csv, encoding="utf-8-sig") as f:
        flagged = [r["path"] for r in csv.DictReader(f)]
    n, hits = len(truth), sum(p in truth for p in flagged)
    top = sum(p in truth for p in flagged[:n])
    res = {"planted": n, "flagged": len(flagged), "precision": round(hits / max(len(flagged), 1), 3),
           "recall": round(hits / n, 3), "top_n": min(n, len(flagged)),
           "top_n_precision": round(top / max(min(n, len(flagged)), 1), 3), "top_n_recall": round(top / n, 3)}
    print(f"planted {n}; flagged {len(flagged)}: precision {res['precision']:.3f}, recall {res['recall']:.3f}")
    print(f"top-{n}: precision {res['top_n_precision']:.3f}, recall {res['top_n_recall']:.3f}")
    if json_path:
        write_score(json_path, res, Path(issues_csv).parent / "audit.json")
    return res


def write_score(json_path: Path, res: dict, audit_json: Path) -> None:
    """The scores as a result file; the audit's own settings (folds, backbone, time) from its audit.json."""
    import resultfile
    audit = json.loads(audit_json.read_text(encoding="utf-8")) if audit_json.is_file() else {}
    keep = ("images", "arch", "features", "folds", "probe", "probe_accuracy", "feature_seconds", "seconds")
    audit = {k: audit[k] for k in keep if k in audit}
    meta = resultfile.machine()
    a = {k: audit.get(k, "?") for k in keep}
    meta["notes"] = (f"{res['planted']} planted flips in {a['images']} images; the audit: {a['folds']} folds, "
                     f"{audit.get('probe', 'probe not recorded')} on {a['arch']} features, out-of-fold probe accuracy "
                     f"{a['probe_accuracy']} on the noisy labels, {a['seconds']} s ({a['feature_seconds']} s of it "
                     f"the features)")
    folds = audit.get("folds", "not recorded")
    resultfile.write(Path(json_path), {
        "machine": meta, "audit": audit, "score": res,
        "title": "Label audit: planted label flips found by `transferlearn data audit`",
        "columns": ["list", "folds", "listed", "precision", "recall"],
        "rows": [[f"top N (N = {res['planted']} planted)", folds, res["top_n"], res["top_n_precision"],
                  res["top_n_recall"]],
                 ["everything cleanlab flagged", folds, res["flagged"], res["precision"], res["recall"]]]})


def probes(data: Path, truth_csv: Path, cs: list[float], folds: int,
           json_path: Path | None = None) -> list[list]:
    import time

    import numpy as np
    import torch
    from sklearn.metrics import log_loss

    from transferlearn.data import preprocess_config
    from transferlearn.datatools.audit import DEFAULT_ARCH, dataset_samples, label_issues, out_of_fold_probs, rel
    from transferlearn.models import create_model, get_spec
    from transferlearn.train.config import TrainConfig
    from transferlearn.train.features import image_features
    load0, t0 = os.getloadavg()[0], time.perf_counter()
    root, classes, samples = dataset_samples(data)
    spec = get_spec(DEFAULT_ARCH)
    pre = preprocess_config(spec.input_size, spec.mean, spec.std, crop_pct=spec.crop_pct,
                            interpolation=spec.interpolation)
    cfg = TrainConfig(data=str(data), arch=DEFAULT_ARCH, mode="last-layer", quiet=True).resolved()
    feats, pos = image_features(create_model(DEFAULT_ARCH, len(classes)).eval().backbone, samples, pre, cfg,
                                torch.device("cpu"))
    feats, labels = feats.numpy().astype(np.float64), np.array([samples[i][1] for i in pos])
    truth = truth_of(truth_csv)
    planted = np.array([rel(samples[i][0], root) in truth for i in pos])
    n, t_feat = int(planted.sum()), time.perf_counter() - t0
    rows = []
    for c in cs:
        probs = out_of_fold_probs(feats, labels, folds, 0, c)
        found = label_issues(labels, probs)
        row = [c, folds, np.mean(probs.argmax(1) == labels), log_loss(labels, probs), len(found),
               planted[found].mean() if len(found) else 0.0, planted[found].sum() / n, planted[found[:n]].sum() / n]
        rows.append([float(v) if isinstance(v, np.floating) else v for v in row])
        print(f"C={c:g} K={folds}: out-of-fold accuracy {row[2]:.3f}, log loss {row[3]:.3f}; flagged {row[4]}: "
              f"precision {row[5]:.3f}, recall {row[6]:.3f}; top-{n} recall {row[7]:.3f}", flush=True)
    if json_path:
        import resultfile
        meta = resultfile.machine()
        meta["notes"] = (f"{n} planted flips in {len(labels)} images (the copy `bench/audit_flips.py make` wrote); "
                         f"{DEFAULT_ARCH} features once "
                         f"({t_feat:.0f} s), then the out-of-fold probes (unit-length features + logistic regression) "
                         f"per C, the audit's cleanlab filter on their probabilities; load average {load0:.1f} -> "
                         f"{os.getloadavg()[0]:.1f} (1 minute, {os.cpu_count()} logical CPUs)")
        resultfile.write(Path(json_path), {
            "machine": meta, "planted": n, "images": len(labels),
            "title": f"Label audit's probe by C, {folds} folds: planted flips found",
            "columns": PROBE_COLUMNS,
            "rows": [[f"{r[0]:g}", r[1], *(round(v, 3) for v in r[2:4]), r[4], *(round(v, 3) for v in r[5:])]
                     for r in rows]})
    return rows


PROBE_COLUMNS = ["C", "folds", "out-of-fold accuracy", "log loss (given labels)", "flagged", "precision", "recall",
                 "top-N recall"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    m = sub.add_parser("make")
    m.add_argument("src", type=Path)
    m.add_argument("dst", type=Path)
    m.add_argument("--frac", type=float, default=0.05)
    m.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("score")
    s.add_argument("truth", type=Path)
    s.add_argument("issues", type=Path)
    s.add_argument("--json", type=Path, default=None, help="also write a result file (bench/results/...)")
    b = sub.add_parser("probes")
    b.add_argument("data", type=Path)
    b.add_argument("truth", type=Path)
    b.add_argument("--c", default="1,3,10")
    b.add_argument("--folds", type=int, default=10, help="K, as `data audit --folds` (default 10, as the audit's)")
    b.add_argument("--json", type=Path, default=None, help="also write a result file (bench/results/...)")
    a = p.parse_args()
    if a.what == "make":
        make(a.src, a.dst, a.frac, a.seed)
    elif a.what == "score":
        score(a.truth, a.issues, a.json)
    else:
        probes(a.data, a.truth, [float(c) for c in a.c.split(",")], a.folds, a.json)


if __name__ == "__main__":
    main()
