"""interp: a mechanistic-interpretability workbench.

    import interp
    model = interp.load_model("zoo-dense")
    sae = interp.sae.load(interp.resources.sae_path())

Every module of the package (`interp.sae`, `interp.cache`, `interp.steering`, ...) is an
attribute of `interp`, imported on first use: `import interp` stays as cheap as loading a
zoo model needs, and `dir(interp)` (tab completion) lists them all.
"""

from importlib import import_module as _import_module
from pkgutil import iter_modules as _iter_modules

__version__ = "0.1.0"

from interp.models import load_model  # noqa: E402

# Found from the package directory, so a new module is listed without editing this file.
_MODULES = tuple(sorted(m.name for m in _iter_modules(__path__) if not m.name.startswith("_")))

__all__ = ["load_model", "__version__"]


def __getattr__(name: str):
    if name not in _MODULES:
        raise AttributeError(f"module 'interp' has no attribute {name!r}")
    return _import_module(f"interp.{name}")  # the import also sets it on this module


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULES))
