"""The main job, `interp train-sae`: cache a hook's activations (or reuse a matching cache),
train one SAE or a sweep on them, evaluate with the reconstruction spliced into the model,
and write `saes/<run>/` in the sae-lens layout with `training.json` and `metrics.json`.
With `target_hook` the dictionaries are transcoders (input and target cached in one pass, the
prediction spliced in at the target); with `layers`, the same job at every listed layer.

Every choice is a field of `JobConfig` (flags or a TOML recipe: top-level keys, a `[train]`
table and `[[sae]]` tables); the defaults are the embedded job on zoo-dense.

Crash safety: the cache is written through the store's own resume path (a kill at any point,
even while its first manifest is written, is continued by the next run); the run directory is
built beside itself and swapped in whole (`interp.sae.rundir`) under the run's lock, so a kill
leaves the old run or the new one; `resume=True` continues the training checkpoint only under
the same settings (`checkpoint.check_resume`), and `training.json` keeps the whole history.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import pandas as pd
import torch
from safetensors.torch import save as save_safetensors

from interp.atomic import write_bytes
from interp.config import check_fields, check_value, from_dict, read_toml, to_dict
from interp.devices import model_device
from interp.errors import ConfigError
from interp.sae import checkpoint, rundir, saving
from interp.sae.config import SAEConfig, SAETrainConfig
from interp.sae.evaluate import EvalDetails, evaluate_details
from interp.sae.registry import get_variant
from interp.sae.trainer import SAETrainResult, train

DEFAULT_SAES = ({"variant": "topk", "n_latents": 2048, "k": 32, "dead_tokens": 250_000},)


@dataclass(frozen=True)
class JobConfig:
    model: str = "zoo-dense"
    """Model name or directory (`interp.load_model`)."""
    hook: str = "blocks.2.hook_resid_pre"
    """TransformerLens hook whose activations the SAEs reconstruct (a transcoder's input); with
    `layers`, a template with {layer}."""
    target_hook: str | None = None
    """None: SAEs reconstruct `hook`. A hook later in the forward pass (e.g.
    blocks.2.hook_mlp_out with hook = blocks.2.ln2.hook_normalized): transcoders read `hook` and
    predict this one; both are cached in one pass. [[sae]] tables without `kind` become
    kind = "transcoder". With `layers`, a template with {layer}."""
    layers: tuple[int, ...] = ()
    """Train the same dictionaries at each of these layers: `hook` and `target_hook` are
    templates with {layer}, every layer's hooks are cached in one pass, and layer L's run goes to
    <out_dir>/<run>/L<L>/ (empty: one run at `hook`)."""
    cache_tokens: int = 614_400
    """Tokens of the zoo corpus to cache (rounded up to whole contexts)."""
    cache_dir: str | None = None
    """Activation store directory; None: caches/<model>/<hook>-<cache_tokens>[-grads] in the current directory
    (git-ignored). Reused when it matches; a store of other settings there fails with a message (use another
    directory)."""
    eval_tokens: int = 16_384
    """Evaluation tokens per part of the held-out text (`interp.cache.sources.heldout`: prose and
    task documents that share no document and no 32-token window with the training corpus).
    The metrics are on the prose part; the task part's are beside them as task_* columns."""
    eval_seed: int = 1_000
    """Seed of the held-out evaluation text."""
    calibrate_on: Literal["train", "heldout"] = "train"
    """What sets a variant's inference state after training (the thresholds of Mutual/Feature
    Choice, `Variant.calibrate`): train, a sample of the training activations; heldout, the
    activations of `train.init_tokens` tokens of held-out prose that share no paragraph with the
    evaluation's (`interp.cache.sources.calibration`). heldout suits a model whose training text
    it has memorised (the zoo's), whose held-out activations differ from the training ones."""
    out_dir: str = "saes"
    """Runs go to <out_dir>/<run>/ (and <out_dir>/<run>/<sae name>/ for a sweep)."""
    run: str | None = None
    """Run name; None: <model>-<hook>-<variant>-k<k> (first SAE)."""
    saes: tuple[dict, ...] = DEFAULT_SAES
    """SAEConfig fields per SAE (d_in comes from the store); optional `name` for a sweep's
    subdirectory; optional `sweep`, a table of field -> list of values (`params.<name>` for a
    variant's own field, e.g. {k = [8, 16], seed = [0, 1, 2]}): the table stands for every
    combination, named <name>-k8-s0 ... (`members`)."""
    train: SAETrainConfig = field(default_factory=lambda: SAETrainConfig(batch_size=4096, n_tokens=1_228_800, lr=1e-3,
                                                                   warmup_steps=20))
    """Default: two passes over the cache (300 steps of 4096 tokens)."""
    report: str | None = None
    """Also write a Markdown comparison of the SAEs (matched L0, the papers' claims) to this path."""
    report_against: str | None = None
    """The run directory of the same SAEs trained for fewer steps (e.g. saes/compare-length): the
    report sets every row's numbers beside that run's, and the claims' verdicts at both lengths."""

    def __post_init__(self):
        check_fields(self)
        if not self.saes:
            raise ValueError("JobConfig.saes=() is not allowed: give at least one SAE table")
        for name in ("cache_tokens", "eval_tokens"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"JobConfig.{name}={getattr(self, name)!r} is not allowed: a positive integer")
        for i, s in enumerate(self.saes):
            check_value(str, s.get("name", ""), f"JobConfig.saes[{i}].name")
        names = [m.name for m in self.members()]
        if len(set(names)) != len(names):
            raise ValueError(f"JobConfig.saes: names {names} must be distinct")
        self._check_hooks()
        for m in self.members():  # field names and values are checked now, before any compute
            where, s = f"JobConfig.saes[{m.table}]", m.fields
            for key in ("d_in", "d_out"):  # they would silently replace the store's widths
                if key in s:
                    raise ConfigError(f"{where}.{key}={s[key]!r} is not allowed: {key} comes from the store (the "
                                      f"{'input' if key == 'd_in' else 'target'} hook's d_model); remove it")
            kind = s.get("kind", self._default_kind())
            if self.target_hook is None and kind != "sae":
                raise ConfigError(f"{where}.kind={kind!r} needs a target: set JobConfig.target_hook (--target-hook), "
                                  "the hook the transcoder predicts, e.g. blocks.2.hook_mlp_out")
            if self.target_hook is not None and kind == "sae":
                raise ConfigError(f"{where}.kind='sae' is not allowed with target_hook={self.target_hook!r}: a run "
                                  "with a target trains transcoders (kind = 'transcoder' or 'skip_transcoder')")
            SAEConfig.from_dict(self._sae_table(s, 1 << 20, 1 << 20), where)

    def _check_hooks(self) -> None:
        templates = {"hook": self.hook, "target_hook": self.target_hook}
        for name, value in templates.items():
            if value is not None and bool(self.layers) != ("{layer}" in value):
                raise ConfigError(f"JobConfig.{name}={value!r} is not allowed: "
                                  + ("with layers, a template with {layer} (e.g. blocks.{layer}.hook_mlp_out)"
                                     if self.layers else "{layer} is only allowed with layers = [...]"))
        if len(set(self.layers)) != len(self.layers) or any(layer < 0 for layer in self.layers):
            raise ConfigError(f"JobConfig.layers={list(self.layers)!r} is not allowed: distinct layer indices >= 0")
        if self.target_hook is not None and self.target_hook == self.hook:
            raise ConfigError(f"JobConfig.target_hook={self.target_hook!r} is not allowed: it is the input hook; a "
                              "transcoder predicts another hook")
        if self.layers and self.report:
            raise ConfigError("JobConfig.report is not allowed with layers: the report compares the SAEs of one "
                              "layer (run one layer with report = ..., or leave report out)")

    def _default_kind(self) -> str:
        return "sae" if self.target_hook is None else "transcoder"

    def _sae_table(self, s: dict, d_in: int, d_out: int | None) -> dict:
        table = {"d_in": d_in, "kind": self._default_kind(), **{k: v for k, v in s.items() if k != "name"}}
        if table["kind"] != "sae":
            table["d_out"] = d_out
        return table

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

    def members(self) -> list["SweepMember"]:
        """Every SAE the job trains, in order: each [[sae]] table, or each combination of its
        `sweep` values (the last key varying fastest)."""
        out = []
        for i, s in enumerate(self.saes):
            base = {k: v for k, v in s.items() if k != "sweep"}
            family = s.get("name", s.get("variant", "topk"))
            for values in _sweep_values(s.get("sweep"), f"JobConfig.saes[{i}].sweep"):
                fields = _with_swept(base, values, f"JobConfig.saes[{i}].sweep")
                name = "-".join([family, *(f"{_label(key)}{_show(v)}" for key, v in values)])
                out.append(SweepMember(name, family, i, fields, values))
        return out

    def sae_names(self) -> list[str]:
        members = self.members()
        return [m.name for m in members] if len(members) > 1 else ["sae"]

    def sae_configs(self, d_in: int, d_out: int | None = None) -> list[SAEConfig]:
        """The SAEConfig of every SAE (`members`), with the store's widths (`d_out`: the target's)."""
        return [SAEConfig.from_dict(self._sae_table(m.fields, d_in, d_out)) for m in self.members()]

    def pairs(self) -> list[tuple[str, str | None, str]]:
        """(hook, target_hook, subdirectory) of each run: one, or one per layer (L<layer>)."""
        if not self.layers:
            return [(self.hook, self.target_hook, "")]
        return [(self.hook.format(layer=layer), None if self.target_hook is None else
                 self.target_hook.format(layer=layer), f"L{layer}") for layer in self.layers]

    def hooks(self) -> list[str]:
        """Every hook the job caches (all layers' inputs and targets, in one pass)."""
        return [h for hook, target, _ in self.pairs() for h in (hook, target) if h is not None]

    def run_name(self) -> str:
        if self.run:
            return self.run
        first = self.sae_configs(1 << 20, 1 << 20)[0]
        suffix = f"{first.variant}-k{first.k}" if len(self.members()) == 1 else "sweep"
        if first.is_transcoder:
            suffix = f"{first.kind}-{suffix}"
        where = self.hook if not self.layers else "layers" + "_".join(map(str, self.layers))
        return f"{Path(self.model).name}-{where}-{suffix}"

    def store_dir(self, grads: bool, weights: str = "") -> Path:
        """`cache_dir`, or a directory under caches/ named by the hooks, the token count and
        `weights` (a fingerprint of the model's weights: retrained weights get a new cache)."""
        if self.cache_dir:
            return Path(self.cache_dir)
        hooks = self.hook if self.target_hook is None and not self.layers else \
            f"{len(self.hooks())}hooks-{zlib.crc32(','.join(self.hooks()).encode()):08x}"
        name = "-".join(filter(None, (hooks, str(self.cache_tokens), weights, "grads" if grads else "")))
        return Path("caches") / Path(self.model).name / name  # beside out_dir: both relative to the current directory

    def to_json(self) -> dict:
        return to_dict(self)


@dataclass(frozen=True)
class SweepMember:
    """One SAE of a job: its name (the run's subdirectory), its family (the name of the
    [[sae]] table it comes from: one curve of a sweep), that table's index, and its fields."""
    name: str
    family: str
    table: int
    fields: dict
    swept: tuple = ()
    """The (key, value) pairs its table's sweep gave it."""

    @property
    def group(self) -> str:
        """The family and its swept values other than seed: the SAEs that differ only in seed
        share it (one row of a report, mean ± std over them)."""
        return "-".join([self.family, *(f"{_label(k)}{_show(v)}" for k, v in self.swept if k != "seed")])


_LABELS = {"seed": "s"}


def _label(key: str) -> str:
    key = key.rsplit(".", 1)[-1]
    return _LABELS.get(key, key)


def _show(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _sweep_values(sweep, where: str) -> list[tuple[tuple[str, object], ...]]:
    """Every combination of a `sweep` table's values, as ((key, value), ...) in key order."""
    if sweep is None:
        return [()]
    if not isinstance(sweep, dict) or not sweep:
        raise ConfigError(f"{where}={sweep!r} is not allowed: a table of field -> list of values, e.g. "
                          "sweep = {k = [8, 16, 32], seed = [0, 1, 2]}")
    for key, values in sweep.items():
        if not isinstance(values, list) or not values or len(set(map(repr, values))) != len(values):
            raise ConfigError(f"{where}.{key}={values!r} is not allowed: a non-empty list of distinct values")
        if key in ("name", "sweep", "d_in", "d_out"):
            raise ConfigError(f"{where}.{key} is not allowed: sweep a field of SAEConfig or params.<field>")
    combos = [()]
    for key, values in sweep.items():
        combos = [c + ((key, v),) for c in combos for v in values]
    return combos


def _with_swept(base: dict, values, where: str) -> dict:
    fields = {**base, "params": dict(base["params"])} if isinstance(base.get("params"), dict) else dict(base)
    for key, value in values:
        if key.startswith("params."):
            if not isinstance(fields.setdefault("params", {}), dict):
                raise ConfigError(f"{where}.{key} is not allowed: the table's params is not a table")
            fields["params"][key.split(".", 1)[1]] = value
        elif "." in key:
            raise ConfigError(f"{where}.{key} is not allowed: a field of SAEConfig, or params.<field> for the "
                              "variant's own")
        else:
            fields[key] = value
    return fields


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
    layers: dict[str, "JobResult"] = field(default_factory=dict)
    """A job over `layers`: each layer's own result by subdirectory (L<layer>); empty otherwise."""


def _check_paths(cfg: JobConfig) -> None:
    """Output paths that cannot be written fail before any compute, naming the field."""
    out = Path(cfg.out_dir)
    for parent in (out, *out.parents):
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"JobConfig.out_dir={cfg.out_dir!r} is not allowed: {parent} is a file, not a "
                                  "directory")
            break
    run_dir = out / cfg.run_name()
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"JobConfig.run={cfg.run_name()!r} is not allowed: {run_dir} is a file, not a run directory")
    if cfg.cache_dir and Path(cfg.cache_dir).exists() and not Path(cfg.cache_dir).is_dir():
        raise ConfigError(f"JobConfig.cache_dir={cfg.cache_dir!r} is not allowed: it is a file, not a store directory")
    if cfg.report and Path(cfg.report).is_dir():
        raise ConfigError(f"JobConfig.report={cfg.report!r} is not allowed: it is a directory; give a file path "
                          "such as RESULTS.md")
    if cfg.report_against is not None:
        if not cfg.report:
            raise ConfigError(f"JobConfig.report_against={cfg.report_against!r} needs report = <file>: it is a "
                              "section of the report")
        against = Path(cfg.report_against)
        if not against.is_dir() or not (any(against.glob("*/training.json")) or (against / "training.json").is_file()):
            raise ConfigError(f"JobConfig.report_against={cfg.report_against!r} is not allowed: not a finished run "
                              "directory of interp train-sae (no training.json); train that run first")


