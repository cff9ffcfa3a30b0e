"""Resumable training checkpoints: every SAE's parameters and buffers, its Adam state and its
latent statistics in one safetensors file, plus a JSON file naming it. Both are written
atomically, tensors first, so a kill at any point leaves the last complete checkpoint.
Never pickle: Adam's state is flattened into named tensors.

The JSON side also records every setting that changes the result (`settings`: the training
config, the store's fingerprint, the hook, the SAE configs and, on CPU, the thread count) and
the logged history so far; `check_resume` refuses to continue a checkpoint under other
settings, naming each field that differs with both values. A resumed run at the same settings
ends byte-identical to an uninterrupted one."""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from interp.atomic import write_bytes
from interp.config import to_dict
from interp.errors import ConfigError, MissingFile
from interp.sae.config import SAEConfig
from interp.sae.module import SparseAutoencoder
from interp.sae.stats import LatentStats

STATE = "checkpoint.json"
WEIGHTS = re.compile(r"checkpoint-\d{8}\.safetensors")
NOT_RESULT = ("checkpoint_every",)
"""SAETrainConfig fields that change when checkpoints are written, not what is computed."""


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


def store_fingerprint(store_path: str | Path) -> str:
    """8 hex digits: a CRC-32 of what the store at `store_path` holds (every manifest field:
    model, hooks, shapes, dtype, writer config, each shard's size and checksum), not of where
    it is or whether its writer has finished."""
    from interp.cache.format import read_manifest

    held = {k: v for k, v in asdict(read_manifest(Path(store_path))).items()
            if k not in ("complete", "manifest_checksum")}
    return f"{zlib.crc32(json.dumps(to_dict(held), sort_keys=True, default=str).encode()):08x}"


def hook_key(hook: str | None, target_hook: str | None = None) -> str | None:
    """The hook a run's settings record: `hook`, or "hook -> target_hook" for transcoders."""
    return hook if target_hook is None else f"{hook} -> {target_hook}"


def settings(train: dict, hook: str | None, store_path: str | Path, configs: list[dict], device: str) -> dict:
    """Every setting that changes a run's result. `train`: the SAETrainConfig as a dict;
    `device`: the type of the device the SAEs train on. The thread count is recorded on CPU,
    where float sums (and so the bytes of the weights) depend on it; elsewhere it is None."""
    return {"train": {k: v for k, v in train.items() if k not in NOT_RESULT}, "hook": hook,
            "store": store_fingerprint(store_path), "saes": configs,
            "threads": torch.get_num_threads() if device == "cpu" else None}


def save(directory: str | Path, step: int, saes: list[SparseAutoencoder], optimizers: list[torch.optim.Optimizer],
         stats: list[LatentStats], meta: dict, history: list[dict] | None = None) -> Path:
    """Write the checkpoint of `step` into `directory` (created); returns the JSON path. `meta`
    holds "train" (the SAETrainConfig as a dict), "hook" and "store" (the store's path), from
    which the run's `settings` are recorded; `history`: the logged steps so far (all of them,
    including those before a resume)."""
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
    configs = [asdict(s.cfg) for s in saes]
    device = next(saes[0].parameters()).device.type
    record = dict(meta, step=step, weights=weights, configs=configs,
                  settings=settings(meta["train"], meta.get("hook"), meta["store"], configs, device))
    if history is not None:
        record["history"] = history
    write_bytes(directory / STATE, (json.dumps(to_dict(record), indent=1) + "\n").encode())
    if previous and previous["weights"] != weights:
        (directory / previous["weights"]).unlink(missing_ok=True)
    return directory / STATE


def read_meta(directory: str | Path) -> dict | None:
    """The JSON side of the checkpoint in `directory`, or None when there is none."""
    path = Path(directory) / STATE
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid JSON ({e}); the checkpoint is damaged: start over without "
                          "--resume / resume=True") from e
    if not isinstance(meta, dict) or not isinstance(meta.get("weights"), str) or "configs" not in meta:
        raise ConfigError(f"{path}: not a training checkpoint (no 'weights' and 'configs'); start over without "
                          "--resume / resume=True")
    return meta


