"""Config dataclasses: one mechanism that checks every field against its annotation, reads
the docstring written under each field, builds configs from TOML tables and turns their
fields into command-line flags (help text and defaults come from the dataclass).

    @dataclass(frozen=True)
    class EvalConfig:
        n_prose: int = 50
        \"\"\"Held-out prose paragraphs for perplexity.\"\"\"

        def __post_init__(self):
            check_fields(self)    # types from the annotations: bool is not int, str is not float
            ...                   # then ranges and rules between fields

    cfg = from_dict(EvalConfig, table, where="recipe.toml [eval]")
    add_flags(parser, EvalConfig)            # --n-prose N   Held-out prose ... (default: 50)
    cfg = replace(cfg, **flag_values(args, EvalConfig))

Supported annotations: int, float (an int is accepted and stored as float), bool, str,
`Literal[...]`, `X | None`, `tuple[X, ...]`, dict, a nested config dataclass (given as a
table) and `torch.dtype` (given by name: "float32"; `to_dict` writes the name back).
Strings are only what files and flags hold; the API takes the typed value.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import textwrap
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, Union

from interp.errors import ConfigError

DTYPE_NAMES = ("float32", "bfloat16", "float16", "float64")
"""Names a `torch.dtype` field accepts in files and flags."""


# --- field docs and types -------------------------------------------------------------------
@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """{field name: the docstring written under it} for a dataclass and its dataclass bases."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass) or klass is object:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):  # no source (e.g. a class built at run time)
            continue
        body = tree.body[0].body
        for node, nxt in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str)):
                docs[node.target.id] = inspect.cleandoc(nxt.value.value)
    return docs


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_optional(tp) -> tuple[bool, Any]:
    """(whether None is allowed, the annotation without None)."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) < len(typing.get_args(tp)):
            return True, args[0] if len(args) == 1 else Union[tuple(args)]
    return False, tp


def describe(tp) -> str:
    """What a value of annotation `tp` must be, in words (for error messages)."""
    optional, inner = _is_optional(tp)
    if optional:
        return f"None or {describe(inner)}"
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(describe(a) for a in typing.get_args(tp))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            plural = {int: "integers", float: "numbers", str: "strings", bool: "true/false values"}
            return f"a list of {plural[args[0]]}" if args[0] in plural else f"a list, each {describe(args[0])}"
        return f"a list of {len(args)} values ({', '.join(describe(a) for a in args)})" if args else "a list"
    if _is_dtype(tp):
        return "a dtype name: " + ", ".join(DTYPE_NAMES)
    if dataclasses.is_dataclass(tp):
        return f"a table of {tp.__name__} fields"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            dict: "a table"}.get(tp, f"a {getattr(tp, '__name__', tp)}")


def _is_dtype(tp) -> bool:
    return getattr(tp, "__module__", "") == "torch" and getattr(tp, "__name__", "") == "dtype"


class _Mismatch(Exception):
    pass


def _coerce(tp, value):
    """`value` checked against annotation `tp`, converted where the file form differs
    (list -> tuple, int -> float, dtype name -> torch.dtype, table -> dataclass)."""
    if tp is Any:
        return value
    optional, inner = _is_optional(tp)
    if optional:
        return None if value is None else _coerce(inner, value)
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(arg, value)
            except _Mismatch:
                pass
        raise _Mismatch
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in typing.get_args(tp)):
            return value
        raise _Mismatch
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v) for v in value)
        if args and len(args) != len(value):
            raise _Mismatch
        return tuple(_coerce(a, v) for a, v in zip(args, value)) if args else tuple(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch
    if _is_dtype(tp):
        import torch

        if isinstance(value, torch.dtype):
            return value
        if isinstance(value, str) and value.removeprefix("torch.") in DTYPE_NAMES:
            return getattr(torch, value.removeprefix("torch."))
        raise _Mismatch
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, Mapping):
            return from_dict(tp, value)
        raise _Mismatch
    if origin is dict or tp is dict:
        if isinstance(value, Mapping):
            return dict(value)
        raise _Mismatch
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise _Mismatch
    return value  # an annotation this module does not check (e.g. a Protocol)


def check_value(tp, value, field: str):
    """`value` converted to annotation `tp`, or a `ConfigError` naming `field`."""
    try:
        return _coerce(tp, value)
    except _Mismatch:
        raise ConfigError(f"{field}={value!r} is not allowed: {describe(tp)}") from None


def check_fields(obj) -> None:
    """Check every field of the dataclass instance `obj` against its annotation, converting
    in place where the file form differs (frozen dataclasses too). Call it first in
    `__post_init__`; range checks and rules between fields follow it."""
    cls = type(obj)
    hints = _hints(cls)
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        checked = check_value(hints[f.name], value, f"{cls.__name__}.{f.name}")
        if checked is not value:
            object.__setattr__(obj, f.name, checked)


def check_positive(obj, *names: str) -> None:
    """A `ConfigError` naming the first of the fields `names` of `obj` that is not > 0."""
    for name in names:
        value = getattr(obj, name)
        if not value > 0:
            raise ConfigError(f"{type(obj).__name__}.{name}={value!r} is not allowed: a positive number")


# --- tables and files -----------------------------------------------------------------------
def from_dict(cls: type, values: Mapping, where: str | None = None, **extra):
    """Build config `cls` from a TOML/JSON table plus `extra` fields. Unknown keys, missing
    fields and bad values fail with a `ConfigError` that starts with `where` (e.g. the file
    and table) and names the allowed keys."""
    prefix = f"{where}: " if where else ""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{prefix}must be a table of {cls.__name__} fields, got {type(values).__name__} "
                          f"{values!r}")
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(f"{prefix}unknown key(s) {unknown} for {cls.__name__}; allowed: {', '.join(names)}")
    kwargs = {**values, **extra}
    missing = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in kwargs
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{prefix}{cls.__name__} needs the field(s) {missing}")
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{prefix}{e}") from None


def read_toml(path: str | Path) -> dict:
    """The table of a TOML file; a missing file, non-UTF-8 bytes or bad TOML is a
    `ConfigError` naming the file."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such recipe file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a TOML recipe file") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a TOML recipe (not UTF-8 text: {e.reason} at byte {e.start})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None