def _store_choice(cfg: JobConfig, grads: bool, weights: str) -> tuple[Path, bool]:
    """The job's store directory and whether it holds gradients. A job that needs none reuses a
    complete store that has them (a superset of what it reads): `cache_dir` when its manifest
    says so, else the default directory of a job with gradients, when it exists."""
    from interp.cache.format import StoreError, read_manifest

    if not grads:
        candidate = cfg.store_dir(True, weights)
        try:
            manifest = read_manifest(candidate)
        except StoreError:
            manifest = None
        if manifest is not None and manifest.has_grads and manifest.complete:
            return candidate, True
    return cfg.store_dir(grads, weights), grads


def _cache(model, cfg: JobConfig, store_dir: Path, grads: bool, train_tokens, progress: bool):
    """The job's store: a matching one is reused and a killed one continued (the store's own
    resume path); a store of other settings or a damaged one is the store's StoreError, with
    the job setting that chose the directory."""
    import interp.cache

    try:
        return interp.cache.write(model, cfg.hooks(), cfg.cache_tokens if train_tokens is None else train_tokens,
                                  store_dir, grads=grads, resume=True, progress=progress, model_name=cfg.model)
    except interp.cache.StoreError as e:
        where = "JobConfig.cache_dir (--cache-dir)" if cfg.cache_dir else \
            "the job's default cache for this model and hook; --cache-dir chooses another"
        raise interp.cache.StoreError(f"{e} [the job's cache {store_dir}: {where}]") from e


