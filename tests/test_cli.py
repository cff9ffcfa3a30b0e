import subprocess
import sys

import pytest

import interp
from interp.cli import main


def test_help_and_version(capsys):
    assert main([]) == 0
    assert "zoo" in capsys.readouterr().out
    out = subprocess.run([sys.executable, "-m", "interp", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and interp.__version__ in out.stdout


def test_zoo_list(capsys):
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    assert "zoo-dense" in out and "zoo-moe" in out


def test_zoo_info(capsys):
    assert main(["zoo", "info", "zoo-moe"]) == 0
    assert '"num_experts": 8' in capsys.readouterr().out


def test_bad_model_is_a_clean_error(capsys):
    assert main(["zoo", "eval", "nope"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "zoo-dense" in err and "Traceback" not in err


def test_a_bug_is_a_traceback_not_a_user_error(monkeypatch, capsys):
    """An exception that is not interp's (nor a check's ValueError) is a bug: it is shown with its
    traceback and a line asking to report it, never dressed up as bad input."""
    import interp.zoo.cli

    def broken(args):
        return {}["missing"]

    monkeypatch.setattr(interp.zoo.cli, "_list", broken)
    assert main(["zoo", "list"]) == 1
    err = capsys.readouterr().err
    assert "KeyError: 'missing'" in err and "interp zoo list: internal error" in err and "please report it" in err


def test_a_user_error_names_the_full_subcommand(capsys):
    assert main(["patch", "pairs", "/nonexistent/pairs.jsonl"]) == 2
    assert "interp patch pairs: error: /nonexistent/pairs.jsonl: cannot read the pair set" in capsys.readouterr().err


def test_bad_components_are_refused_before_the_model_loads(capsys, monkeypatch):
    import interp.models

    monkeypatch.setattr(interp.models, "load_model", lambda *a, **k: pytest.fail("loaded the model"))
    assert main(["patch", "ioi", "--components", "resid_pre,foo"]) == 2
    assert "--components='resid_pre,foo': foo is not a component; allowed: resid_pre" in capsys.readouterr().err
