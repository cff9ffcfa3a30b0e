"""`load_model`: a zoo name, a local model directory, or a TransformerLens pretrained name.

A model directory holds `config.json` (the `HookedTransformerConfig` arguments under
"architecture"), `model.safetensors` and the tokenizer files. Every failure to load
names the file and what is wrong with it.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from interp.errors import InterpError
from interp.zoo import registry
from interp.zoo import tokenizer as zoo_tokenizer

CONFIG = "config.json"
WEIGHTS = "model.safetensors"


class ModelLoadError(InterpError, RuntimeError):
    """A model could not be loaded; the message says which file and why."""


def build_model(architecture: dict, tokenizer):
    """A freshly initialised `HookedTransformer` from `HookedTransformerConfig` arguments."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return HookedTransformer(HookedTransformerConfig(**architecture), tokenizer=tokenizer)


def load_model(name_or_path: str | Path, device: str = "cpu", dtype: torch.dtype = torch.float32):
    """Load a model as a `transformer_lens.HookedTransformer` with its tokenizer.

    `name_or_path`: a zoo name (`interp zoo list`), a directory written by
    `interp.zoo.train`, or a TransformerLens pretrained name (`gpt2`, `pythia-70m`, ...),
    which loads only where its weights are already in the local Hugging Face cache.
    """
    name = str(name_or_path)
    if name in registry.ZOO:
        spec = registry.ZOO[name]
        if not (spec.directory / WEIGHTS).is_file():
            raise ModelLoadError(f"zoo model {name!r} is not trained: {spec.directory / WEIGHTS} is missing; "
                                 f"run `interp zoo train {name}`")
        return _load_directory(spec.directory, device, dtype)
    if Path(name).is_dir():
        return _load_directory(Path(name), device, dtype)
    return _load_pretrained(name, device, dtype)


def _load_directory(directory: Path, device: str, dtype: torch.dtype):
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    config_path, weights_path = directory / CONFIG, directory / WEIGHTS
    for path in (config_path, weights_path):
        if not path.is_file():
            raise ModelLoadError(f"{path} is missing: a model directory needs {CONFIG}, {WEIGHTS} and tokenizer.json")
    try:
        config = json.loads(config_path.read_text())
        architecture = config["architecture"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ModelLoadError(f"{config_path}: not a model config ({e!r}); it needs an 'architecture' object") from e
    try:
        tokenizer = zoo_tokenizer.load(directory)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{directory / 'tokenizer.json'}: cannot load the tokenizer ({e})") from e
    try:
        model = build_model(architecture, tokenizer)
    except (TypeError, ValueError, AssertionError) as e:
        raise ModelLoadError(f"{config_path}: invalid architecture ({e})") from e
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError) as e:
        raise ModelLoadError(f"{weights_path}: not a readable safetensors file ({e}); it is truncated or "
                             "corrupt: restore it (git checkout) or retrain the model") from e
    _check_state(state, model.state_dict(), weights_path, config_path)
    model.load_state_dict(state, strict=True)
    model.eval()
    model.to(device, print_details=False)
    return model if dtype == torch.float32 else model.to(dtype, print_details=False)


def _check_state(state: dict, expected: dict, weights_path: Path, config_path: Path) -> None:
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k}: file {tuple(state[k].shape)} vs config {tuple(v.shape)}"
              for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        parts = [f"missing {missing[:5]}" if missing else "", f"unexpected {unexpected[:5]}" if unexpected else "",
                 f"shape mismatches {shapes[:5]}" if shapes else ""]
        raise ModelLoadError(f"{weights_path} does not match {config_path}: " + "; ".join(p for p in parts if p))


def _load_pretrained(name: str, device: str, dtype: torch.dtype):
    from transformer_lens import HookedTransformer
    from transformer_lens.loading_from_pretrained import get_official_model_name

    try:
        get_official_model_name(name)
    except ValueError:
        raise ModelLoadError(f"{name!r} is neither a zoo model ({', '.join(registry.ZOO)}), a model directory, "
                             "nor a TransformerLens pretrained model name") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return HookedTransformer.from_pretrained(name, device=device, dtype=dtype)
    except OSError as e:
        raise ModelLoadError(f"{name!r}: its weights are not available offline ({e.__class__.__name__}); "
                             f"put them in the Hugging Face cache, or use a zoo model: {', '.join(registry.ZOO)}") from e
