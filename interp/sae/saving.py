"""SAE checkpoints in the sae-lens 6 layout: `cfg.json` + `sae_weights.safetensors`.

topk and gradient (plain mode) SAEs are written as sae-lens `topk`; Mutual/Feature Choice as
`jumprelu` with their inference thresholds; top_afa as architecture `top_afa`, which sae-lens
does not know (interp-only: load it with `interp.sae.load`). Transcoders (`SAEConfig.kind`) add
`_transcoder` or `_skip_transcoder`: Mutual/Feature Choice ones are sae-lens's own
`jumprelu_transcoder` / `jumprelu_skip_transcoder`; TopK ones are `topk_transcoder` /
`topk_skip_transcoder`, which sae-lens loads once `interp.sae.sae_lens_classes` is imported
(sae-lens has no TopK transcoder); `metadata.hook_name_out` names the predicted hook. The input scale is folded into
the weights, so the file is the SAE on raw activations; a per-token LayerNorm is written as
sae-lens's `normalize_activations="layer_norm"`, which sae-lens applies the same way. Our own config sits under the
`interp` key of cfg.json, which sae-lens ignores, with `weights_crc32`, the CRC-32 of
sae_weights.safetensors, which `load` checks (directories saved before it was recorded load
unchecked). Only safetensors and JSON; each file is written atomically, the weights first.
A missing, truncated or damaged file is an `SAELoadError` naming the file and what is wrong.
"""

from __future__ import annotations

import importlib.metadata
import json
import struct
import zlib
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

import interp
from interp.atomic import write_bytes
from interp.errors import InterpError
from interp.sae.config import SAEConfig
from interp.sae.module import SparseAutoencoder

CFG = "cfg.json"
WEIGHTS = "sae_weights.safetensors"
CHECKSUM = "weights_crc32"
"""Key of the weights file's CRC-32 (8 hex digits) in cfg.json's `interp` block."""


class SAELoadError(InterpError, ValueError):
    """A saved SAE directory cannot be loaded: a file is missing, damaged or disagrees with
    cfg.json. The message names the file and what is wrong."""


class MissingSAEFile(SAELoadError, FileNotFoundError):
    """A file of a saved SAE directory is missing."""


def architecture(sae: SparseAutoencoder) -> str:
    """The architecture cfg.json names: the variant's sae-lens one (topk, jumprelu) or, for an
    interp-only variant, its name; a transcoder's adds `_transcoder` / `_skip_transcoder`
    (jumprelu_transcoder and jumprelu_skip_transcoder are sae-lens's own; topk_transcoder and
    topk_skip_transcoder are registered into sae-lens by `interp.sae.sae_lens_classes`)."""
    arch = sae.variant.sae_lens_architecture or sae.cfg.variant
    return arch if not sae.cfg.is_transcoder else f"{arch}_{sae.cfg.kind}"


def sae_lens_config(sae: SparseAutoencoder, model_name: str | None, hook_name: str | None,
                    context_size: int | None, weights_crc32: int | None = None,
                    hook_name_out: str | None = None) -> dict:
    """The cfg.json dictionary of `sae` (sae-lens 6 fields, metadata, and our config under
    `interp`, with the weights file's CRC-32 when given). A transcoder's `hook_name` is the hook
    it reads and `metadata.hook_name_out` the hook it predicts."""
    cfg = sae.cfg
    arch = architecture(sae)
    out = {"architecture": arch, "d_in": cfg.d_in, "d_sae": cfg.n_latents, "dtype": "float32", "device": "cpu",
           "apply_b_dec_to_input": not cfg.is_transcoder, "reshape_activations": "none",
           "normalize_activations": "layer_norm" if cfg.normalize == "layer_norm" else "none"}
    if cfg.is_transcoder:
        out["d_out"] = cfg.d_out
    if sae.variant.sae_lens_architecture == "topk":
        out.update(k=cfg.k, rescale_acts_by_decoder_norm=False)
    out["metadata"] = {
        "sae_lens_version": importlib.metadata.version("sae-lens"),
        "sae_lens_training_version": None,
        "model_name": model_name, "hook_name": hook_name, "hook_head_index": None,
        "context_size": context_size, "prepend_bos": True, "model_class_name": "HookedTransformer",
        "interp_version": interp.__version__,
    }
    if cfg.is_transcoder:
        out["metadata"]["hook_name_out"] = hook_name_out
    out["interp"] = asdict(cfg)
    if weights_crc32 is not None:
        out["interp"][CHECKSUM] = f"{weights_crc32:08x}"
    return out


