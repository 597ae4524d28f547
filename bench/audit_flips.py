"""How well `transferlearn data audit` finds wrong labels: plant known flips in a copy of a dataset, then score.

    python bench/audit_flips.py make /work/shared/data/flower_photos /tmp/flowers5 --frac 0.05 --seed 0
    transferlearn data audit /tmp/flowers5 --out /tmp/flowers5-audit
    python bench/audit_flips.py score /tmp/flowers5-flipped.csv /tmp/flowers5-audit/label_issues.csv
    python bench/audit_flips.py probes /tmp/flowers5 /tmp/flowers5-flipped.csv --c 1,3,10 --folds 5

`make` hard-links every file of SRC into DST (symlinks where hard links are impossible; SRC is never written)
with `frac` of them filed under another class, drawn with `seed`; the truth goes to DST-flipped.csv.
`score`: precision and recall of the audit's whole list and of its top N (N = the number planted).
`probes`: the audit's features once, then the out-of-fold probe per C (unit-length features + logistic
regression), with its log loss on the given labels (what a user without the truth can see) and its top-N recall.
"""
from __future__ import annotations

import argparse
import csv
import os
import random
from pathlib import Path


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


def score(truth_csv: Path, issues_csv: Path) -> None:
    truth = truth_of(truth_csv)
    with open(issues_csv, encoding="utf-8-sig") as f:
        flagged = [r["path"] for r in csv.DictReader(f)]
    n, hits = len(truth), sum(p in truth for p in flagged)
    top = sum(p in truth for p in flagged[:n])
    print(f"planted {n}; flagged {len(flagged)}: precision {hits / max(len(flagged), 1):.3f}, recall {hits / n:.3f}")
    print(f"top-{n}: precision {top / max(min(n, len(flagged)), 1):.3f}, recall {top / n:.3f}")


def probes(data: Path, truth_csv: Path, cs: list[float], folds: int) -> None:
    import numpy as np
    import torch
    from sklearn.metrics import log_loss

    from transferlearn.data import preprocess_config
    from transferlearn.datatools.audit import DEFAULT_ARCH, dataset_samples, label_issues, out_of_fold_probs, rel
    from transferlearn.models import create_model, get_spec
    from transferlearn.train.config import TrainConfig
    from transferlearn.train.features import image_features
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
    n = int(planted.sum())
    for c in cs:
        probs = out_of_fold_probs(feats, labels, folds, 0, c)
        found = label_issues(labels, probs)
        print(f"C={c:g} K={folds}: out-of-fold accuracy {np.mean(probs.argmax(1) == labels):.3f}, log loss "
              f"{log_loss(labels, probs):.3f}; flagged {len(found)}: precision {planted[found].mean():.3f}, recall "
              f"{planted[found].sum() / n:.3f}; top-{n} recall {planted[found[:n]].sum() / n:.3f}", flush=True)


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
    b = sub.add_parser("probes")
    b.add_argument("data", type=Path)
    b.add_argument("truth", type=Path)
    b.add_argument("--c", default="1,3,10")
    b.add_argument("--folds", type=int, default=5)
    a = p.parse_args()
    if a.what == "make":
        make(a.src, a.dst, a.frac, a.seed)
    elif a.what == "score":
        score(a.truth, a.issues)
    else:
        probes(a.data, a.truth, [float(c) for c in a.c.split(",")], a.folds)


if __name__ == "__main__":
    main()
