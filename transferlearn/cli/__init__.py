"""The `transferlearn` command. Each subcommand lives in its own module of this package and
exposes `add_parser(subparsers)`; the subcommand's handler calls the library, never the reverse."""
from __future__ import annotations

import argparse
import importlib
import sys

# module name -> its subcommands are registered by that module's add_parser()
COMMAND_MODULES = ["train", "models", "demo", "data", "eval", "predict", "explain", "export", "serve", "visualize",
                   "convert"]


def build_parser() -> argparse.ArgumentParser:
    from transferlearn import __version__

    p = argparse.ArgumentParser(prog="transferlearn",
                                description="Train image classifiers by transfer learning: "
                                            "last-layer, all-layers or from scratch, and compare them.")
    p.add_argument("--version", action="version", version=f"transferlearn {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"transferlearn.cli.{name}").add_parser(sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args._argv = argv
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from transferlearn.data import DatasetError
    from transferlearn.models import WeightsError
    from transferlearn.runs.folders import RunInUse
    try:
        return args.func(args) or 0
    except (DatasetError, WeightsError, FileNotFoundError, ValueError, RunInUse) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted before training started; nothing to resume", file=sys.stderr)
        return 130
