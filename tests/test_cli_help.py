"""Every flag of every `interp` subcommand says what it does and what its default is."""

import argparse

from interp.cli import build_parser


def _parsers(parser: argparse.ArgumentParser, prefix: str = "interp"):
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{prefix} {name}")


def test_every_flag_has_help_with_its_default():
    missing = []
    for command, parser in _parsers(build_parser()):
        for action in parser._actions:
            if not action.option_strings or isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
                continue
            text = action.help or ""
            if action.dest.endswith("_command") or text.startswith("set --"):
                continue
            if "default" not in text and "required" not in text:
                missing.append(f"{command} {'/'.join(action.option_strings)}: {text!r}")
    assert not missing, "flags without help or default:\n" + "\n".join(missing)
