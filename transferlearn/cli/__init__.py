"""The `transferlearn` command. Each subcommand lives in its own module of this package and
exposes `add_parser(subparsers)`; the subcommand's handler calls the library, never the reverse."""
from __future__ import annotations

import argparse
import importlib
import sys

# module name -> its subcommands are registered by that module's add_parser()
COMMAND_MODULES = ["train", "models", "demo", "data", "eval", "predict", "explain", "export", "serve", "visualize",
                   "convert", "lr_find", "tune"]


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
