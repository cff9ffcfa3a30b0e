"""Where the shipped data lives: the zoo's models (`data/zoo/`), the trained SAEs
(`saes/<run>/`) and the recipes that made them (`saes/recipes/`).

    interp.resources.zoo_dir()                 # data/zoo, or $INTERP_ZOO_DIR
    interp.resources.sae_path()                # the shipped TopK SAE on zoo-dense (DEFAULT_SAE)
    interp.resources.recipe_path("compare")    # saes/recipes/compare.toml

In a git checkout (or an editable install) `data/` and `saes/` sit beside the `interp/`
package. A built package (`pip install .`) carries them inside itself as
`interp/_shipped/data/` and `interp/_shipped/saes/` (see pyproject.toml), found here with
`importlib.resources`. Nothing here is a place to write to: outputs (activation caches,
new runs) go to directories relative to the current one.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

from interp.errors import MissingFile

DEFAULT_SAE = "zoo-dense-blocks.2.hook_resid_pre-topk-k32"
"""Run name of the SAE every example, notebook and test uses: TopK, 2048 latents, k=32, on
zoo-dense's `blocks.2.hook_resid_pre` (`interp train-sae` with its defaults)."""

ZOO_DIR_ENV = "INTERP_ZOO_DIR"
"""Environment variable that points the zoo at another directory (one subdirectory per model)."""

SAE_CONFIG = "cfg.json"  # the file that makes a directory under saes/ a run (sae-lens layout)
RECIPES = "recipes"


def shipped_dir(top: str) -> Path:
    """The shipped top-level directory `top` ("data" or "saes"): inside the installed
    package when it was built as a wheel, else beside the `interp/` package (a checkout)."""
    if top not in ("data", "saes"):
        raise ValueError(f"top={top!r} is not shipped; allowed: 'data', 'saes'")
    packaged = importlib.resources.files("interp") / "_shipped" / top
    if packaged.is_dir():
        # files() of a package on a file system is a Path; interp is never installed zipped
        return Path(str(packaged))
    return Path(__file__).resolve().parents[1] / top


def zoo_dir() -> Path:
    """Where zoo models live (`<zoo_dir>/<name>/model.safetensors`, ...): `$INTERP_ZOO_DIR`
    when set, else the shipped `data/zoo`."""
    override = os.environ.get(ZOO_DIR_ENV)
    return Path(override) if override else shipped_dir("data") / "zoo"


def shipped_saes() -> list[str]:
    """Run names of the SAEs shipped in `saes/` (directories holding a `cfg.json`, and the
    per-layer ones of a layered run, `<run>/L<layer>`), sorted."""
    root = shipped_dir("saes")
    if not root.is_dir():
        return []
    # a hidden `.<run>.partial/` is a run being written (interp.sae.rundir), not a shipped one
    found = [p.parent.relative_to(root) for p in (*root.glob(f"*/{SAE_CONFIG}"), *root.glob(f"*/L*/{SAE_CONFIG}"))]
    return sorted(r.as_posix() for r in found if not any(part.startswith(".") for part in r.parts))


def sae_path(name: str = DEFAULT_SAE) -> Path:
    """Directory of the shipped SAE run `name` (load it with `interp.sae.load`). Raises
    FileNotFoundError naming the runs that are shipped when there is no such run."""
    path = shipped_dir("saes") / name
    if not (path / SAE_CONFIG).is_file():
        shipped = shipped_saes()
        raise MissingFile(f"sae_path(name={name!r}): no shipped SAE of that name ({path / SAE_CONFIG} is "
                                f"missing); shipped: {', '.join(shipped) or 'none'}. A run of your own: pass its "
                                "directory to interp.sae.load")
    return path


def recipe_path(name: str) -> Path:
    """The shipped training recipe `saes/recipes/<name>.toml` (`name` with or without
    `.toml`). Raises FileNotFoundError naming the shipped recipes when there is none."""
    root = shipped_dir("saes") / RECIPES
    path = root / (name if name.endswith(".toml") else f"{name}.toml")
    if not path.is_file():
        shipped = sorted(p.stem for p in root.glob("*.toml"))
        raise MissingFile(f"recipe_path(name={name!r}): {path} is missing; shipped recipes: "
                                f"{', '.join(shipped) or 'none'}")
    return path
