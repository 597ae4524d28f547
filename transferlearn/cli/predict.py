"""`transferlearn predict CHECKPOINT PATH...`"""
from __future__ import annotations

import sys
import time


def _predict(args) -> int:
    from transferlearn.inference.outputs import (format_table, plot_name, plot_prediction, save_predictions_csv,
                                                 save_predictions_json, summarize)
    from transferlearn.inference.predict import Classifier, collect_paths

    clf = Classifier.load(args.checkpoint, backend=args.backend, device=args.device, threads=args.threads,
                          tta=args.tta, reject=args.reject, reject_below=args.reject_below)
    args.topk = max(1, min(args.topk, len(clf.classes)))
    paths, problems = collect_paths(args.paths)
    for msg in problems:
        print(f"warning: {msg}", file=sys.stderr)
    if not paths:
        print("error: no images to predict", file=sys.stderr)
        return 2

    def on_skip(s):
        print(f"\nskipping unreadable image {s.path}: {s.error}", file=sys.stderr)

    t0 = time.perf_counter()
    preds = list(clf.iter_predict(paths, topk=args.topk, batch_size=args.batch_size, workers=args.workers,
                                  progress=not args.quiet, on_skip=on_skip))
    seconds = time.perf_counter() - t0
    if not preds:
        print(f"error: none of the {len(paths)} file(s) given could be read as an image (each is named above)",
              file=sys.stderr)
        return 1
    rate = len(preds) / seconds if seconds > 0 else float("nan")

    to_stdout = args.json == "-"  # machine-readable output only
    log = (lambda *a: print(*a, file=sys.stderr)) if to_stdout else print
    if not to_stdout and (not args.quiet or not (args.csv or args.json)):
        print(format_table(preds, args.topk, max_rows=args.max_rows))
    counts = ", ".join(f"{k}: {v}" for k, v in summarize(preds).items())
    log(f"{len(preds)} images predicted in {seconds:.2f}s ({rate:.1f} img/s, backend {clf.backend.name}, "
        f"batch {args.batch_size}); {len(clf.skipped)} skipped" + (f" | {counts}" if counts else ""))
    if clf.reject:
        log(f"unknown: {sum(p.unknown for p in preds)} of {len(preds)} images ({clf.reject.describe()}"
            f"{f', temperature {clf.temperature:.3g}' if clf.temperature != 1 else ''})")
    if args.csv:
        save_predictions_csv(preds, args.csv, args.topk)
        log(f"CSV: {args.csv}")
    if args.json:
        save_predictions_json(preds, args.json, clf.skipped,
                   extra={"checkpoint": str(args.checkpoint), "backend": clf.backend.name, "classes": clf.classes,
                          "seconds": round(seconds, 3), "images_per_second": round(rate, 2),
                          "temperature": clf.temperature, "tta": clf.tta,
                          "reject": vars(clf.reject) if clf.reject else None})
        if not to_stdout:
            log(f"JSON: {args.json}")
    if args.plot:
        from pathlib import Path
        from tqdm import tqdm
        used: set[str] = set()
        out = Path(args.plot)
        for i, p in enumerate(tqdm(preds, desc="plots", unit="img", disable=args.quiet, file=sys.stderr)):
            plot_prediction(p, clf.classes, clf.preprocess, out / plot_name(p.path, i, used))
        log(f"plots: {out}/ ({len(preds)} PNG)")
    return 0 if preds else 1


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="classify images with a trained checkpoint or exported ONNX model",
                       description="Top-k labels with confidences for image files, folders (recursive) and glob "
                                   "patterns. Preprocessing is the checkpoint's own (as in validation). "
                                   "Unreadable files are reported and skipped.")
    p.add_argument("checkpoint", help="best.pt, a run folder, or an exported .onnx file")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders or glob patterns ('imgs/**/*.jpg')")
    p.add_argument("--topk", type=int, default=5, help="how many labels per image (default 5)")
    p.add_argument("--csv", default=None, metavar="FILE", help="write path, label, confidence, top-k to a CSV file")
    p.add_argument("--json", default=None, metavar="FILE", help="write predictions (and skipped files) as JSON; '-': to stdout, nothing else there")
    p.add_argument("--plot", default=None, metavar="DIR",
                   help="save per image a PNG: the image beside a bar chart of class confidences")
    p.add_argument("--backend", choices=["auto", "torch", "onnxruntime"], default="auto",
                   help="torch (the checkpoint) or onnxruntime (an .onnx file from `transferlearn export`, or the "
                        "best.onnx beside the checkpoint); auto: by file type")
    trust = p.add_argument_group("trust (docs/trust.md)")
    rej = trust.add_mutually_exclusive_group()
    rej.add_argument("--reject", choices=["auto"], default=None,
                     help="answer 'unknown' for images unlike the training data: below the score threshold that "
                          "`transferlearn calibrate` chose on val (it keeps 95%% of val images)")
    rej.add_argument("--reject-below", type=float, default=None, metavar="P",
                     help="answer 'unknown' when the top class's probability (calibrated, if the checkpoint is) "
                          "is below P, e.g. 0.6")
    trust.add_argument("--tta", choices=["none", "flip", "5crop"], default="none",
                       help="test-time augmentation: average the probabilities of the mirror image (flip, 2x the "
                            "time) or of five crops (5crop, 5x); default none")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", default="auto", help="image decoding processes (auto: one per CPU core, max 8)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (torch backend)")
    p.add_argument("--threads", type=int, default=None,
                   help="compute threads for the model (default: all cores); 1 is often faster on a busy machine")
    p.add_argument("--max-rows", type=int, default=50, help="rows of the terminal table (0: all)")
    p.add_argument("--quiet", action="store_true", help="no progress bar; no table when --csv/--json is given")
    p.set_defaults(func=_predict, must_exist=("checkpoint",))
