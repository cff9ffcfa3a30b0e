"""Notebook dashboards (ipywidgets + plotly `FigureWidget`) over the library's results.

    from interp.widgets import FeatureDashboard
    FeatureDashboard(sae, model, store)        # the last expression of a cell displays it

Every dashboard only displays what a library function returns; none computes anything the
library does not also offer. Names are imported lazily, so importing `interp.widgets` costs
nothing and one dashboard's missing optional dependency never breaks the others.
"""

from __future__ import annotations

import importlib

_MODULES = {
    "FeatureDashboard": "interp.widgets.feature_dashboard",
    "SteeringPanel": "interp.widgets.steering_panel",
    "PatchingView": "interp.widgets.patching_view",
    "ExpertMap": "interp.widgets.expert_map",
}

__all__ = list(_MODULES)


def __getattr__(name: str):
    if name not in _MODULES:
        raise AttributeError(f"module 'interp.widgets' has no attribute {name!r}; it offers {', '.join(_MODULES)}")
    value = getattr(importlib.import_module(_MODULES[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULES))