def _history(previous: list[dict], this_run: list[dict]) -> list[dict]:
    """The whole logged history: the checkpoint's (before a resume) and this run's, one entry
    per (step, SAE)."""
    entries = {(h["step"], h["sae"]): h for h in previous}
    entries.update({(h["step"], h["sae"]): h for h in this_run})
    return [entries[key] for key in sorted(entries)]


def _history_before(run_dir: Path, previous: dict | None) -> list[dict]:
    """The logged steps before the checkpoint `previous` that a resume continues: recorded in
    it, or (a finished run's checkpoint that holds none) in the run's training.json files."""
    if previous is None:
        return []
    if "history" in previous:
        return previous["history"]
    if checkpoint.read_meta(run_dir / rundir.CHECKPOINT) != previous:
        return []  # an unfinished run's checkpoint: its history before the kill was not recorded
    return [h for path in _training_files(run_dir) for h in json.loads(path.read_text()).get("history", [])]


def _training_files(run_dir: Path) -> list[Path]:
    """Every SAE's training.json in a committed run directory (the checkpoint's left out)."""
    return [p for p in sorted(run_dir.glob("**/training.json")) if p.parent.name != rundir.CHECKPOINT]


def _recorded_command(run_dir: Path, default: str | None) -> str | None:
    """The command line a run's training.json records (`default` where it records none)."""
    for path in _training_files(run_dir)[:1]:
        recorded = json.loads(path.read_text())
        return recorded["command"] if "command" in recorded else default
    return default


