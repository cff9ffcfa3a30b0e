"""interp.widgets imports its dashboards lazily: importing the package loads none of them, and
one dashboard module that fails to import leaves the others usable."""

import subprocess
import sys

import pytest

import interp.widgets


def test_importing_the_package_loads_no_dashboard():
    code = ("import sys, interp.widgets; "
            "print(sorted(m for m in sys.modules if m.startswith(('interp.widgets.', 'ipywidgets', 'plotly'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_names_resolve_to_their_modules_and_unknown_names_fail_clearly():
    assert set(interp.widgets.__all__) == {"FeatureDashboard", "SteeringPanel", "PatchingView", "ExpertMap"}
    assert set(interp.widgets.__all__) <= set(dir(interp.widgets))
    assert interp.widgets.FeatureDashboard.__module__ == "interp.widgets.feature_dashboard"
    with pytest.raises(AttributeError, match="has no attribute 'Nope'; it offers FeatureDashboard"):
        interp.widgets.Nope  # noqa: B018


def test_a_broken_sibling_does_not_break_the_others(monkeypatch):
    monkeypatch.setitem(interp.widgets._MODULES, "Missing", "interp.widgets.no_such_module")
    with pytest.raises(ModuleNotFoundError, match="no_such_module"):
        interp.widgets.Missing  # noqa: B018
    from interp.widgets import FeatureDashboard

    assert FeatureDashboard.__name__ == "FeatureDashboard"
