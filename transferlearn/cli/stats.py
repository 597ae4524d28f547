"""`transferlearn stats DIR`: images per class and split, and image sizes.

(Meant to become `transferlearn data stats` once the `data` command group exists.)"""
from __future__ import annotations


def _stats(args) -> int:
    from pathlib import Path

    from transferlearn.datastats import dataset_stats
    out = args.out or str(Path("runs") / "stats" / Path(args.dir).resolve().name)
    dataset_stats(args.dir, out)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("stats", help="dataset statistics: images per class (per split) and image sizes",
                       description="Count images per class in train/ val/ test/ and read image sizes; writes "
                                   "class_counts.png, image_sizes.png and stats.json.")
    p.add_argument("dir", metavar="DIR", help="dataset root (train/ val/ test/) or a folder of class folders")
    p.add_argument("--out", default=None, help="output folder (default runs/stats/<name of DIR>)")
    p.set_defaults(func=_stats)
