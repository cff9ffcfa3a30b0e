"""`load_model`: one loading path for every model interp works on.

`name_or_path` is one of
- a zoo name (`interp zoo list`);
- an interp model directory (written by `interp.zoo.train`: `config.json` with the
  `HookedTransformerConfig` arguments under "architecture", `model.safetensors`, tokenizer);
- a local Hugging Face checkpoint directory (`config.json` with `model_type`, safetensors
  weights, tokenizer files), e.g. one written by `save_pretrained`;
- a Hugging Face hub name (`meta-llama/Llama-3.2-1B`) or TransformerLens alias (`gpt2`),
  resolved **only** from the local Hugging Face cache: nothing is ever downloaded.

A Hugging Face checkpoint whose architecture `HookedTransformer` can convert from its config
(`HOOKED_ARCHITECTURES`) becomes a `HookedTransformer`; any other architecture TransformerLens
knows becomes a `TransformerBridge` in compatibility mode, so hook names (`blocks.{l}.hook_resid_pre`,
`blocks.{l}.mlp.hook_post`, ...), `run_with_hooks`, `to_tokens` and `cfg.n_layers` / `cfg.d_model`
are the same on both. Neither route folds or centres weights: activations are the checkpoint's own
(what an SAE trained here will see when it is used with the Hugging Face model).

Every failure names the file (or name) and what is wrong, before anything is computed.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path

import torch

from interp.devices import DeviceLike, resolve_device
from interp.errors import InterpError
from interp.zoo import registry
from interp.zoo import tokenizer as zoo_tokenizer

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")

HOOKED_ARCHITECTURES = {
    "GPT2LMHeadModel": "gpt2",
    "GPTNeoXForCausalLM": "gpt_neox (Pythia)",
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "mistral",
    "MixtralForCausalLM": "mixtral",
    "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3",
    "OlmoeForCausalLM": "olmoe",
}
"""Hugging Face architectures loaded as `HookedTransformer`: TransformerLens builds their
config from the checkpoint's `config.json` (for others, such as Gemma, it keys on official
model names, so a local checkpoint of another size would get the wrong shapes) and their MLPs
and MoE blocks are TransformerLens's own classes, which every method here knows."""

BACKENDS = ("hooked", "bridge")


class ModelLoadError(InterpError, RuntimeError):
    """A model could not be loaded; the message says which file and why."""


