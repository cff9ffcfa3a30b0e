"""SAE checkpoints in the sae-lens 6 layout: `cfg.json` + `sae_weights.safetensors`.

topk and gradient (plain mode) SAEs are written as sae-lens `topk`; Mutual/Feature Choice as
`jumprelu` with their inference thresholds; top_afa as architecture `top_afa`, which sae-lens
does not know (interp-only: load it with `interp.sae.load`). The input scale is folded into
the weights, so the file is the SAE on raw activations; a per-token LayerNorm is written as
sae-lens's `normalize_activations="layer_norm"`, which sae-lens applies the same way. Our own config sits under the
`interp` key of cfg.json, which sae-lens ignores. Only safetensors and JSON; writes are atomic.
"""

from __future__ import annotations

import importlib.metadata
import json
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

import interp
from interp.atomic import write_bytes
from interp.sae.config import SAEConfig
from interp.sae.module import SparseAutoencoder

CFG = "cfg.json"
WEIGHTS = "sae_weights.safetensors"


def sae_lens_config(sae: SparseAutoencoder, model_name: str | None, hook_name: str | None,
                    context_size: int | None) -> dict:
    """The cfg.json dictionary of `sae` (sae-lens 6 fields, metadata, and our config under `interp`)."""
    cfg = sae.cfg
    arch = sae.variant.sae_lens_architecture or cfg.variant
    out = {"architecture": arch, "d_in": cfg.d_in, "d_sae": cfg.n_latents, "dtype": "float32", "device": "cpu",
           "apply_b_dec_to_input": True, "reshape_activations": "none",
           "normalize_activations": "layer_norm" if cfg.normalize == "layer_norm" else "none"}
    if arch == "topk":
        out.update(k=cfg.k, rescale_acts_by_decoder_norm=False)
    out["metadata"] = {
        "sae_lens_version": importlib.metadata.version("sae-lens"),
        "sae_lens_training_version": None,
        "model_name": model_name, "hook_name": hook_name, "hook_head_index": None,
        "context_size": context_size, "prepend_bos": True, "model_class_name": "HookedTransformer",
        "interp_version": interp.__version__,
    }
    out["interp"] = asdict(cfg)
    return out


def save(sae: SparseAutoencoder, path: str | Path, *, model_name: str | None = None, hook_name: str | None = None,
         context_size: int | None = None) -> Path:
    """Write `sae` as `path`/cfg.json + `path`/sae_weights.safetensors; returns the directory."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = sae.folded_state()
    if sae.variant.sae_lens_architecture != "jumprelu":
        del state["threshold"]
    tensors = {k: v.detach().float().contiguous().cpu() for k, v in state.items()}
    write_bytes(path / WEIGHTS, save_safetensors(tensors))
    write_bytes(path / CFG, (json.dumps(sae_lens_config(sae, model_name, hook_name, context_size), indent=2)
                              + "\n").encode())
    return path


def read_config(path: str | Path) -> dict:
    """cfg.json of a checkpoint directory, with a clear error when it is not one."""
    cfg_path = Path(path) / CFG
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path} is missing: {path} is not an SAE checkpoint (it needs {CFG} and {WEIGHTS})")
    try:
        return json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{cfg_path}: not valid JSON ({e})") from e


def load(path: str | Path, backend: str = "auto") -> SparseAutoencoder:
    """Load any checkpoint written by `save` (every variant), or a plain sae-lens `topk` one."""
    path = Path(path)
    raw = read_config(path)
    if "interp" in raw:
        cfg = SAEConfig(**raw["interp"])
    elif raw.get("architecture") == "topk":
        norm = raw.get("normalize_activations", "none")
        if norm not in ("none", "layer_norm"):
            raise ValueError(f"{path / CFG}: normalize_activations={norm!r} is not supported; interp loads "
                             "'none' and 'layer_norm'")
        cfg = SAEConfig(d_in=raw["d_in"], n_latents=raw["d_sae"], variant="topk", k=raw["k"], normalize=norm)
    else:
        raise ValueError(f"{path / CFG}: architecture {raw.get('architecture')!r} without an 'interp' section; "
                         "interp loads its own checkpoints and sae-lens topk ones")
    weights_path = path / WEIGHTS
    if not weights_path.is_file():
        raise FileNotFoundError(f"{weights_path} is missing")
    tensors = load_safetensors(weights_path.read_bytes())
    sae = SparseAutoencoder(cfg, backend=backend)
    with torch.no_grad():
        for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
            if name not in tensors or tensors[name].shape != getattr(sae, name).shape:
                got = tuple(tensors[name].shape) if name in tensors else "missing"
                raise ValueError(f"{weights_path}: {name} is {got}, expected {tuple(getattr(sae, name).shape)}")
            getattr(sae, name).copy_(tensors[name])
        if "threshold" in tensors:
            sae.threshold.copy_(tensors["threshold"])
            sae.threshold_updates.fill_(1)
    return sae.eval()
