"""The main job, `interp train-sae`: cache a hook's activations (or reuse a matching cache),
train one SAE or a sweep on them, evaluate with the reconstruction spliced into the model,
and write `saes/<run>/` in the sae-lens layout with `training.json` and `metrics.json`.

Every choice is a field of `JobConfig` (flags or a TOML recipe: top-level keys, a `[train]`
table and `[[sae]]` tables); the defaults are the embedded job on zoo-dense.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
import torch
from safetensors.torch import save as save_safetensors

from interp.atomic import write_bytes
from interp.config import check_fields, check_value, from_dict, read_toml, to_dict
from interp.errors import ConfigError
from interp.sae import saving
from interp.sae.config import SAEConfig, SAETrainConfig
from interp.sae.evaluate import EvalDetails, evaluate_details
from interp.sae.trainer import SAETrainResult, train

DEFAULT_SAES = ({"variant": "topk", "n_latents": 2048, "k": 32, "dead_tokens": 250_000},)


@dataclass(frozen=True)
class JobConfig:
    model: str = "zoo-dense"
    """Model name or directory (`interp.load_model`)."""
    hook: str = "blocks.2.hook_resid_pre"
    """TransformerLens hook whose activations the SAEs reconstruct."""
    cache_tokens: int = 614_400
    """Tokens of the zoo corpus to cache (rounded up to whole contexts)."""
    cache_dir: str | None = None
    """Activation store directory; None: caches/<model>/<hook>-<cache_tokens>[-grads] in the current directory
    (git-ignored). Reused when it matches; a store of other settings there fails with a message (use another
    directory)."""
    eval_tokens: int = 16_384
    """Held-out tokens (zoo corpus built with eval_seed) for the evaluation."""
    eval_seed: int = 1_000
    """Seed of the held-out evaluation corpus."""
    out_dir: str = "saes"
    """Runs go to <out_dir>/<run>/ (and <out_dir>/<run>/<sae name>/ for a sweep)."""
    run: str | None = None
    """Run name; None: <model>-<hook>-<variant>-k<k> (first SAE)."""
    saes: tuple[dict, ...] = DEFAULT_SAES
    """SAEConfig fields per SAE (d_in comes from the store); optional `name` for a sweep's subdirectory."""
    train: SAETrainConfig = field(default_factory=lambda: SAETrainConfig(batch_size=4096, n_tokens=1_228_800, lr=1e-3,
                                                                   warmup_steps=20))
    """Default: two passes over the cache (300 steps of 4096 tokens)."""
    report: str | None = None
    """Also write a Markdown comparison of the SAEs (matched L0, the papers' claims) to this path."""

    def __post_init__(self):
        check_fields(self)
        if not self.saes:
            raise ValueError("JobConfig.saes=() is not allowed: give at least one SAE table")
        for name in ("cache_tokens", "eval_tokens"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"JobConfig.{name}={getattr(self, name)!r} is not allowed: a positive integer")
        names = [s.get("name", f"sae{i}") for i, s in enumerate(self.saes)]
        if len(set(names)) != len(names):
            raise ValueError(f"JobConfig.saes: names {names} must be distinct")
        for i, s in enumerate(self.saes):  # field names and values are checked now, before any compute
            where = f"JobConfig.saes[{i}]"
            check_value(str, s.get("name", ""), f"{where}.name")
            SAEConfig.from_dict({k: v for k, v in s.items() if k != "name"}, where, d_in=1 << 20)

    @classmethod
    def from_toml(cls, path: str | Path, **overrides) -> "JobConfig":
        """Read a recipe (top-level fields, a `[train]` table, `[[sae]]` tables); `overrides`
        (non-None) replace its top-level fields."""
        data = read_toml(path)
        if "saes" in data:
            raise ConfigError(f"{path}: write each SAE as an [[sae]] table, not a 'saes' key")
        if "sae" in data:
            if not isinstance(data["sae"], list):
                raise ConfigError(f"{path}: [sae] must be an array of tables: write [[sae]] (one per SAE)")
            data["saes"] = data.pop("sae")
        data.update({k: v for k, v in overrides.items() if v is not None})
        return from_dict(cls, data, str(path))

    def sae_names(self) -> list[str]:
        return [s.get("name", s.get("variant", "topk")) if len(self.saes) > 1 else "sae" for s in self.saes]

    def sae_configs(self, d_in: int) -> list[SAEConfig]:
        return [SAEConfig.from_dict({"d_in": d_in, **{k: v for k, v in s.items() if k != "name"}}) for s in self.saes]

    def run_name(self) -> str:
        if self.run:
            return self.run
        first = self.sae_configs(1 << 20)[0]
        suffix = f"{first.variant}-k{first.k}" if len(self.saes) == 1 else "sweep"
        return f"{Path(self.model).name}-{self.hook}-{suffix}"

    def store_dir(self, grads: bool, weights: str = "") -> Path:
        """`cache_dir`, or a directory under caches/ named by the hook, the token count and
        `weights` (a fingerprint of the model's weights: retrained weights get a new cache)."""
        if self.cache_dir:
            return Path(self.cache_dir)
        name = "-".join(filter(None, (self.hook, str(self.cache_tokens), weights, "grads" if grads else "")))
        return Path("caches") / Path(self.model).name / name  # beside out_dir: both relative to the current directory

    def to_json(self) -> dict:
        return to_dict(self)