def _train_dead(sae, stats, tokens: int) -> dict | None:
    """The fraction of latents with no firing in the last `dead_tokens` training tokens, with
    that window (None: fewer tokens were trained than the window)."""
    if tokens < sae.cfg.dead_tokens:
        return None
    return {"fraction": float(stats.dead_mask(sae.cfg.dead_tokens).float().mean()), "window_tokens": sae.cfg.dead_tokens}


def _write_outputs(stage: Path, cfg: JobConfig, store, result: SAETrainResult, details: EvalDetails,
                   history: list[dict], hook: str, target_hook: str | None, command: str | None = None) -> None:
    names = cfg.sae_names()
    for i, (name, sae) in enumerate(zip(names, result.saes)):
        out = stage if len(names) == 1 else stage / name
        saving.save(sae, out, model_name=cfg.model, hook_name=hook, context_size=store.manifest.context_size,
                    hook_name_out=target_hook)
        rows = details.metrics[details.metrics.index.str.fullmatch(rf"{re.escape(name)}(\[[^\]]+\])?")]
        write_bytes(out / "metrics.json", (rows.reset_index().to_json(orient="records", indent=1, double_precision=15) + "\n").encode())
        training = {"job": cfg.to_json(), "command": command, "sae": to_dict(sae.cfg), "store": str(store.path),
                    "store_fingerprint": checkpoint.store_fingerprint(store.path), "threads": torch.get_num_threads(),
                    "steps": result.steps, "tokens": result.tokens,
                    "train_dead": _train_dead(sae, result.stats[i], result.tokens),
                    "history": [h for h in history if h["sae"] == i]}
        write_bytes(out / "training.json", (json.dumps(training, indent=1) + "\n").encode())
        write_bytes(out / "feature_densities.safetensors",
                     save_safetensors({"density": details.densities[name].float().contiguous(),
                                       "train_density_ema": result.stats[i].density.float().contiguous()}))