def save(sae: SparseAutoencoder, path: str | Path, *, model_name: str | None = None, hook_name: str | None = None,
         context_size: int | None = None, hook_name_out: str | None = None) -> Path:
    """Write `sae` as `path`/cfg.json + `path`/sae_weights.safetensors; returns the directory.
    A transcoder names the hook it predicts in `hook_name_out`."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = sae.folded_state()
    if sae.variant.sae_lens_architecture != "jumprelu":
        del state["threshold"]
    if sae.cfg.is_transcoder and sae.variant.sae_lens_architecture is None:  # interp-only: top-AFA reads it
        state["norm_ratio"] = sae.norm_ratio
    tensors = {k: v.detach().float().contiguous().cpu() for k, v in state.items()}
    weights = save_safetensors(tensors)
    write_bytes(path / WEIGHTS, weights)
    cfg = sae_lens_config(sae, model_name, hook_name, context_size, zlib.crc32(weights), hook_name_out)
    write_bytes(path / CFG, (json.dumps(cfg, indent=2) + "\n").encode())
    return path


def read_config(path: str | Path) -> dict:
    """cfg.json of a checkpoint directory, with a clear error when it is not one."""
    cfg_path = Path(path) / CFG
    if not cfg_path.is_file():
        raise MissingSAEFile(f"{cfg_path} is missing: {path} is not an SAE checkpoint (it needs {CFG} and {WEIGHTS})")
    try:
        raw = json.loads(cfg_path.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SAELoadError(f"{cfg_path}: not valid JSON ({e}); the file is damaged: save the SAE again") from e
    if not isinstance(raw, dict):
        raise SAELoadError(f"{cfg_path}: holds a JSON {type(raw).__name__}, not the table of an SAE config")
    return raw


def _safetensors_problem(data: bytes, error: SafetensorError) -> str:
    """What is wrong with a safetensors file that does not parse, in words."""
    if len(data) < 8:
        return f"truncated: {len(data)} bytes, shorter than the 8-byte header length"
    header = struct.unpack("<Q", data[:8])[0]
    if header > len(data) - 8:
        return f"its header claims {header} bytes but the file has only {len(data)}: truncated or damaged"
    try:
        entries = json.loads(data[8:8 + header])
        expected = 8 + header + max((v["data_offsets"][1] for k, v in entries.items() if k != "__metadata__"),
                                    default=0)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        detail = str(error).removeprefix("Error while deserializing: ")
        return f"not a readable safetensors file ({detail}): its header is damaged"
    if len(data) < expected:
        return f"truncated: {len(data)} bytes, its header lists {expected}"
    if len(data) > expected:
        return f"{len(data) - expected} bytes after the {expected} its header lists: appended to or damaged"
    return f"not a readable safetensors file ({str(error).removeprefix('Error while deserializing: ')}): damaged"


def read_weights(path: str | Path, expected_crc32: str | None = None) -> dict[str, torch.Tensor]:
    """The tensors of `path`/sae_weights.safetensors, checked against the CRC-32 recorded in
    cfg.json when there is one; raises `SAELoadError` naming the file and the fault."""
    weights_path = Path(path) / WEIGHTS
    try:
        data = weights_path.read_bytes()
    except FileNotFoundError:
        raise MissingSAEFile(f"{weights_path} is missing: an SAE directory holds {CFG} and {WEIGHTS}") from None
    except IsADirectoryError:
        raise SAELoadError(f"{weights_path} is a directory, not a safetensors file") from None
    if expected_crc32 is not None and f"{zlib.crc32(data):08x}" != expected_crc32:
        try:
            load_safetensors(data)
            why = "it parses, but it is not the file that was saved with this cfg.json"
        except SafetensorError as e:
            why = _safetensors_problem(data, e)
        raise SAELoadError(f"{weights_path}: CRC-32 {zlib.crc32(data):08x} differs from {expected_crc32} recorded "
                           f"in {CFG} ({why}); the directory is damaged or mixes two saves: save the SAE again")
    try:
        return load_safetensors(data)
    except SafetensorError as e:
        raise SAELoadError(f"{weights_path}: {_safetensors_problem(data, e)}") from None


def _config(path: Path, raw: dict) -> tuple[SAEConfig, str | None]:
    """The SAEConfig of cfg.json and its recorded weights checksum (None in older saves)."""
    where = f"{path / CFG} (interp)"
    if "interp" in raw:
        block = raw["interp"]
        if not isinstance(block, dict):
            raise SAELoadError(f"{where}: must be a table of SAEConfig fields, got {block!r}")
        block = dict(block)
        checksum = block.pop(CHECKSUM, None)
        if checksum is not None and not (isinstance(checksum, str) and len(checksum) == 8):
            raise SAELoadError(f"{where}: {CHECKSUM}={checksum!r} is not 8 hex digits")
        return SAEConfig.from_dict(block, where), checksum
    if raw.get("architecture") == "topk":
        norm = raw.get("normalize_activations", "none")
        if norm not in ("none", "layer_norm"):
            raise ValueError(f"{path / CFG}: normalize_activations={norm!r} is not supported; interp loads "
                             "'none' and 'layer_norm'")
        missing = [k for k in ("d_in", "d_sae", "k") if k not in raw]
        if missing:
            raise SAELoadError(f"{path / CFG}: a sae-lens topk config needs {missing}")
        return SAEConfig(d_in=raw["d_in"], n_latents=raw["d_sae"], variant="topk", k=raw["k"], normalize=norm), None
    raise ValueError(f"{path / CFG}: architecture {raw.get('architecture')!r} without an 'interp' section; "
                     "interp loads its own checkpoints and sae-lens topk ones")


def load(path: str | Path, backend: str = "auto") -> SparseAutoencoder:
    """Load any checkpoint written by `save` (every variant), or a plain sae-lens `topk` one.
    Raises `SAELoadError` when a file is missing, damaged or does not match cfg.json."""
    path = Path(path)
    cfg, checksum = _config(path, read_config(path))
    tensors = read_weights(path, checksum)
    weights_path = path / WEIGHTS
    sae = SparseAutoencoder(cfg, backend=backend)
    with torch.no_grad():
        for name in ("W_enc", "b_enc", "W_dec", "b_dec") + (("W_skip",) if sae.W_skip is not None else ()):
            if name not in tensors or tensors[name].shape != getattr(sae, name).shape:
                got = tuple(tensors[name].shape) if name in tensors else "missing"
                raise SAELoadError(f"{weights_path}: {name} is {got}, expected {tuple(getattr(sae, name).shape)} "
                                   f"from {CFG}")
            getattr(sae, name).copy_(tensors[name])
        if "threshold" in tensors:
            sae.threshold.copy_(tensors["threshold"])
            sae.threshold_updates.fill_(1)
        if "norm_ratio" in tensors and cfg.is_transcoder:
            sae.norm_ratio.copy_(tensors["norm_ratio"])
    return sae.eval()
