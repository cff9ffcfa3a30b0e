"""Every flag of every `interp` subcommand says what it does, and its help shows its default."""

import argparse
import re

import pytest

from interp.cli import HelpFormatter, Parser, build_parser

def _parsers(parser: argparse.ArgumentParser, prefix: str = "interp"):
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{prefix} {name}")


def _flags(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if action.option_strings and not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield action


def _shown(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The help text of `action` as `interp ... --help` prints it."""
    return parser._get_formatter()._expand_help(action)


def without_help(parser: argparse.ArgumentParser, command: str) -> list[str]:
    """Flags whose help says nothing but its default (or nothing at all)."""
    missing = []
    for action in _flags(parser):
        text = action.help if isinstance(action.help, str) and action.help != argparse.SUPPRESS else ""
        said = re.sub(r"\((default|required)\b[^)]*\)?", "", text).strip(" .,;")
        if len(said) < 3:
            missing.append(f"{command} {'/'.join(action.option_strings)}: {text!r}")
    return missing


def test_every_subcommand_formats_help_with_defaults():
    wrong = [command for command, parser in _parsers(build_parser()) if parser.formatter_class is not HelpFormatter]
    assert not wrong, f"parsers without interp.cli.HelpFormatter: {wrong}"


def test_every_flag_has_a_help_line():
    missing = [m for command, parser in _parsers(build_parser()) for m in without_help(parser, command)]
    assert not missing, "flags without a help line:\n" + "\n".join(missing)


def test_every_flag_with_a_default_shows_it_and_none_is_not_shown():
    missing, noise = [], []
    for command, parser in _parsers(build_parser()):
        for action in _flags(parser):
            shown = _shown(parser, action)
            if "(default: None)" in shown:
                noise.append(f"{command} {action.option_strings[0]}")
            switch = action.nargs == 0  # store_true / store_const: the flag itself is the value
            given = action.default not in (None, argparse.SUPPRESS)
            if not switch and given and "default" not in shown:
                missing.append(f"{command} {action.option_strings[0]}: {shown!r}")
            if action.default is argparse.SUPPRESS and not switch and not re.search("default|required", shown):
                missing.append(f"{command} {action.option_strings[0]} (a config flag): {shown!r}")
    assert not missing, "flags whose help hides their default:\n" + "\n".join(missing)
    assert not noise, f"flags printing '(default: None)': {noise}"


def test_the_checks_catch_a_flag_without_help():
    parser = Parser(prog="t")
    parser.add_argument("--quiet-flag")
    parser.add_argument("--only-default", default=3, help="(default: 3)")
    parser.add_argument("--fine", default=3, help="how many")
    assert [m.split(":")[0] for m in without_help(parser, "t")] == ["t --quiet-flag", "t --only-default"]
    fine = next(a for a in parser._actions if a.dest == "fine")
    assert _shown(parser, fine) == "how many (default: 3)"
    none = next(a for a in parser._actions if a.dest == "quiet_flag")
    assert "None" not in _shown(parser, none)


@pytest.mark.parametrize("command", [["steer", "generate"], ["patch", "ioi"], ["moe", "scan"], ["cache"]])
def test_help_prints_defaults(command, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([*command, "--help"])
    out = capsys.readouterr().out
    assert "(default: zoo-" in out and "(default: None)" not in out
