"""The `transferlearn` command. Each subcommand lives in its own module of this package and
exposes `add_parser(subparsers)`; the subcommand's handler calls the library, never the reverse."""
from __future__ import annotations

import argparse
import importlib
import sys

# module name -> its subcommands are registered by that module's add_parser()
COMMAND_MODULES = ["train", "models", "demo", "data", "eval", "predict", "explain", "export", "serve", "visualize",
                   "convert", "info", "calibrate", "lr_find", "tune"]


class VersionAction(argparse.Action):
    """`--version`: ours, torch's and torchvision's versions, read from metadata only when asked (no torch import)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from transferlearn.cli.info import version_line
        print(version_line())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="transferlearn",
                                description="Train image classifiers by transfer learning: "
                                            "last-layer, all-layers or from scratch, and compare them.")
    p.add_argument("--version", action=VersionAction,
                   help="print transferlearn's, torch's and torchvision's versions and exit (more: transferlearn info)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"transferlearn.cli.{name}").add_parser(sub)
    return p


# options that name something on disk (a subcommand lists its own in set_defaults(must_exist=(...))): checked before
# the command imports torch, so a mistyped path fails in a fraction of a second, by name, with what to give instead
PATHS = {"data": ("data folder", "give the folder that holds train/<class>/ (and val/<class>/)"),
         "checkpoint": ("checkpoint or run folder", "give a run folder such as runs/train, or its best.pt"),
         "dir": ("folder", "give an existing dataset folder"),
         "src": ("input", "give an existing file or folder"),
         "from_path": ("--from file", "give the downloaded archive or folder")}


def missing_path(args) -> str | None:
    """The first path option of `args` that does not exist, as an error and a hint; None if all are there."""
    from pathlib import Path
    for dest in getattr(args, "must_exist", ()):
        value = getattr(args, dest, None)
        if value and not Path(value).exists():
            noun, hint = PATHS[dest]
            return f"error: {noun} {value} does not exist\nhint: {hint}"
    return None


def main(argv=None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args._argv = argv
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if (missing := missing_path(args)) is not None:
        print(missing, file=sys.stderr)
        return 2
    from transferlearn.cli.extras import missing_extra
    from transferlearn.errors import TransferlearnError
    try:
        return args.func(args) or 0
    except TransferlearnError as e:  # ours: the message says what is wrong and how to fix it
        print(f"error: {e}", file=sys.stderr)
        if e.hint:
            print(f"hint: {e.hint}", file=sys.stderr)
        return e.exit_code
    except (FileNotFoundError, ValueError) as e:  # a path that is not there; a value the libraries refuse
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:  # an optional package (pip extra) is missing; anything else is a bug
        return missing_extra(e)
    except KeyboardInterrupt:
        print("\ninterrupted before training started; nothing to resume", file=sys.stderr)
        return 130
