"""interp's own error types, at the bottom of the import graph (this module imports nothing
of interp, so every module can raise them).

`InterpError` is what the `interp` command prints as `interp <subcommand>: error: ...`
without a traceback: bad input, described where it entered. Each subclass also derives
from the builtin exception a caller would expect (`ConfigError` is a `ValueError`), so
`except ValueError` around a config keeps working.
"""

from __future__ import annotations


class InterpError(Exception):
    """Bad input or state that interp detected and described; not a bug."""


class ConfigError(InterpError, ValueError):
    """A config field, recipe key or command-line flag has a value that is not allowed; the
    message names the field, the value and what is allowed."""


class MissingFile(InterpError, FileNotFoundError):
    """A file or directory the input names does not exist; the message names it."""


class UnknownName(InterpError, KeyError):
    """A name (zoo model, SAE run, recipe) that is not one of the allowed ones; the message lists them."""

    def __str__(self) -> str:  # KeyError's own str() quotes the message
        return str(self.args[0]) if self.args else ""


class UserError(InterpError):
    """Bad input from the command line that no config describes (e.g. two flags that exclude
    each other)."""
