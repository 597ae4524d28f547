"""`transferlearn demo`: the three modes on a Fashion-MNIST subset, offline on a fresh machine."""
from __future__ import annotations


def _demo(args) -> int:
    from transferlearn.datatools.demo import run_demo
    run_demo(epochs=args.epochs, n_train=args.train_images, n_val=args.val_images, img_size=args.img_size,
             arch=args.arch, project=args.project, quiet=args.quiet)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="compare the three modes on a small Fashion-MNIST subset (offline)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--train-images", type=int, default=2000)
    p.add_argument("--val-images", type=int, default=500)
    p.add_argument("--img-size", type=int, default=64)
    p.add_argument("--arch", default="efficientnet_lite0")
    p.add_argument("--project", default="runs")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_demo)
