"""Resumable training checkpoints: every SAE's parameters and buffers, its Adam state and its
latent statistics in one safetensors file, plus a JSON file naming it. Both are written
atomically, tensors first, so a kill at any point leaves the last complete checkpoint.
Never pickle: Adam's state is flattened into named tensors."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from interp.atomic import write_bytes
from interp.sae.module import SparseAutoencoder
from interp.sae.stats import LatentStats

STATE = "checkpoint.json"


class Checkpoint(NamedTuple):
    step: int
    """Optimizer steps completed."""
    meta: dict
    """The JSON side: configs, step, history."""


def _optimizer_tensors(opt: torch.optim.Optimizer, prefix: str) -> dict[str, torch.Tensor]:
    out = {}
    for pid, state in opt.state_dict()["state"].items():
        for key, value in state.items():
            out[f"{prefix}{pid}.{key}"] = torch.as_tensor(value).clone()
    return out


def _load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], prefix: str) -> None:
    sd = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith(prefix):
            pid, key = name[len(prefix):].split(".", 1)
            state.setdefault(int(pid), {})[key] = value.clone()
    opt.load_state_dict({"state": state, "param_groups": sd["param_groups"]})


def save(directory: str | Path, step: int, saes: list[SparseAutoencoder], optimizers: list[torch.optim.Optimizer],
         stats: list[LatentStats], meta: dict) -> Path:
    """Write the checkpoint of `step` into `directory` (created); returns the JSON path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for i, (sae, opt, st) in enumerate(zip(saes, optimizers, stats)):
        tensors.update({f"sae{i}.{k}": v.detach().clone().contiguous() for k, v in sae.state_dict().items()})
        tensors.update(_optimizer_tensors(opt, f"opt{i}."))
        tensors.update(st.tensors(f"stats{i}."))
    weights = f"checkpoint-{step:08d}.safetensors"
    write_bytes(directory / weights, save_safetensors(tensors))
    previous = read_meta(directory)
    write_bytes(directory / STATE, (json.dumps(dict(meta, step=step, weights=weights,
                                                     configs=[asdict(s.cfg) for s in saes]), indent=1) + "\n").encode())
    if previous and previous["weights"] != weights:
        (directory / previous["weights"]).unlink(missing_ok=True)
    return directory / STATE


def read_meta(directory: str | Path) -> dict | None:
    """The JSON side of the checkpoint in `directory`, or None when there is none."""
    path = Path(directory) / STATE
    return json.loads(path.read_text()) if path.is_file() else None


def load(directory: str | Path, saes: list[SparseAutoencoder], optimizers: list[torch.optim.Optimizer]
         ) -> tuple[Checkpoint, list[LatentStats]]:
    """Restore `saes` and `optimizers` in place from `directory`; returns the checkpoint and the stats."""
    directory = Path(directory)
    meta = read_meta(directory)
    if meta is None:
        raise FileNotFoundError(f"{directory / STATE} is missing: nothing to resume")
    configs = [asdict(s.cfg) for s in saes]
    if meta["configs"] != configs:
        raise ValueError(f"{directory / STATE}: its SAE configs differ from this run's; resume with the same "
                         f"configs or use another checkpoint directory\n  checkpoint: {meta['configs']}\n  run: {configs}")
    tensors = load_safetensors((directory / meta["weights"]).read_bytes())
    stats = []
    for i, (sae, opt) in enumerate(zip(saes, optimizers)):
        prefix = f"sae{i}."
        sae.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
        _load_optimizer(opt, tensors, f"opt{i}.")
        stats.append(LatentStats.from_tensors(tensors, f"stats{i}."))
    return Checkpoint(int(meta["step"]), meta), stats
