"""Throughput of `predict` with the PyTorch and onnxruntime backends on the same images.

    python bench/predict_backends.py runs/last-layer /path/to/val [--onnx runs/last-layer/best.onnx]
        [--batch-size 32] [--workers auto] [--threads 1] [--repeats 3]

Times the whole pipeline as `transferlearn predict` runs it (decode, preprocess, batch, model), after
loading the model, alternating backends; prints the median img/s of each and whether the labels agree.
"""
from __future__ import annotations

import argparse
import statistics
import time


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("images", nargs="+")
    p.add_argument("--onnx", default=None, help="the exported model (default: best.onnx beside the checkpoint)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", default="auto")
    p.add_argument("--threads", type=int, default=None, help="compute threads for both backends")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)

    from transferlearn import Classifier
    from transferlearn.predict import collect_paths
    paths, _ = collect_paths(args.images)
    clfs = {"torch": Classifier.load(args.checkpoint, backend="torch", threads=args.threads),
            "onnxruntime": Classifier.load(args.onnx or args.checkpoint, backend="onnxruntime",
                                           threads=args.threads)}
    rates: dict[str, list[float]] = {k: [] for k in clfs}
    labels = {}
    for name, clf in clfs.items():  # warm-up: first-call allocations, file cache
        clf.predict(paths[: args.batch_size], batch_size=args.batch_size, workers=0)
    for _ in range(args.repeats):
        for name, clf in clfs.items():
            t0 = time.perf_counter()
            preds = clf.predict(paths, batch_size=args.batch_size, workers=args.workers)
            rates[name].append(len(preds) / (time.perf_counter() - t0))
            labels[name] = [(q.path, q.label, q.confidence) for q in preds]
    agree = sum(a[1] == b[1] for a, b in zip(labels["torch"], labels["onnxruntime"]))
    diff = max(abs(a[2] - b[2]) for a, b in zip(labels["torch"], labels["onnxruntime"]))
    print(f"{len(paths)} images, batch {args.batch_size}, workers {args.workers}, threads {args.threads or 'default'}, "
          f"{args.repeats} repeats")
    for name, r in rates.items():
        print(f"  {name:12s} median {statistics.median(r):7.1f} img/s   (runs: {', '.join(f'{x:.1f}' for x in r)})")
    print(f"  labels agree on {agree}/{len(paths)}; max |confidence difference| {diff:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
