"""`transferlearn visualize batch|predictions`: image grids of what the model sees and says."""
from __future__ import annotations


def _batch(args) -> int:
    from transferlearn.evaluation.visualize import visualize_batch
    path = visualize_batch(args.data, args.out, n=args.n, img_size=args.img_size, arch=args.arch,
                           checkpoint=args.checkpoint, seed=args.seed, augment=args.augment,
                           in_channels=args.in_channels)
    print(f"wrote {path}")
    return 0


def _predictions(args) -> int:
    from transferlearn.evaluation.visualize import visualize_predictions
    path = visualize_predictions(args.checkpoint, args.data, out=args.out, split=args.split, n=args.n,
                                 seed=args.seed)
    print(f"wrote {path}")
    return 0


def add_parser(sub) -> None:
    from transferlearn.data import AUGMENT_PRESETS
    from transferlearn.models import BUILTIN_ARCHS

    p = sub.add_parser("visualize", help="image grids: an augmented training batch, or predictions",
                       description="Look at the data as the model sees it.")
    vsub = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    b = vsub.add_parser("batch", help="grid of augmented training images (de-normalised) with labels")
    b.add_argument("--data", required=True, help="dataset root (train/<class>/...) or a folder of class folders")
    b.add_argument("--n", type=int, default=32, help="number of images")
    b.add_argument("--img-size", type=int, default=224)
    b.add_argument("--arch", default="resnet18", metavar="NAME",
                   help=f"for its normalisation mean/std ({' '.join(BUILTIN_ARCHS)}, a torchvision name or timm:NAME)")
    b.add_argument("--in-channels", type=int, default=3, help="1 to see grayscale input as a 1-channel model does")
    b.add_argument("--augment", default=None, choices=AUGMENT_PRESETS,
                   help="augmentation preset to show (default: the checkpoint's, else training's default for "
                        "--img-size and --in-channels)")
    b.add_argument("--checkpoint", default=None,
                   help="take image size, normalisation and augmentation preset from this checkpoint")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--out", default="runs/visualize/batch.png", help="PNG to write")
    b.set_defaults(func=_batch, must_exist=("data",))
    q = vsub.add_parser("predictions", help="val images with predicted/true labels, mistakes in red")
    q.add_argument("checkpoint", metavar="CHECKPOINT_OR_RUN")
    q.add_argument("--data", required=True, help="dataset root or a folder of class folders")
    q.add_argument("--split", default="val", choices=["val", "test", "train"])
    q.add_argument("--n", type=int, default=32, help="number of images (a random, seeded sample)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--out", default=None, help="PNG to write (default: RUN/predictions.png)")
    q.set_defaults(func=_predictions, must_exist=("checkpoint", "data"))