def build_model(architecture: dict, tokenizer):
    """A freshly initialised `HookedTransformer` from `HookedTransformerConfig` arguments."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return HookedTransformer(HookedTransformerConfig(**architecture), tokenizer=tokenizer)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(name_or_path: str | Path, device: DeviceLike | None = None, dtype: torch.dtype | None = None,
               backend: str | None = None):
    """Load a model as a TransformerLens model (`HookedTransformer` or `TransformerBridge`).

    `device`: where it runs (default: CUDA when there is one, else the CPU); checked first.
    `dtype`: its parameters' dtype (default float32). `backend`: "hooked" or "bridge" to force
    the TransformerLens class for a Hugging Face checkpoint (default: `HOOKED_ARCHITECTURES`
    decide); zoo and interp directories are always `HookedTransformer`s.
    """
    dev = resolve_device(default_device() if device is None else device)
    dtype = torch.float32 if dtype is None else dtype
    if not isinstance(dtype, torch.dtype):
        raise ModelLoadError(f"dtype={dtype!r} must be a torch.dtype (e.g. torch.bfloat16)")
    if backend is not None and backend not in BACKENDS:
        raise ModelLoadError(f"backend={backend!r} is not a backend; allowed: {', '.join(BACKENDS)}")
    name = str(name_or_path)
    if name in registry.ZOO:
        spec = registry.ZOO[name]
        if not (spec.directory / WEIGHTS).is_file():
            raise ModelLoadError(f"zoo model {name!r} is not trained: {spec.directory / WEIGHTS} is missing; "
                                 f"run `interp zoo train {name}`")
        return _load_interp_directory(spec.directory, dev, dtype)
    path = Path(name).expanduser()
    if path.is_dir():
        config = _read_config(path)
        if "architecture" in config:
            return _load_interp_directory(path, dev, dtype)
        return load_hf_checkpoint(path, dev, dtype, backend, config=config)
    if path.exists():
        raise ModelLoadError(f"{path} is a file; a model is a zoo name, a model directory or a hub name")
    return load_hf_checkpoint(resolve_hub_name(name), dev, dtype, backend)


def _read_config(directory: Path) -> dict:
    path = directory / CONFIG
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing: a model directory needs {CONFIG}, weights "
                             f"({WEIGHTS}) and tokenizer files")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelLoadError(f"{path}: not a JSON model config ({e})") from e
    if not isinstance(config, dict) or not ("architecture" in config or "model_type" in config):
        raise ModelLoadError(f"{path}: not a model config: it needs 'model_type' (a Hugging Face "
                             "checkpoint) or 'architecture' (an interp model directory)")
    return config


# --- interp model directories (the zoo) -----------------------------------------------------
def _load_interp_directory(directory: Path, device: torch.device, dtype: torch.dtype):
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


# --- Hugging Face checkpoints ---------------------------------------------------------------
def supported_architectures() -> dict[str, str]:
    """{Hugging Face architecture: "hooked" | "bridge"} for every causal LM interp can load."""
    from transformer_lens.factories.architecture_adapter_factory import SUPPORTED_ARCHITECTURES

    table = {arch: "bridge" for arch in SUPPORTED_ARCHITECTURES}
    table.update({arch: "hooked" for arch in HOOKED_ARCHITECTURES})
    return table


def checkpoint_architecture(directory: Path, config: dict | None = None) -> str:
    """The checkpoint's Hugging Face architecture (`config.json`'s `architectures[0]`, or the
    causal-LM class of its `model_type`), checked against what TransformerLens can load."""
    config = _read_config(directory) if config is None else config
    config_path = directory / CONFIG
    model_type = config.get("model_type")
    archs = config.get("architectures") or []
    if not archs:
        from transformers import CONFIG_MAPPING, MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

        if model_type not in CONFIG_MAPPING:
            raise ModelLoadError(f"{config_path}: model_type={model_type!r} is not a model type transformers "
                                 f"knows; supported families: {_families()}")
        archs = [MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(model_type, "")]
    arch = archs[0]
    if arch not in supported_architectures():
        raise ModelLoadError(f"{config_path}: architecture {arch!r} (model_type={model_type!r}) cannot be loaded "
                             f"by TransformerLens; supported families: {_families()}")
    return arch


def _families() -> str:
    bridge = sorted(a for a, b in supported_architectures().items() if b == "bridge")
    return (", ".join(HOOKED_ARCHITECTURES.values()) + " (as HookedTransformer); through TransformerBridge: "
            + ", ".join(a.removesuffix("ForCausalLM") for a in bridge))


def load_hf_checkpoint(directory: str | Path, device: DeviceLike | None = None, dtype: torch.dtype | None = None,
                       backend: str | None = None, config: dict | None = None):
    """Load a local Hugging Face checkpoint directory as a TransformerLens model (see module doc)."""
    directory = Path(directory)
    dev = resolve_device(default_device() if device is None else device)
    dtype = torch.float32 if dtype is None else dtype
    arch = checkpoint_architecture(directory, config)
    _check_files(directory)
    if backend is None:
        backend = supported_architectures()[arch]
    if backend == "hooked" and arch not in HOOKED_ARCHITECTURES:
        raise ModelLoadError(f"{directory}: backend='hooked' cannot convert {arch}; use backend='bridge' "
                             f"(HookedTransformer converts: {', '.join(HOOKED_ARCHITECTURES)})")
    tokenizer = _load_tokenizer(directory)
    hf_model = _load_hf_model(directory, dtype)
    if backend == "hooked":
        model = _hooked_from_hf(directory, hf_model, tokenizer, dtype)
    else:
        model = _bridge_from_hf(directory, hf_model, tokenizer, dtype)
    model.eval()
    with contextlib.redirect_stdout(io.StringIO()):  # both print "Moving model to device"
        model.to(dev)
    return model


def _check_files(directory: Path) -> None:
    if not ((directory / WEIGHTS).is_file() or (directory / WEIGHTS_INDEX).is_file()):
        pickled = sorted(p.name for p in directory.glob("*.bin")) + sorted(p.name for p in directory.glob("*.pt"))
        hint = (f"; it holds {', '.join(pickled)}, which interp does not load (pickle): convert them to "
                "safetensors with transformers' save_pretrained(safe_serialization=True)") if pickled else ""
        raise ModelLoadError(f"{directory / WEIGHTS} is missing (nor is there {WEIGHTS_INDEX}){hint}")
    if not any((directory / f).is_file() for f in TOKENIZER_FILES):
        raise ModelLoadError(f"{directory}: no tokenizer files (looked for {', '.join(TOKENIZER_FILES)}); "
                             "save the tokenizer beside the weights (tokenizer.save_pretrained)")


def _load_tokenizer(directory: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    except (OSError, ValueError, TypeError) as e:
        raise ModelLoadError(f"{directory}: cannot load the tokenizer ({e})") from e


def _load_hf_model(directory: Path, dtype: torch.dtype):
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # missing keys are reported below, as an error
    hf_logging.disable_progress_bar()
    try:
        model, info = AutoModelForCausalLM.from_pretrained(
            str(directory), dtype=dtype, local_files_only=True, output_loading_info=True,
            attn_implementation="eager")  # eager: TransformerLens hooks see the attention pattern
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ModelLoadError(f"{directory}: cannot read the weights ({e.__class__.__name__}: {str(e)[:300]}); "
                             f"{WEIGHTS} is truncated, corrupt or does not match {CONFIG}") from e
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    tied = set(getattr(model, "_tied_weights_keys", None) or ())
    missing = [k for k in info.get("missing_keys", ()) if k not in tied and not k.endswith("lm_head.weight")]
    problems = [f"missing {sorted(missing)[:5]}" if missing else "",
                f"shape mismatches {list(info.get('mismatched_keys', ()))[:5]}" if info.get("mismatched_keys") else "",
                f"unexpected {sorted(info.get('unexpected_keys', ()))[:5]}" if info.get("unexpected_keys") else ""]
    if any(problems):
        raise ModelLoadError(f"{directory / WEIGHTS} does not match {directory / CONFIG}: "
                             + "; ".join(p for p in problems if p))
    return model


def _hooked_from_hf(directory: Path, hf_model, tokenizer, dtype: torch.dtype):
    from transformer_lens import HookedTransformer
    from transformer_lens import loading_from_pretrained as loading

    # TransformerLens picks some families by substrings of the model name ("llama", "gemma");
    # a directory's own name must not choose for it, so TransformerLens sees a neutral link.
    with tempfile.TemporaryDirectory(prefix="interp-hf-") as tmp, _quiet():
        neutral = Path(tmp) / "checkpoint"
        neutral.symlink_to(directory.resolve(), target_is_directory=True)
        try:
            cfg = loading.get_pretrained_model_config(str(neutral), hf_cfg=hf_model.config.to_dict(), dtype=dtype,
                                                      device="cpu", fold_ln=False)
            cfg.model_name = directory.name
            state = loading.get_pretrained_state_dict(str(neutral), cfg, hf_model, dtype=dtype)
        except (AttributeError, KeyError, TypeError, ValueError, AssertionError) as e:
            raise ModelLoadError(f"{directory / CONFIG}: HookedTransformer cannot convert this checkpoint "
                                 f"({e.__class__.__name__}: {e}); load it with backend='bridge'") from e
    model = HookedTransformer(cfg, tokenizer, move_to_device=False)
    with _quiet():
        model.load_and_process_state_dict(state, fold_ln=False, center_writing_weights=False, center_unembed=False,
                                          fold_value_biases=False, refactor_factored_attn_matrices=False)
    return model


def _bridge_from_hf(directory: Path, hf_model, tokenizer, dtype: torch.dtype):
    from transformer_lens.model_bridge import TransformerBridge

    with _quiet():
        bridge = TransformerBridge.boot_transformers(str(directory), hf_model=hf_model, tokenizer=tokenizer,
                                                     device="cpu", dtype=dtype)
        bridge.enable_compatibility_mode(disable_warnings=True, no_processing=True)
    return bridge


class _quiet:
    """Silence TransformerLens's and transformers' informational logging and warnings."""

    def __enter__(self):
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter("ignore")
        self._level = logging.root.manager.disable
        logging.disable(logging.WARNING)

    def __exit__(self, *exc):
        logging.disable(self._level)
        self._warnings.__exit__(*exc)


# --- hub names, from the local cache only ---------------------------------------------------
def resolve_hub_name(name: str) -> Path:
    """The local snapshot directory of hub model `name` (or a TransformerLens alias of one),
    from the Hugging Face cache only; a `ModelLoadError` says where it looked and what it found."""
    from huggingface_hub import constants, scan_cache_dir, snapshot_download
    from huggingface_hub.errors import CacheNotFound, LocalEntryNotFoundError

    repo_id = _official_name(name)
    cache = Path(os.environ.get("HF_HUB_CACHE", constants.HF_HUB_CACHE))
    try:
        return Path(snapshot_download(repo_id, local_files_only=True, cache_dir=cache))
    except (LocalEntryNotFoundError, OSError, ValueError):
        pass
    try:
        found = sorted(r.repo_id for r in scan_cache_dir(cache).repos if r.repo_type == "model")
    except CacheNotFound:
        found = []
    seen = f"it holds {', '.join(found[:20])}" if found else "it holds no models"
    alias = f" ({name!r} is TransformerLens's name for {repo_id!r})" if repo_id != name else ""
    raise ModelLoadError(f"{name!r} is neither a zoo model ({', '.join(registry.ZOO)}), a model directory, nor a "
                         f"hub model in the local Hugging Face cache{alias}: looked in {cache}; {seen}. interp never "
                         "downloads: copy the checkpoint there (or anywhere, and pass its directory)")


def _official_name(name: str) -> str:
    try:
        from transformer_lens.loading_from_pretrained import get_official_model_name

        return get_official_model_name(name)
    except ValueError:
        return name


# --- the command line's model flags ---------------------------------------------------------
def add_model_flags(parser, dtype_flag: str = "--dtype") -> None:
    """`--device`, `--dtype` (named `dtype_flag` where `--dtype` means something else) and
    `--backend` for a subcommand that loads `--model`."""
    from interp.config import DTYPE_NAMES

    g = parser.add_argument_group("model placement")
    g.add_argument("--device", default=None, help="device the model runs on: cpu, cuda, cuda:1, mps "
                   "(default: cuda when there is one, else cpu)")
    g.add_argument(dtype_flag, dest="model_dtype", default=None, choices=DTYPE_NAMES,
                   help="the model's parameter dtype (default: float32)")
    g.add_argument("--backend", default=None, choices=BACKENDS, help="TransformerLens class for a Hugging Face "
                   "checkpoint (default: HookedTransformer where it converts the architecture, else TransformerBridge)")


def model_from_flags(args, name: str | None = None):
    """`load_model` of `args.model` (or `name`) with the flags of `add_model_flags`."""
    dtype = None if args.model_dtype is None else getattr(torch, args.model_dtype)
    return load_model(args.model if name is None else name, device=args.device, dtype=dtype, backend=args.backend)
