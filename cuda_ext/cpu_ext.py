"""Builds and loads the fused CPU kernels (cuda_ext/csrc/cpu_kernels.cpp) on first use.

`torch.utils.cpp_extension.load` compiles them once per machine (about 30 s; cached under
TORCH_EXTENSIONS_DIR, by default ~/.cache/torch_extensions) and reloads the cached build
afterwards. Where no C++ compiler is found the build fails once, `reason()` says why, and
the "auto" backend falls back to the chunked torch path.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
from pathlib import Path
from types import ModuleType

SOURCE = Path(__file__).parent / "csrc" / "cpu_kernels.cpp"
DISABLE_ENV = "INTERP_NO_CPU_EXT"  # set to 1 to skip the build (the "auto" backend then uses "chunked")


@functools.cache
def _load() -> tuple[ModuleType | None, str]:
    if os.environ.get(DISABLE_ENV) == "1":
        return None, f"disabled by {DISABLE_ENV}=1"
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        return None, f"no C++ compiler ({compiler!r} is not on PATH)"
    if shutil.which("ninja") is None:  # the `ninja` wheel's binary, when its venv is not activated
        with contextlib.suppress(ImportError):
            import ninja

            os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
    try:
        from torch.utils import cpp_extension

        module = cpp_extension.load(
            name="interp_cpu_kernels",
            sources=[str(SOURCE)],
            extra_cflags=["-O3", "-fopenmp"],
            extra_ldflags=["-fopenmp"],
            verbose=False,
        )
    except Exception as exc:  # a failed build must not break the pure-torch backends
        return None, f"building {SOURCE.name} failed: {type(exc).__name__}: {str(exc).strip()[:500]}"
    return module, "built"


def module() -> ModuleType:
    """The compiled extension; raises with the reason when it cannot be built here."""
    mod, why = _load()
    if mod is None:
        raise RuntimeError(f"the fused CPU kernels are unavailable: {why}; use backend='chunked'")
    return mod


def available() -> bool:
    return _load()[0] is not None


def reason() -> str:
    """'built', or why the extension is unavailable."""
    return _load()[1]