def weights_fingerprint(model: torch.nn.Module) -> str:
    """8 hex digits: a CRC-32 over every parameter's and buffer's name, shape and bytes."""
    crc = 0
    for name, tensor in model.state_dict().items():
        crc = zlib.crc32(f"{name}{tuple(tensor.shape)}".encode(), crc)
        crc = zlib.crc32(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy(), crc)
    return f"{crc:08x}"


@dataclass
class JobResult:
    run_dir: Path
    metrics: pd.DataFrame
    training: SAETrainResult
    details: EvalDetails


def run(cfg: JobConfig = JobConfig(), *, resume: bool = False, progress: bool = True, model=None,
        train_tokens: torch.Tensor | None = None, eval_tokens: torch.Tensor | None = None) -> JobResult:
    """Run the job. `model`, `train_tokens` (n_seq, ctx) and `eval_tokens` replace the model
    name and the zoo-corpus token sources (notebooks, tests)."""
    import interp.cache
    from interp.cache import sources
    from interp.models import load_model

    if model is None:
        model = load_model(cfg.model)
    grads = any(s.get("variant") == "gradient" for s in cfg.saes)
    store_dir = cfg.store_dir(grads, weights_fingerprint(model))
    store = interp.cache.write(model, cfg.hook, cfg.cache_tokens if train_tokens is None else train_tokens,
                               store_dir, grads=grads, resume=True, progress=progress, model_name=cfg.model)
    configs = cfg.sae_configs(store.d_model(cfg.hook))
    run_dir = Path(cfg.out_dir) / cfg.run_name()
    result = train(store, configs, cfg.train, hook=cfg.hook, checkpoint_dir=run_dir / "checkpoint",
                   resume=resume, progress=progress)
    if eval_tokens is None:
        eval_tokens = sources.resolve(cfg.eval_tokens, model, store.manifest.context_size, cfg.eval_seed).tokens
    names = cfg.sae_names()
    details = evaluate_details(dict(zip(names, result.saes)), model, eval_tokens, cfg.hook, progress=progress)
    for i, (name, sae) in enumerate(zip(names, result.saes)):
        out = run_dir if len(names) == 1 else run_dir / name
        saving.save(sae, out, model_name=cfg.model, hook_name=cfg.hook, context_size=store.manifest.context_size)
        rows = details.metrics[details.metrics.index.str.fullmatch(rf"{name}(\[grad\])?")]
        write_bytes(out / "metrics.json", (rows.reset_index().to_json(orient="records", indent=1, double_precision=15) + "\n").encode())
        training = {"job": cfg.to_json(), "sae": to_dict(sae.cfg), "store": str(store.path), "steps": result.steps,
                    "tokens": result.tokens, "history": [h for h in result.history if h["sae"] == i]}
        write_bytes(out / "training.json", (json.dumps(training, indent=1) + "\n").encode())
        write_bytes(out / "feature_densities.safetensors",
                     save_safetensors({"density": details.densities[name].float().contiguous(),
                                       "train_density_ema": result.stats[i].density.float().contiguous()}))
    if cfg.report:
        from interp.sae.report import results_markdown

        write_bytes(Path(cfg.report), results_markdown(details.metrics, cfg, result).encode())
    return JobResult(run_dir, details.metrics, result, details)


def with_overrides(cfg: JobConfig, *, sae: dict | None = None, train: dict | None = None, **top) -> JobConfig:
    """`cfg` with top-level fields, SAE fields (applied to every SAE) and train fields replaced."""
    saes = tuple({**s, **sae} for s in cfg.saes) if sae else cfg.saes
    return replace(cfg, saes=saes, train=replace(cfg.train, **(train or {})), **top)
