"""`transferlearn lr-find`: the learning-rate range test, with train's options."""
from __future__ import annotations

from transferlearn.cli.train import add_training_args, apply_cfg_file, config_defaults, config_from_args
from transferlearn.modes import MODES


def _lr_find(args) -> int:
    from transferlearn.train.lr_find import lr_find
    apply_cfg_file(args)
    cfg = config_from_args(args)
    if not cfg.data:
        args._parser.error("--data is required")
    found = lr_find(cfg, start_lr=args.start_lr, end_lr=args.end_lr, steps=args.steps, plot=args.plot)
    print(found.summary())
    print(f"suggested lr {found.suggested:.2e} (minimum/10)\nsteepest fall {found.steep:.2e}\nplot: {args.plot}")
    print(f"train with it: transferlearn train --data {cfg.data} --mode {cfg.mode} --arch {cfg.arch} "
          f"--lr {found.suggested:.2g}   (or --lr find)")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("lr-find", help="suggest a learning rate (range test: lr from 1e-7 to 1 in ~100 steps)",
                       description="Leslie Smith's learning-rate range test, as fastai's lr_find: about 100 training "
                                   "steps with the lr growing exponentially from --start-lr to --end-lr, the smoothed "
                                   "loss recorded until it diverges. Prints two suggestions (minimum/10, which "
                                   "`train --lr find` uses, and the steepest fall) and writes the plot. Takes train's "
                                   "options; the model and every file are left as they were (no run folder).")
    p.add_argument("--mode", choices=MODES)
    p.add_argument("--start-lr", type=float, default=1e-7, help="first lr (default 1e-7)")
    p.add_argument("--end-lr", type=float, default=1.0, help="last lr (default 1)")
    p.add_argument("--steps", type=int, default=100, help="training steps at most (default 100)")
    p.add_argument("--plot", default="lr_find.png", help="where the plot goes (default lr_find.png)")
    add_training_args(p)
    p.set_defaults(**{**config_defaults(), "func": _lr_find, "_parser": p})