def to_dict(obj) -> Any:
    """A config (or a value inside one) as JSON/TOML-ready data: dataclasses -> dicts,
    tuples -> lists, torch dtypes -> their names."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: to_dict(v) for k, v in obj.items()}
    if type(obj).__module__ == "torch" and type(obj).__name__ == "dtype":
        return str(obj).removeprefix("torch.")
    return obj


# --- command-line flags ---------------------------------------------------------------------
def _none_or(parse):
    def convert(text: str):
        return None if text.lower() == "none" else parse(text)
    convert.__name__ = getattr(parse, "__name__", "value")  # argparse names it in "invalid ... value"
    return convert


_METAVARS = {int: "N", float: "X", str: "TEXT"}


def _flag_kwargs(tp) -> dict:
    optional, inner = _is_optional(tp)
    origin = typing.get_origin(inner)
    if inner is bool and not optional:
        return {"action": argparse.BooleanOptionalAction}
    if origin is Literal:
        choices = list(typing.get_args(inner))
        return {"choices": choices + ([None] if optional else []),
                "type": _none_or(type(choices[0])) if optional else type(choices[0])}
    if _is_dtype(inner):
        return {"choices": list(DTYPE_NAMES)}
    if origin is tuple:
        args = typing.get_args(inner)
        item = args[0] if args else str
        return {"nargs": "+", "type": item, "metavar": _METAVARS.get(item, "VALUE")}
    if inner in (int, float, str):
        return {"type": _none_or(inner) if optional else inner, "metavar": _METAVARS[inner]}
    raise TypeError(f"no command-line form for a field of type {tp!r}: exclude it from the flags")


def _show_default(value) -> str:
    value = to_dict(value)
    if isinstance(value, list):
        return " ".join(map(str, value)) if value else "()"
    if isinstance(value, bool):
        return "on" if value else "off"
    return "none" if value is None else str(value)


def add_flags(parser, cls: type, *, group: str | None = None, defaults=None,
              include: Iterable[str] | None = None, exclude: Iterable[str] = (),
              flags: Mapping[str, str | tuple[str, ...]] | None = None,
              default_text: Mapping[str, str] | None = None) -> None:
    """Add one flag per field of config `cls` to an argparse parser: `--field-name`, help =
    the field's docstring and its default, type and choices from the annotation. Values are
    only set when given (read them with `flag_values`).

    `group`: namespace of the flags' destinations (default: the class name), so two configs
    with a field of the same name can share a parser. `defaults`: an instance or mapping
    whose values the help shows instead of the dataclass defaults. `flags`: other flag names
    for some fields (e.g. {"seed": "--sae-seed"}). `default_text`: help text for a default
    that is not a plain value (e.g. "the last 4 layers").
    """
    docs, hints = field_docs(cls), _hints(cls)
    include = None if include is None else set(include)
    flags, default_text = flags or {}, default_text or {}
    for f in dataclasses.fields(cls):
        if not f.init or f.name in exclude or (include is not None and f.name not in include):
            continue
        if isinstance(defaults, Mapping) and f.name in defaults:
            default = defaults[f.name]
        elif defaults is not None and not isinstance(defaults, Mapping):
            default = getattr(defaults, f.name)
        elif f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        doc = docs.get(f.name, "").split("\n\n")[0].replace("\n", " ")
        shown = default_text.get(f.name) or ("required" if default is dataclasses.MISSING else _show_default(default))
        names = flags.get(f.name, "--" + f.name.replace("_", "-"))
        names = (names,) if isinstance(names, str) else tuple(names)
        kwargs = _flag_kwargs(hints[f.name])
        if "choices" in f.metadata:  # a narrower set than the annotation's, e.g. of dtype names
            kwargs["choices"] = list(f.metadata["choices"])
            kwargs.pop("metavar", None)
        dest = f"{group or cls.__name__}.{f.name}"
        parser.add_argument(*names, dest=dest, default=argparse.SUPPRESS,
                            help=f"{doc} (default: {shown})".replace("%", "%%").lstrip(), **kwargs)
        optional, _ = _is_optional(hints[f.name])
        if optional and default is not None:  # `--no-cap` for `--cap none`, as BooleanOptionalAction does
            parser.add_argument("--no-" + names[0].removeprefix("--"), dest=dest, action="store_const", const=None,
                                default=argparse.SUPPRESS, help=f"set {names[0]} to none")


def flag_values(args: argparse.Namespace, cls: type, group: str | None = None) -> dict:
    """{field: value} of the flags of `cls` (added by `add_flags`) given on the command line,
    in the API's types (a dtype name becomes a `torch.dtype`, a list a tuple)."""
    prefix, hints = f"{group or cls.__name__}.", _hints(cls)
    values = {k.removeprefix(prefix): v for k, v in vars(args).items() if k.startswith(prefix)}
    return {k: check_value(hints[k], v, f"{cls.__name__}.{k}") for k, v in values.items()}
