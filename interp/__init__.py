"""interp: a mechanistic-interpretability workbench."""

__version__ = "0.1.0"

from interp.models import load_model  # noqa: E402

__all__ = ["load_model", "__version__"]
