"""`transferlearn train` and `transferlearn compare`."""
from __future__ import annotations

import argparse
from dataclasses import MISSING, fields
from pathlib import Path

from transferlearn.data import AUGMENT_PRESETS, SMALL_IMAGE, default_augment
from transferlearn.models import BUILTIN_ARCHS, INITS
from transferlearn.modes import DEFAULTS, MODES
from transferlearn.train.config import WARMUP_HEADS, TrainConfig  # no torch: its defaults are the options' defaults

_DEFAULTS_HELP = "; ".join(f"{m}: {d.optimizer} lr={d.lr:g} wd={d.weight_decay:g} {d.scheduler}"
                           for m, d in DEFAULTS.items())


def config_defaults() -> dict:
    """Every TrainConfig default, as the options' defaults: each is stated once, in TrainConfig
    (test_layout checks that no option here states one of its own)."""
    return {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}


def add_training_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data", help="folder with train/<class>/ and val/<class>/ (val/ optional)")
    g.add_argument("--val-split", type=float,
                   help="fraction of train/ held out (stratified, seeded) when there is no val/ folder")
    g.add_argument("--img-size", type=int,
                   help=f"eval and inference size (stored in the checkpoint); default: the arch's (224 for most, "
                        f"32 for lenet). At {SMALL_IMAGE} or less images are used whole at native size (MNIST 28, "
                        f"CIFAR 32): no border-cutting crop, training at that size")
    g.add_argument("--train-size", type=int,
                   help="training crop size; default by mode (smaller than --img-size where the backbone trains: "
                        "faster, and 'train low, test high' keeps accuracy)")
    g.add_argument("--progressive-resize", type=int, metavar="PX",
                   help="progressive resizing: the first epoch trains on PX crops, growing linearly to --train-size "
                        "by 80%% of the epochs (cheaper early epochs); 0 (default): one size")
    g.add_argument("--batch-size", type=int)
    g.add_argument("--workers", help="data loader processes (auto: one per CPU core, max 8)")
    g.add_argument("--augment", choices=AUGMENT_PRESETS,
                   help="training augmentation: none (eval transform), light (resize + mild random crop + flip), "
                        "standard (RandomResizedCrop + flip), strong (standard + TrivialAugmentWide + RandomErasing), "
                        "pad-crop-flip (CIFAR recipe: pad size/8, random crop, flip), pad-crop (pad size/14 and "
                        f"crop, no flip: digits). Default: {default_augment(SMALL_IMAGE + 1)}; at --img-size "
                        f"{SMALL_IMAGE} or less {default_augment(SMALL_IMAGE, 1)} for --in-channels 1 (grey small "
                        f"images are mostly digits and letters, which a mirror turns into other symbols) and "
                        f"{default_augment(SMALL_IMAGE, 3)} for colour (docs/classic.md)")
    g.add_argument("--in-channels", type=int,
                   help="1 for grayscale data (decoded to L, cached and normalised as one channel; a pretrained "
                        "stem's RGB kernels are summed), 3 for colour (default). `data stats` says when every "
                        "image is grayscale")
    g.add_argument("--balance", choices=["none", "weighted-loss", "sampler"],
                   help="class imbalance: weighted-loss (loss weights inverse to class frequency) or sampler "
                        "(WeightedRandomSampler: every class drawn equally often)")
    g.add_argument("--imbalance-warn", type=float,
                   help="warn when the largest class has more than this many times the smallest's images")
    g = p.add_argument_group("model")
    g.add_argument("--arch", metavar="NAME",
                   help=f"ours: {' '.join(BUILTIN_ARCHS)}; any torchvision classification model by name "
                        "(convnext_tiny, vit_b_16, vgg16 ...); timm:NAME for timm's "
                        "(timm:vit_small_patch16_224.augreg_in21k_ft_in1k). List: `transferlearn models`")
    g.add_argument("--weights",
                   help="imagenet | none | PATH (a state_dict or transferlearn checkpoint); default by mode")
    g.add_argument("--init", choices=list(INITS),
                   help="weight init of every conv and linear layer for --mode scratch: "
                        + "; ".join(f"{k}: {v}" for k, v in INITS.items()))
    g = p.add_argument_group("optimisation", f"defaults by mode: {_DEFAULTS_HELP}")
    g.add_argument("--epochs", type=int,
                   help="default by mode: " + ", ".join(f"{m} {d.epochs}" for m, d in DEFAULTS.items()))
    g.add_argument("--optimizer", choices=["sgd", "adam", "adamw"])
    g.add_argument("--lr", type=lr_value, metavar="LR|find",
                   help="learning rate; default by mode. find: run the lr range test first (`transferlearn lr-find`) "
                        "and train with its suggestion")
    g.add_argument("--momentum", type=float, help="for sgd")
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--scheduler", choices=["step", "cosine", "none"])
    g.add_argument("--step-size", type=int, help="epochs between lr drops (step scheduler)")
    g.add_argument("--gamma", type=float, help="lr factor per drop (step scheduler)")
    g.add_argument("--label-smoothing", type=float)
    g.add_argument("--head-warmup", type=int, metavar="N",
                   help="all-layers: first train the new head for N epochs on the frozen backbone's cached features "
                        "(a linear probe, seconds), which is epoch 0 and a candidate for best.pt; then fine-tune "
                        f"every layer. Default {DEFAULTS['all-layers'].head_warmup}; 0: off (docs/recipe.md)")
    g.add_argument("--warmup-head", choices=WARMUP_HEADS,
                   help="where fine-tuning starts after the head warm-up. keep: from the probe's head (LP-FT), "
                        "with --bn-eval-epochs -1 on the features it was fitted to; the default for "
                        "efficientnet_lite0, where it was measured better (it broke MobileNetV2's fine-tuning). "
                        "reset, the default elsewhere: from the head's initial weights, exactly as without the "
                        "warm-up (docs/finetune.md)")
    g.add_argument("--bn-eval-epochs", type=int, metavar="N",
                   help="all-layers: the first N fine-tuning epochs run the backbone's BatchNorm on its running "
                        "statistics and leave them as they are (its weights still train), the features the head "
                        f"warm-up's probe was fitted to; -1: every epoch. Default "
                        f"{DEFAULTS['all-layers'].bn_eval_epochs} where fine-tuning starts from the probe's head "
                        "(--warmup-head keep), else 0: batch statistics from the first step")
    g.add_argument("--backbone-warmup", type=float, metavar="E",
                   help="all-layers: the backbone's lr rises linearly from 0 over the first E fine-tuning epochs "
                        "(the head's starts at its full lr); 0: off")
    g.add_argument("--head-lr-scale", type=float, metavar="S",
                   help="all-layers: the head trains at --lr times S (the backbone at --lr)")
    g.add_argument("--ema", type=float, metavar="E",
                   help="all-layers and scratch: validate, keep and ship an exponential moving average of the weights "
                        "over about the last E epochs' steps instead of the last step's weights (timm's --model-ema, "
                        "with its length in epochs); it starts where fine-tuning starts. Default: a tenth of "
                        "--epochs (1 at 10) where all-layers fine-tunes from the probe's head (--warmup-head keep), "
                        "else 0: off")
    g.add_argument("--freeze-stages", type=int, metavar="K",
                   help="all-layers: keep the backbone's first K stages frozen (weights and BatchNorm statistics, "
                        "as last-layer keeps all of them), so the backward pass stops early. The run's first line "
                        "says how many stages the arch has (Lite0 8, ResNet 5, torchvision's MobileNetV2 19)")
    g.add_argument("--layer-decay", type=float, metavar="D",
                   help="all-layers: discriminative learning rates; the head trains at --lr, the backbone's last "
                        "stage at lr*D, the one before at lr*D^2 ... (1: one lr for all)")
    g.add_argument("--warmup-views", type=int,
                   help="augmented views per training image for the head warm-up's features")
    g.add_argument("--patience", type=int, metavar="N",
                   help="early stopping: stop when N evaluations in a row bring no better val accuracy (the best "
                        "checkpoint is kept). Default by mode: "
                        + ", ".join(f"{m} {d.patience}" for m, d in DEFAULTS.items()) + "; 0: train every epoch")
    g.add_argument("--warmup-patience", type=int, metavar="N",
                   help="all-layers with --head-warmup: stop fine-tuning when N evaluations in a row bring no better "
                        "fine-tuning epoch and every one is below the warm-up's probe (best.pt is then the probe). "
                        f"Default {DEFAULTS['all-layers'].warmup_patience}; 0: train every epoch")
    g.add_argument("--amp", choices=["off", "bf16", "fp16", "auto"],
                   help="mixed precision. auto: bf16 autocast on CUDA GPUs that support it, fp16 on older GPUs; on a "
                        "CPU with AMX, bf16 or off, whichever trains this model faster (timed once, remembered); off on "
                        "other CPUs (AVX-512's bf16 without AMX trained 1.5x slower than fp32)")
    g = p.add_argument_group("speed")
    g.add_argument("--feature-cache", action=argparse.BooleanOptionalAction,
                   help="last-layer: run the frozen backbone once and train the head on cached features "
                        "(default: on in last-layer mode)")
    g.add_argument("--aug-views", type=int,
                   help="augmented views per training image in the feature cache")
    g.add_argument("--backbone-runtime", choices=["auto", "torch", "onnxruntime"],
                   help="engine for the frozen backbone's features (last-layer feature cache, head warm-up). auto: "
                        "onnxruntime on a CPU (about 2x PyTorch's fp32; exported once and cached), PyTorch on a "
                        "GPU or where it is not installed")
    g.add_argument("--no-cache", dest="cache", action="store_false",
                   help="decode every image every epoch instead of once into the on-disk cache")
    g.add_argument("--batch-augment", action=argparse.BooleanOptionalAction,
                   help="crop, flip and normalise whole batches on the training device, read from the decode cache "
                        "(default; torchvision's random draws, vectorised). --no-batch-augment: torchvision per "
                        "sample. --augment strong and --no-cache always run per sample (docs/speed.md)")
    g.add_argument("--compile", action="store_true",
                   help="torch.compile the trained network: faster steps after a compile of a minute or more; "
                        "pays on long GPU runs, rarely on a CPU (docs/speed.md)")
    g.add_argument("--cache-dir", help="cache folder (default: $TRANSFERLEARN_CACHE or "
                                                     "~/.cache/transferlearn)")
    g = p.add_argument_group("run")
    g.add_argument("--cfg", metavar="FILE",
                   help="options from a YAML file: a run's args.yaml, or the args.yaml `transferlearn tune` writes; "
                        "options typed on the command line win")
    g.add_argument("--seed", type=int)
    g.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    g.add_argument("--eval-interval", type=int, help="validate every N epochs")
    g.add_argument("--eval-start-epoch", type=int, help="first epoch to validate")
    g.add_argument("--project", help="parent folder of run folders")
    g.add_argument("--name", help="run folder name (auto-numbered if it exists)")
    g.add_argument("--exist-ok", action="store_true", help="reuse runs/NAME instead of numbering a new one")
    g.add_argument("--quiet", action="store_true", help="no progress bars; one log line per epoch")
    g = p.add_argument_group("resume and processes",
                             "Run under torchrun for several processes (GPUs, or CPU processes with gloo): "
                             "torchrun --standalone --nproc_per_node=N -m transferlearn train ... "
                             "(see docs/distributed.md)")
    g.add_argument("--resume", metavar="RUN|PATH|auto",
                   help="continue runs/NAME (or a last.pt) with its own options; only --epochs (raise), --device, "
                        "--workers, --quiet may be given again. auto: continue runs/NAME if it has a checkpoint, "
                        "else start it (for torchrun --max-restarts)")
    g.add_argument("--checkpoint-steps", type=int, metavar="N",
                   help="also save last.pt every N optimiser steps inside an epoch (default 0: at every epoch end, "
                        "and on Ctrl-C / SIGTERM)")
    g.add_argument("--sync-bn", action="store_true",
                   help="several processes: BatchNorm statistics over the global batch (default off: each process's "
                        "batch, as most fine-tuning recipes; sync costs a collective per BN layer)")
    g.add_argument("--dist-timeout", type=float, metavar="S",
                   help="seconds a process waits for its peers before the run fails (never hangs for ever)")


