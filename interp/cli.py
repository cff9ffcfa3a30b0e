"""The `interp` command. Thin: every subcommand parses its flags and calls one library
function. Each package contributes its subcommands through a `register(subparsers)`
function in its own `cli` module, listed in `COMMAND_MODULES`."""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
import warnings

import interp
from interp.errors import InterpError

COMMAND_MODULES = ("interp.zoo.cli", "interp.sae.cli", "interp.cache.cli", "interp.moe.cli", "interp.patching.cli",
                   "interp.steering.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="interp", description=interp.__doc__)
    parser.add_argument("--version", action="version", version=f"interp {interp.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    command = " ".join(w for w in (args.command, _subcommand(args)) if w)
    try:
        return args.func(args) or 0
    # interp's own errors (ConfigError, ModelLoadError, StoreError, ...) and the ValueErrors its checks raise:
    # bad input, described where it entered
    except (InterpError, ValueError) as e:
        print(f"interp {command}: error: {e}", file=sys.stderr)
        return 2
    except Exception:  # anything else is a bug in interp, not bad input: show where
        traceback.print_exc()
        print(f"interp {command}: internal error (a bug in interp, not in your input): please report it with the "
              "command line and the traceback above", file=sys.stderr)
        return 1


def _subcommand(args: argparse.Namespace) -> str | None:
    """The second word of a two-word command (`patch pairs`, `cache verify`), if there is one."""
    return getattr(args, f"{args.command.replace('-', '_')}_command", None)


if __name__ == "__main__":
    sys.exit(main())