def run(cfg: JobConfig = JobConfig(), *, resume: bool = False, progress: bool = True, model=None,
        train_tokens: torch.Tensor | None = None, eval_tokens: torch.Tensor | None = None,
        command: str | None = None) -> JobResult:
    """Run the job. `model`, `train_tokens` (n_seq, ctx) and `eval_tokens` replace the model
    name and the zoo-corpus token sources (notebooks, tests). `resume`: continue the run's
    training checkpoint (refused, naming the field, if a setting that changes the result
    differs). Raises `interp.locks.LockError` when another process writes the same run.

    Evaluation is on held-out text (`heldout_sets`) unless `eval_tokens` is given. With
    `cfg.layers` every layer is its own run in <run>/L<layer>/ (trained one after the
    other from one cache); the result's metrics are indexed "L<layer>" (or "L<layer>/<name>"
    for a sweep) and `layers` holds each layer's own JobResult. With `cfg.report` the
    comparison is written there, its Pareto plots beside it (<report stem>-pareto.png/.html),
    stating `command` (the command line that ran the job) where given."""
    from interp.hooks import check_pair
    from interp.models import load_model

    _check_paths(cfg)
    if model is None:
        model = load_model(cfg.model)
    for hook, target, _ in cfg.pairs():  # every hook exists, every target follows its input: before any compute
        if hook not in model.hook_dict:
            raise ConfigError(f"JobConfig.hook={hook!r} is not a hook of the model (e.g. blocks.0.hook_resid_pre, "
                              "blocks.0.ln2.hook_normalized)")
        if target is not None:
            try:
                check_pair(model, hook, target, "JobConfig.target_hook")
            except ValueError as e:
                raise ConfigError(str(e)) from None
    grads = any(get_variant(c.variant).needs_grads for c in cfg.sae_configs(1 << 20, 1 << 20))
    store_dir, grads = _store_choice(cfg, grads, weights_fingerprint(model))
    store = _cache(model, cfg, store_dir, grads, train_tokens, progress)
    train_cfg = cfg.train
    if train_cfg.device is None and model_device(model).type != "cpu":  # train where the model runs (a GPU)
        train_cfg = replace(train_cfg, device=str(model_device(model)))
    eval_sets = heldout_sets(model, cfg.eval_tokens, store.manifest.context_size, cfg.eval_seed) \
        if eval_tokens is None else {"eval": eval_tokens}
    calibration = None
    if cfg.calibrate_on == "heldout":
        from interp.cache import sources

        calibration = sources.calibration(train_cfg.init_tokens, model, cfg.eval_tokens,
                                          store.manifest.context_size, cfg.eval_seed).tokens
    parts = {}
    for hook, target, sub in cfg.pairs():
        run_dir = Path(cfg.out_dir) / cfg.run_name() / sub
        parts[sub] = _train_one(cfg, model, store, train_cfg, hook, target, run_dir, eval_sets, resume, progress,
                                command, calibration)
    if not cfg.layers:
        result = parts[""]
        if cfg.report:  # from what the run directory now holds: `report.write_report` reruns it alone
            from interp.sae.report import write_report

            write_report(result.run_dir, cfg.report)
        return result
    metrics = pd.concat([r.metrics.rename(index=lambda name, sub=sub: sub if name == "sae" else f"{sub}/{name}")
                         .assign(layer=layer) for (sub, r), layer in zip(parts.items(), cfg.layers)])
    last = parts[cfg.pairs()[-1][2]]
    return JobResult(Path(cfg.out_dir) / cfg.run_name(), metrics, last.training, last.details, parts)


