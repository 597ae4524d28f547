"""`transferlearn data stats DIR`: images per class and split, and image sizes (registered by cli/data.py)."""
from __future__ import annotations


def _stats(args) -> int:
    from pathlib import Path

    from transferlearn.datatools.stats import dataset_stats
    out = args.out or str(Path("runs") / "stats" / Path(args.dir).resolve().name)
    dataset_stats(args.dir, out)
    return 0


def add_stats_parser(dsub) -> None:
    """`stats` under the `data` command group."""
    p = dsub.add_parser("stats", help="images per class (per split) and image sizes, as plots",
                        description="Count images per class in train/ val/ test/ and read image sizes; writes "
                                    "class_counts.png, image_sizes.png and stats.json.")
    p.add_argument("dir", metavar="DIR", help="dataset root (train/ val/ test/) or a folder of class folders")
    p.add_argument("--out", default=None, help="output folder (default runs/stats/<name of DIR>)")
    p.set_defaults(func=_stats, must_exist=("dir",))
