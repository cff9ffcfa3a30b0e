"""interp.resources finds the shipped zoo, SAEs and recipes in a checkout and in a package
installed without `-e`; `import interp` exposes every module lazily."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from interp import resources

REPO = Path(__file__).resolve().parents[1]


def test_checkout_reads_the_top_level_directories(monkeypatch):
    monkeypatch.delenv(resources.ZOO_DIR_ENV, raising=False)
    assert resources.shipped_dir("data") == REPO / "data"
    assert resources.zoo_dir() == REPO / "data" / "zoo"
    assert (resources.zoo_dir() / "zoo-dense" / "model.safetensors").is_file()
    assert resources.sae_path() == REPO / "saes" / resources.DEFAULT_SAE
    assert resources.recipe_path("compare") == resources.recipe_path("compare.toml") == REPO / "saes/recipes/compare.toml"


def test_zoo_dir_override(monkeypatch, tmp_path):
    monkeypatch.setenv(resources.ZOO_DIR_ENV, str(tmp_path))
    assert resources.zoo_dir() == tmp_path
    from interp.zoo import registry

    assert registry.get("zoo-moe").directory == tmp_path / "zoo-moe"


def test_default_sae_is_shipped_and_loads():
    import interp

    assert resources.DEFAULT_SAE in resources.shipped_saes()
    sae = interp.sae.load(resources.sae_path())
    cfg = json.loads((resources.sae_path() / "cfg.json").read_text())
    assert (sae.cfg.d_in, sae.cfg.n_latents, sae.cfg.k) == (128, 2048, 32)
    assert cfg["metadata"]["hook_name"] == "blocks.2.hook_resid_pre"


def test_unknown_names_list_what_is_shipped():
    with pytest.raises(FileNotFoundError, match=rf"name='nope'.*shipped: .*{resources.DEFAULT_SAE}"):
        resources.sae_path("nope")
    with pytest.raises(FileNotFoundError, match=r"name='nope'.*shipped recipes: .*compare.*default"):
        resources.recipe_path("nope")
    with pytest.raises(ValueError, match=r"top='caches'.*'data', 'saes'"):
        resources.shipped_dir("caches")


def test_job_cache_dir_is_relative_to_the_current_directory():
    """The default activation cache is a writable place, so never inside the installed package."""
    from interp.sae.job import JobConfig

    store = JobConfig().store_dir(False)
    assert not store.is_absolute() and store.parts[:2] == ("caches", "zoo-dense")


def _python(code: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env, capture_output=True,
                          text=True)


def test_lazy_namespace_in_a_fresh_process(tmp_path):
    out = _python("""
        import sys
        import interp
        heavy = [m for m in ("transformer_lens", "sae_lens", "pandas", "interp.sae", "interp.cache", "interp.steering",
                             "interp.patching", "interp.moe", "interp.widgets") if m in sys.modules]
        assert not heavy, heavy
        listed = dir(interp)
        for name in ("sae", "cache", "steering", "patching", "moe", "tasks", "zoo", "widgets", "resources", "load_model"):
            assert name in listed, name
        assert callable(interp.sae.train) and callable(interp.cache.open_store)
        assert interp.widgets.FeatureDashboard.__name__ == "FeatureDashboard"
        assert not hasattr(interp, "nope")
        try:
            interp.nope
        except AttributeError as e:
            print(e)
        """, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "module 'interp' has no attribute 'nope'"


def test_pyproject_lists_every_package():
    """pyproject.toml names its packages (mapped ones can't be discovered): a package added to
    the tree must be added there too, or `pip install .` leaves it out."""
    from setuptools import find_namespace_packages

    listed = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    code = [p for p in listed if not p.startswith("interp._shipped")]
    kernels = ["sae_kernels" + p.removeprefix("cuda_ext") for p in find_namespace_packages(str(REPO), include=["cuda_ext*"])]
    assert sorted(code) == sorted(find_namespace_packages(str(REPO), include=["interp*"]) + kernels)


def _copy_source(dst: Path) -> Path:
    """The files a build reads, copied so that the build's by-products stay out of the checkout."""
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "checkpoint", "compare")
    for name in ("interp", "cuda_ext", "data", "saes"):
        shutil.copytree(REPO / name, dst / name, ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dst / name)
    return dst


@pytest.mark.slow
def test_non_editable_install_finds_the_shipped_data(tmp_path):
    """`pip install .` (no deps, no index: the dependencies are this interpreter's) into a
    target directory, then a process outside the checkout imports interp from there only."""
    src, target, elsewhere = _copy_source(tmp_path / "src"), tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                          "--disable-pip-version-check", "-q", "--target", str(target), str(src)],
                         capture_output=True, text=True)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    assert not list(target.glob("interp/_shipped/saes/*/checkpoint")), "checkpoints must not ship"
    shutil.rmtree(src)  # nothing may be read from the source tree any more

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", resources.ZOO_DIR_ENV)}
    out = _python(f"""
        from pathlib import Path
        import interp
        from interp import resources

        package = Path({str(target)!r}) / "interp"
        assert Path(interp.__file__).parent == package, interp.__file__
        assert resources.zoo_dir() == package / "_shipped" / "data" / "zoo", resources.zoo_dir()
        assert resources.sae_path() == package / "_shipped" / "saes" / resources.DEFAULT_SAE, resources.sae_path()
        assert resources.recipe_path("default").is_file()
        model = interp.load_model("zoo-dense")
        sae = interp.sae.load(resources.sae_path())
        print(type(model).__name__, model.cfg.n_layers, sae.cfg.n_latents)
        """, cwd=elsewhere, env=dict(env, PYTHONPATH=str(target)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-3:] == ["HookedTransformer", "4", "2048"]