def _train_one(cfg: JobConfig, model, store, train_cfg: SAETrainConfig, hook: str, target_hook: str | None,
               run_dir: Path, eval_sets: dict[str, torch.Tensor], resume: bool, progress: bool,
               command: str | None = None, calibration: torch.Tensor | None = None) -> JobResult:
    """Train, evaluate and write the dictionaries of one (hook, target) pair into `run_dir`;
    `calibration`: token rows whose activations at `hook` set the variants' inference state
    (None: the trainer's sample of training activations)."""
    from interp.locks import hold_lock

    configs = cfg.sae_configs(store.d_model(hook), None if target_hook is None else store.d_model(target_hook))
    with hold_lock(run_dir, what="SAE run directory"):
        rundir.recover(run_dir)
        previous = None
        if resume:  # refused before anything is written
            previous = checkpoint.check_resume(rundir.resume_from(run_dir), store.path, configs, train_cfg,
                                               checkpoint.hook_key(hook, target_hook))
        before = _history_before(run_dir, previous)
        if previous is not None:  # a resume continues the same job: it keeps the command that started it
            command = _recorded_command(run_dir, command)
        stage = rundir.prepare(run_dir, resume)
        ckpt_dir = stage / rundir.CHECKPOINT
        try:
            result = train(store, configs, train_cfg, hook=hook, target_hook=target_hook, checkpoint_dir=ckpt_dir,
                           resume=resume, progress=progress)
        except BaseException:
            rundir.discard_if_empty(stage)
            raise
        names = cfg.sae_names()
        if calibration is not None:
            calibrate(result, model, calibration, hook)
        details = evaluate_sets(dict(zip(names, result.saes)), model, eval_sets, hook, target_hook=target_hook,
                                progress=progress)
        rundir.clear_outputs(stage)
        history = _history(before, result.history)
        _write_outputs(stage, cfg, store, result, details, history, hook, target_hook, command)
        rundir.commit(stage, run_dir)
    return JobResult(run_dir, details.metrics, result, details)


