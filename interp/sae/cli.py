"""`interp train-sae` (the main job) and `interp eval-sae`."""

from __future__ import annotations

import json
from dataclasses import replace

import pandas as pd

COLUMNS = ["variant", "mode", "n_latents", "l0", "nmse", "dead_fraction", "dense_fraction", "ce_recovered",
           "ce_delta", "kl", "eps_lbo_median"]


def register(subparsers) -> None:
    from interp.config import add_flags
    from interp.sae.config import SAEConfig, SAETrainConfig
    from interp.sae.job import DEFAULT_SAES, JobConfig

    p = subparsers.add_parser("train-sae", help="cache activations, train SAE(s), evaluate, write saes/<run>/ "
                              "(no arguments: TopK on zoo-dense blocks.2.hook_resid_pre)",
                              description="Every flag is a field of interp.sae.JobConfig, its [train] table "
                              "(SAETrainConfig) or its [[sae]] tables (SAEConfig); a flag overrides the recipe.")
    p.add_argument("--config", help="TOML recipe (e.g. saes/recipes/default.toml); flags override it "
                   "(default: the embedded job)")
    p.add_argument("--resume", action="store_true", help="continue from saes/<run>/checkpoint (default: off)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (default: off)")
    job_defaults = JobConfig()
    add_flags(p.add_argument_group("job (top level of a recipe)"), JobConfig, exclude=("saes", "train"),
              defaults=job_defaults)
    add_flags(p.add_argument_group("training loop (the recipe's [train] table)"), SAETrainConfig, group="train",
              defaults=job_defaults.train, flags={"n_tokens": ("--n-tokens", "--train-tokens")})
    add_flags(p.add_argument_group("every SAE of the recipe (its [[sae]] tables)"), SAEConfig, group="sae",
              exclude=("d_in",), defaults=DEFAULT_SAES[0], flags={"seed": "--sae-seed"})
    p.set_defaults(func=_train_sae)

    e = subparsers.add_parser("eval-sae", help="evaluate a saved SAE with its reconstruction spliced into the model")
    e.add_argument("path", help="SAE directory (cfg.json + sae_weights.safetensors)")
    e.add_argument("--model", help="model to splice the SAE into (default: the model named in cfg.json)")
    add_flags(e, JobConfig, include=("eval_tokens", "eval_seed"))
    e.set_defaults(func=_eval_sae)


def print_table(metrics: pd.DataFrame) -> None:
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.4g}".format):
        print(metrics[[c for c in COLUMNS if c in metrics.columns]].to_string())


def _train_sae(args) -> int:
    from interp.config import flag_values
    from interp.errors import UserError
    from interp.sae import job
    from interp.sae.config import SAEConfig, SAETrainConfig
    from interp.sae.trainer import NonFiniteLoss

    cfg = job.JobConfig.from_toml(args.config) if args.config else job.JobConfig()
    cfg = job.with_overrides(cfg, sae=flag_values(args, SAEConfig, "sae"), train=flag_values(args, SAETrainConfig, "train"),
                             **flag_values(args, job.JobConfig))
    print("interp train-sae config:\n" + json.dumps(cfg.to_json(), indent=1))
    try:
        result = job.run(cfg, resume=args.resume, progress=not args.no_progress)
    except NonFiniteLoss as e:
        raise UserError(str(e)) from e
    print_table(result.metrics)
    print(f"wrote {result.run_dir}")
    return 0


def _eval_sae(args) -> int:
    from interp.cache import sources
    from interp.atomic import write_bytes
    from interp.models import load_model
    from interp.sae import saving
    from interp.sae.evaluate import evaluate_saes

    from interp.config import flag_values
    from interp.sae.job import JobConfig

    cfg = replace(JobConfig(), **flag_values(args, JobConfig))
    meta = saving.read_config(args.path)["metadata"]
    sae = saving.load(args.path)
    model = load_model(args.model or meta["model_name"])
    ctx = meta.get("context_size") or model.cfg.n_ctx
    tokens = sources.resolve(cfg.eval_tokens, model, ctx, cfg.eval_seed).tokens
    metrics = evaluate_saes(sae, model, tokens, meta["hook_name"])
    print_table(metrics)
    from pathlib import Path

    write_bytes(Path(args.path) / "metrics.json",
                 (metrics.reset_index().to_json(orient="records", indent=1, double_precision=15) + "\n").encode())
    return 0