def lr_value(text: str) -> float | str:
    """--lr: a number, or `find` (the range test's suggestion)."""
    return "find" if text == "find" else float(text)


def apply_cfg_file(args: argparse.Namespace) -> None:
    """--cfg FILE: its options as if they had been typed, except those typed on the command line."""
    from transferlearn.errors import OptionsFileError
    from transferlearn.runs import read_yaml_mapping
    from transferlearn.train.config import config_fields
    if not getattr(args, "cfg", None):
        return
    path = Path(args.cfg)
    d = read_yaml_mapping(path, "--cfg", "give a YAML file of training options (a run's args.yaml)",
                          "give a mapping of options (lr: 0.001)")
    unknown = sorted(str(k) for k in set(d) - config_fields())
    if unknown:
        raise OptionsFileError(f"--cfg {path}: unknown option(s) {', '.join(unknown)}; the keys are train's options "
                               f"with _ for - (lr, weight_decay, epochs ...), as in a run's args.yaml")
    actions = {a.dest: a for a in args._parser._actions}
    typed = given_options(args._parser, args._argv)
    for k, v in d.items():
        a = actions.get(k)
        if k in typed or a is None:
            continue
        try:
            v = a.type(v) if isinstance(v, str) and a.type not in (None, str) else v
        except ValueError:
            raise OptionsFileError(f"--cfg {path}: {k}: {v!r} is not a valid value for {a.option_strings[0]}") from None
        if a.choices and v is not None and v not in a.choices:
            raise OptionsFileError(f"--cfg {path}: {k}: {v!r}; choose one of {', '.join(map(str, a.choices))}")
        setattr(args, k, v)


