"""`transferlearn eval`: metrics, predictions, plots and report for a checkpoint on an image folder."""
from __future__ import annotations


def _eval(args) -> int:
    from transferlearn.evaluation.evaluate import evaluate
    evaluate(args.checkpoint, args.data, split=args.split, out=args.out, embed=args.embed,
             batch_size=args.batch_size, workers=args.workers, device=args.device, top_k=args.top_k,
             num_mistakes=args.mistakes, tta=args.tta, calibrate=args.calibrate)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint: metrics, confusion matrix, mistakes, report",
                       description="Evaluate a trained checkpoint on labelled images. Writes metrics.json, "
                                   "predictions.csv, confused_pairs.csv/.json, confusion_matrix.png, pr_curves.png, "
                                   "roc_curves.png, per_class.png, mistakes.png, reliability.png, features_2d.png and "
                                   "report.html into the run folder (val split), RUN/eval-<split>/ (other splits) or --out.")
    p.add_argument("checkpoint", metavar="CHECKPOINT_OR_RUN", help="a .pt checkpoint or a run folder (uses best.pt)")
    p.add_argument("--data", required=True,
                   help="a folder of class folders, or a dataset root with train/ val/ test/ (see --split)")
    p.add_argument("--split", default="val", choices=["val", "test", "train"],
                   help="which split of a dataset root to evaluate (default val)")
    p.add_argument("--out", default=None, help="output folder (default: the run folder)")
    p.add_argument("--embed", default="auto", choices=["auto", "tsne", "umap", "none"],
                   help="2-D map of penultimate features (auto: t-SNE up to 3000 images; umap needs umap-learn)")
    p.add_argument("--top-k", type=int, default=5, help="top-k labels written per image in predictions.csv")
    p.add_argument("--mistakes", type=int, default=24, help="most confident mistakes shown in mistakes.png")
    p.add_argument("--calibrate", action="store_true",
                   help="first fit the temperature and the unknown threshold on the val split and store them in "
                        "the checkpoint (as `transferlearn calibrate`); see docs/trust.md")
    p.add_argument("--tta", choices=["none", "flip", "5crop"], default="none",
                   help="test-time augmentation: average the probabilities of the mirror image (flip) or of "
                        "five crops (5crop); costs 2x / 5x the time (default none)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", default="auto", help="data loader processes (auto: one per CPU core, max 8)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.set_defaults(func=_eval, must_exist=("checkpoint", "data"))
