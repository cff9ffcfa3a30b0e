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


class HelpFormatter(argparse.HelpFormatter):
    """Help that shows every flag's default: `(default: X)` is appended to a flag's help unless
    the help already says its default or that it is required, or there is nothing to show
    (no default, None, a switch that is off unless given)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or "required" in text or not action.option_strings:
            return text
        if action.default in (None, argparse.SUPPRESS, False) or action.nargs == 0:
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """`argparse.ArgumentParser` with `HelpFormatter` by default. `add_subparsers` makes its
    subcommands' parsers of the parser's own class, so every `interp` subcommand, at any
    depth, formats its help this way."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="interp", description=interp.__doc__)
    parser.add_argument("--version", action="version", version=f"interp {interp.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the command line, for reports that state it
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
