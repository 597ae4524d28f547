"""`transferlearn tune`: search the training options (Optuna), with train's options as the fixed part."""
from __future__ import annotations

from transferlearn.cli.train import add_training_args, apply_cfg_file, config_defaults, config_from_args, given_options
from transferlearn.modes import MODES
from transferlearn.tuning.space import DEFAULT_SPACES, describe_default


def _tune(args) -> int:
    from transferlearn.tuning.search import tune
    if args.resume:
        other = sorted(given_options(args._parser, args._argv) - {"resume", "trials", "timeout"})
        if other:  # the search goes on with the options and space it started with
            flags = ", ".join("--" + o.replace("_", "-") for o in other)
            args._parser.error(f"--resume {args.resume} continues that search with its own options and space; "
                               f"{flags} cannot change it (only --trials and --timeout can). Start a new search "
                               f"with --name instead.")
        summary = tune(resume=args.resume, trials=args.trials, timeout=args.timeout)
        return 130 if summary.get("stopped") else 0
    apply_cfg_file(args)
    cfg = config_from_args(args)
    if not cfg.data:
        args._parser.error("--data is required (or --resume TUNE to continue a search)")
    from transferlearn.tuning.space import load_space_file
    changes = load_space_file(args.space) if args.space else {}
    # an option typed on the command line is fixed for every trial, even where the space would search it
    typed = given_options(args._parser, args._argv)
    changes.update({k: getattr(cfg, k) for k in typed & (set(DEFAULT_SPACES[cfg.mode]) | set(changes))})
    summary = tune(cfg, trials=args.trials or 20, timeout=args.timeout, space=changes, pruner=args.pruner,
                   split=args.split, source=f"--space {args.space}" if args.space else "the search space")
    return 130 if summary.get("stopped") else 0


def add_parser(sub) -> None:
    spaces = " | ".join(f"{m}: {describe_default(m)}" for m in MODES)
    p = sub.add_parser("tune", conflict_handler="resolve",
                       help="search the training options (lr, weight decay, epochs ...) with Optuna",
                       description="A hyperparameter search: Optuna's TPE sampler over a default space per mode "
                                   "(change it with --space FILE), trials pruned on each epoch's val accuracy. Trial 0 "
                                   "is the defaults. Every trial is a run folder under TUNE/trials/; TUNE holds "
                                   "tune.csv, tune.png, the best options as args.yaml (transferlearn train --cfg "
                                   "TUNE/args.yaml) and the study (tune.db): a stopped search continues with --resume "
                                   "TUNE. Train's options fix the rest; one typed here is fixed even if the space "
                                   "searches it. Default spaces: " + spaces.replace("%", "%%"))
    p.add_argument("--mode", choices=MODES)
    p.add_argument("--trials", type=int, metavar="N",
                   help="finished trials the search should have (default 20; with --resume: those it was started "
                        "with, or more)")
    p.add_argument("--timeout", type=float, metavar="S", help="stop starting trials after S seconds")
    p.add_argument("--space", metavar="FILE",
                   help="YAML changes to the default space, e.g. `lr: {low: 1.0e-4, high: 1.0e-2, log: true}`, "
                        "`augment: [light, standard, strong]`, `epochs: 15` (fixed), `head_warmup: null` (not "
                        "searched); docs/tune.md")
    p.add_argument("--pruner", choices=("auto", "median", "asha", "none"), default="auto",
                   help="stop unpromising trials early: median (below the median of the earlier trials at the same "
                        "epoch, from the 4th trial and the first epoch on), asha (successive halving), none. auto "
                        "(default): none in last-layer mode (a trial is seconds), median otherwise")
    p.add_argument("--split", choices=("val", "test"), default="val",
                   help="val (default): report the val accuracy the options were chosen on (optimistic); test: "
                        "also evaluate the best and the defaults on DATA/test/, which the search never saw")
    add_training_args(p)
    p.add_argument("--name", help="the search's folder under --project (default tune, numbered if it exists)")
    p.add_argument("--resume", metavar="TUNE",
                   help="continue the search in folder TUNE (its options and space); finished trials are kept")
    p.set_defaults(**{**config_defaults(), "func": _tune, "_parser": p})
