"""interp.config: fields checked from annotations, docstrings as help, TOML tables, flags."""

import argparse
from dataclasses import dataclass, field, replace
from typing import Literal

import pytest
import torch

from interp.config import add_flags, check_fields, field_docs, flag_values, from_dict, read_toml, to_dict
from interp.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    width: int = 4
    """Units of the inner thing."""

    def __post_init__(self):
        check_fields(self)


@dataclass(frozen=True)
class Example:
    n: int = 3
    """How many.

    A second paragraph that the help leaves out."""
    rate: float = 0.5
    """A rate in (0, 1)."""
    cap: float | None = None
    """A cap (None: no cap)."""
    on: bool = False
    """Switch."""
    mode: Literal["a", "b"] = "a"
    """Which mode."""
    layers: tuple[int, ...] = ()
    """Layers; () = all."""
    dtype: torch.dtype = field(default=torch.float32, metadata={"choices": ("float32", "bfloat16")})
    """Compute dtype, 100% of it."""
    inner: Inner = field(default_factory=Inner)
    """Nested table."""

    def __post_init__(self):
        check_fields(self)


def test_values_are_checked_and_converted_from_annotations():
    cfg = Example(n=2, rate=1, layers=[1, 2], dtype="bfloat16", inner={"width": 8})
    assert cfg.rate == 1.0 and isinstance(cfg.rate, float)
    assert cfg.layers == (1, 2) and cfg.dtype is torch.bfloat16 and cfg.inner == Inner(8)
    for bad, message in [(dict(n=True), "Example.n=True is not allowed: an integer"),
                         (dict(n=2.0), "an integer"),
                         (dict(rate="fast"), "Example.rate='fast' is not allowed: a number"),
                         (dict(on="yes"), "Example.on='yes' is not allowed: true or false"),
                         (dict(on=1), "true or false"),
                         (dict(cap="x"), "None or a number"),
                         (dict(mode="c"), "one of 'a', 'b'"),
                         (dict(layers=5), "a list of integers"),
                         (dict(layers=[1, "2"]), "a list of integers"),
                         (dict(dtype="int8"), "a dtype name"),
                         (dict(inner={"width": "8"}), "Inner.width='8'"),
                         (dict(inner=5), "a table of Inner fields")]:
        with pytest.raises(ConfigError, match=message):
            Example(**bad)


def test_from_dict_names_where_unknown_and_missing_keys():
    assert from_dict(Example, {"n": 5}) == Example(n=5)
    with pytest.raises(ConfigError, match=r"r\.toml \[x\]: unknown key\(s\) \['m'\] for Example; allowed: n, rate"):
        from_dict(Example, {"m": 1}, "r.toml [x]")
    with pytest.raises(ConfigError, match=r"r\.toml: must be a table of Example fields, got int 5"):
        from_dict(Example, 5, "r.toml")
    with pytest.raises(ConfigError, match=r"r\.toml: Example\.n='3'"):
        from_dict(Example, {"n": "3"}, "r.toml")

    @dataclass
    class Needs:
        d: int

    with pytest.raises(ConfigError, match=r"Needs needs the field\(s\) \['d'\]"):
        from_dict(Needs, {})


def test_read_toml_names_the_file(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('n = 2\n[inner]\nwidth = 3\n')
    assert from_dict(Example, read_toml(good)) == Example(n=2, inner=Inner(3))
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\x80\x81 = 1")
    with pytest.raises(ConfigError, match="binary.toml: not a TOML recipe \\(not UTF-8"):
        read_toml(binary)
    broken = tmp_path / "broken.toml"
    broken.write_text("n = = 2")
    with pytest.raises(ConfigError, match="broken.toml: not valid TOML"):
        read_toml(broken)
    with pytest.raises(ConfigError, match="missing.toml: no such recipe file"):
        read_toml(tmp_path / "missing.toml")


def test_to_dict_writes_file_forms():
    assert to_dict(Example(layers=(1,), dtype=torch.bfloat16)) == {
        "n": 3, "rate": 0.5, "cap": None, "on": False, "mode": "a", "layers": [1], "dtype": "bfloat16",
        "inner": {"width": 4}}


def test_field_docs_are_the_strings_under_the_fields():
    docs = field_docs(Example)
    assert docs["n"].startswith("How many.") and docs["rate"] == "A rate in (0, 1)."
    assert "inner" in docs and "width" not in docs


def test_flags_come_from_fields_with_help_and_defaults():
    parser = argparse.ArgumentParser()
    add_flags(parser, Example, exclude=("inner",), defaults={"n": 7}, flags={"rate": ("--rate", "-r")})
    help_text = parser.format_help()
    assert "How many. (default: 7)" in help_text and "second paragraph" not in help_text
    assert "100% of it" in help_text and "Switch. (default: off)" in help_text
    assert parser.parse_args([]).__dict__ == {}
    args = parser.parse_args(["--n", "4", "-r", "0.25", "--cap", "none", "--on", "--mode", "b",
                              "--layers", "1", "2", "--dtype", "bfloat16"])
    values = flag_values(args, Example)
    assert values == {"n": 4, "rate": 0.25, "cap": None, "on": True, "mode": "b", "layers": (1, 2),
                      "dtype": torch.bfloat16}
    cfg = replace(Example(), **values)
    assert cfg.layers == (1, 2) and cfg.dtype is torch.bfloat16
    assert flag_values(parser.parse_args(["--no-on"]), Example) == {"on": False}
    assert "--no-cap" not in help_text  # its default is already none
    capped = argparse.ArgumentParser()
    add_flags(capped, Example, include=("cap",), defaults={"cap": 4.0})
    assert flag_values(capped.parse_args(["--no-cap"]), Example) == {"cap": None}
    assert flag_values(capped.parse_args(["--cap", "2"]), Example) == {"cap": 2.0}
    for bad in (["--n", "x"], ["--mode", "c"], ["--dtype", "float16"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)


def test_two_configs_share_a_parser_through_groups():
    parser = argparse.ArgumentParser()
    add_flags(parser, Example, include=("n",))
    add_flags(parser, Inner, group="inner", flags={"width": "--inner-width"})
    args = parser.parse_args(["--n", "1", "--inner-width", "2"])
    assert flag_values(args, Example) == {"n": 1} and flag_values(args, Inner, "inner") == {"width": 2}


def test_check_positive_names_the_first_bad_field():
    from interp.config import check_positive

    check_positive(Example(n=1, rate=0.1), "n", "rate")
    with pytest.raises(ConfigError, match=r"Example.rate=0.0 is not allowed: a positive number"):
        check_positive(Example(n=1, rate=0.0), "n", "rate")