@torch.no_grad()
def calibrate(result: SAETrainResult, model, tokens: torch.Tensor, hook: str, batch_size: int = 32) -> None:
    """Set every trained SAE's inference state (`Variant.calibrate`) from the activations at
    `hook` of `tokens` (n_seq, ctx), every position, with the run's final latent statistics."""
    device = model_device(model)
    acts = []
    for start in range(0, len(tokens), batch_size):
        kept = {}
        model.run_with_hooks(tokens[start:start + batch_size].to(device),
                             fwd_hooks=[(hook, lambda act, hook: kept.setdefault("x", act))])
        acts.append(kept["x"].reshape(-1, kept["x"].shape[-1]))
    x_TD = torch.cat(acts)
    for sae, stats in zip(result.saes, result.stats):
        sae.variant.calibrate(sae, sae.to_sae_space(x_TD.to(sae.device, torch.float32))[0], stats)


def heldout_sets(model, n_tokens: int, context_size: int | None, seed: int) -> dict[str, torch.Tensor]:
    """{"prose": (n_seq, ctx), "task": (n_seq, ctx)} held-out evaluation tokens for `model`
    (`interp.cache.sources.heldout`), prose first: the metrics' own part."""
    from interp.cache import sources

    return {part: rows.tokens for part, rows in sources.heldout(n_tokens, model, context_size, seed).items()}


IDENTITY = ("kind", "variant", "n_latents", "k", "mode")
"""Metric columns that describe the dictionary, not its evaluation (not repeated per eval set)."""


def evaluate_sets(saes, model, sets: dict[str, torch.Tensor], hook: str, **kwargs) -> EvalDetails:
    """`evaluate_details` on each token set of `sets` (name -> (n_seq, ctx)): the first set's
    details, with every other set's metrics beside its own as <name>_<metric> columns (e.g.
    task_ce_recovered); `kwargs`: `evaluate_details`'s keywords."""
    (_, tokens), *others = sets.items()
    details = evaluate_details(saes, model, tokens, hook, **kwargs)
    for name, tokens in others:
        more = evaluate_details(saes, model, tokens, hook, **kwargs).metrics
        more = more.drop(columns=[c for c in IDENTITY if c in more.columns]).add_prefix(f"{name}_")
        details.metrics = details.metrics.join(more)
    return details


def with_overrides(cfg: JobConfig, *, sae: dict | None = None, train: dict | None = None, **top) -> JobConfig:
    """`cfg` with top-level fields, SAE fields (applied to every SAE) and train fields replaced;
    an SAE field that a table sweeps is refused (the sweep would silently win)."""
    for i, s in enumerate(cfg.saes):
        swept = [key for key in (sae or {}) if key in (s.get("sweep") or {}) or f"params.{key}" in (s.get("sweep") or {})]
        if swept:
            raise ConfigError(f"the flag for {swept[0]!r} is not allowed here: JobConfig.saes[{i}] sweeps it "
                              f"(sweep = {s['sweep']!r}); drop the flag or edit the recipe's sweep")
    saes = tuple({**s, **sae} for s in cfg.saes) if sae else cfg.saes
    return replace(cfg, saes=saes, train=replace(cfg.train, **(train or {})), **top)
