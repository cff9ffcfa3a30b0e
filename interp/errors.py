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


class UserError(InterpError):
    """Bad input from the command line that no config describes (e.g. two flags that exclude
    each other)."""