def _differences(old, new, where: str) -> list[str]:
    """'field is A in the checkpoint, B in this run' for each leaf that differs."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in sorted(set(old) | set(new), key=str)
                for d in _differences(old.get(k), new.get(k), f"{where}.{k}" if where else str(k))]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in _differences(a, b, f"{where}[{i}]")]
    return [] if old == new else [f"{where} is {old!r} in the checkpoint, {new!r} in this run"]


def check_resume(directory: str | Path, store_path: str | Path, configs: list, train, hook: str | None) -> dict | None:
    """Refuse (ConfigError naming each field with both values) to resume the checkpoint in
    `directory` with other settings than it was written with: the training config `train`
    (an SAETrainConfig), the store at `store_path` (by content), `hook`, the SAE `configs`,
    and on CPU the thread count while steps are left. Returns the checkpoint's JSON side, or
    None when there is no checkpoint (nothing to compare: the run starts from step 0)."""
    directory = Path(directory)
    meta = read_meta(directory)
    if meta is None:
        return None
    configs = [asdict(c) for c in configs]
    train = to_dict(train)
    device = train.get("device") or "cpu"
    now = settings(train, hook, store_path, configs, "cpu" if str(device).startswith("cpu") else str(device))
    then = meta.get("settings")
    if then is None:  # written before settings were recorded: compare what it holds
        then = {"train": {k: v for k, v in meta.get("train", {}).items() if k not in NOT_RESULT}, "saes": meta["configs"]}
    if "saes" in then:  # a format-1 checkpoint holds flat SAE configs: compare them as this interp reads them
        then = {**then, "saes": [asdict(SAEConfig.from_dict(c)) for c in then["saes"]]}
    then_threads = then.get("threads")
    differences = _differences({k: v for k, v in then.items() if k != "threads"},
                               {k: now[k] for k in then if k != "threads"}, "")
    if differences:
        raise ConfigError(f"cannot resume from {directory / STATE}: its settings differ from this run's: "
                          f"{'; '.join(differences)}. Resume with the checkpoint's settings, or start over without "
                          "--resume / resume=True (or in another directory)")
    finished = meta.get("step") is not None and meta.get("step") == meta.get("total_steps")
    if then_threads is not None and then_threads != now["threads"] and not finished:  # no step left: no sum to differ
        raise ConfigError(f"cannot resume from {directory / STATE}: threads is {then_threads} in the checkpoint, "
                          f"{torch.get_num_threads()} in this run (CPU float sums, and so the weights, depend on it). "
                          f"Resume with OMP_NUM_THREADS={then_threads} (or torch.set_num_threads({then_threads})), or "
                          "start over without --resume / resume=True")
    return meta


def prune(directory: str | Path) -> list[Path]:
    """Remove what a kill can leave beside the checkpoint in `directory`: weights files that
    checkpoint.json does not name and temporary files. Returns what was removed."""
    directory = Path(directory)
    meta = read_meta(directory)
    keep = meta["weights"] if meta else None
    removed = []
    for path in sorted(directory.iterdir()) if directory.is_dir() else []:
        if (WEIGHTS.fullmatch(path.name) and path.name != keep) or (path.name.startswith(".") and path.name.endswith(".tmp")):
            path.unlink()
            removed.append(path)
    return removed


def load(directory: str | Path, saes: list[SparseAutoencoder], optimizers: list[torch.optim.Optimizer]
         ) -> tuple[Checkpoint, list[LatentStats]]:
    """Restore `saes` and `optimizers` in place from `directory`; returns the checkpoint (its
    `meta` holds the history so far) and the stats. The SAE configs must match (see
    `check_resume` for the other settings)."""
    directory = Path(directory)
    meta = read_meta(directory)
    if meta is None:
        raise MissingFile(f"{directory / STATE} is missing: nothing to resume")
    configs = [asdict(s.cfg) for s in saes]
    if meta["configs"] != configs:
        differences = _differences({"saes": meta["configs"]}, {"saes": configs}, "")
        raise ConfigError(f"{directory / STATE}: its SAE configs differ from this run's: {'; '.join(differences)}. "
                          "Resume with the same configs or use another checkpoint directory")
    try:
        tensors = load_safetensors((directory / meta["weights"]).read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"{directory / meta['weights']} is missing (named by {directory / STATE}): the checkpoint "
                          "is incomplete; start over without --resume / resume=True") from None
    except SafetensorError as e:
        raise ConfigError(f"{directory / meta['weights']}: not a readable safetensors file ({e}); the checkpoint is "
                          "damaged: start over without --resume / resume=True") from None
    stats = []
    for i, (sae, opt) in enumerate(zip(saes, optimizers)):
        prefix = f"sae{i}."
        sae.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
        _load_optimizer(opt, tensors, f"opt{i}.")
        stats.append(LatentStats.from_tensors(tensors, f"stats{i}."))
    return Checkpoint(int(meta["step"]), meta), stats