def config_from_args(args: argparse.Namespace):
    names = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in vars(args).items() if k in names})


def given_options(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The dests of the options actually typed on the command line (a resume may only change a few)."""
    flags = parser._option_string_actions  # argparse keeps no public map from flag to action
    given = set()
    for tok in argv:
        if not tok.startswith("--"):
            continue
        flag = tok.split("=", 1)[0]
        matches = [flags[flag]] if flag in flags else [a for f, a in flags.items() if f.startswith(flag)]
        if len({a.dest for a in matches}) == 1:
            given.add(matches[0].dest)
    return given


def _run(args, fn, **extra) -> int:
    from transferlearn.train import TrainingInterrupted
    apply_cfg_file(args)
    cfg = config_from_args(args)
    if args.resume and args.resume != "auto":
        typed = given_options(args._parser, args._argv) - {"resume"}
        kw = {k: getattr(cfg, k) for k in typed if hasattr(cfg, k)}
        call = lambda: fn(resume=args.resume, **kw)  # noqa: E731
    else:
        if not cfg.data:
            args._parser.error("--data is required (or --resume RUN to continue a run)")
        call = lambda: fn(cfg, **extra)  # noqa: E731
    from transferlearn.train import distributed
    try:
        call()
    except TrainingInterrupted as e:
        return 128 + e.signum  # 130 for Ctrl-C, 143 for SIGTERM: as if the signal had ended the process
    finally:
        distributed.shutdown()  # under torchrun: leave the process group cleanly
    return 0


def _train(args) -> int:
    from transferlearn.train import train
    return _run(args, train)


def _compare(args) -> int:
    from transferlearn.train.compare import compare
    return _run(args, compare, modes=args.modes, inits=args.inits)


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train one model in one mode",
                       description="Train a classifier on an image folder. Modes: last-layer (frozen ImageNet "
                                   "backbone, new head only), all-layers (fine-tune everything), scratch "
                                   "(random init).")
    p.add_argument("--mode", choices=MODES)
    p.add_argument("--output", help="also copy the best checkpoint to exactly this path")
    add_training_args(p)
    p.set_defaults(**{**config_defaults(), "func": _train, "_parser": p, "must_exist": ("data",)})

    p = sub.add_parser("compare", help="train all three modes and compare them",
                       description="Train last-layer, all-layers and scratch with the same data, epochs and seed; "
                                   "writes comparison.csv and comparison.png.")
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--inits", nargs="+", choices=list(INITS), default=None,
                   help="also compare weight inits: each mode once per init (runs named MODE-INIT)")
    add_training_args(p)
    p.set_defaults(**{**config_defaults(), "func": _compare, "_parser": p, "must_exist": ("data",)})
