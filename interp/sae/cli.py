"""`interp train-sae` (the main job) and `interp eval-sae`."""

from __future__ import annotations

import json

import pandas as pd

COLUMNS = ["variant", "mode", "n_latents", "l0", "nmse", "dead_fraction", "dense_fraction", "ce_recovered",
           "ce_delta", "kl", "eps_lbo_median"]


def register(subparsers) -> None:
    p = subparsers.add_parser("train-sae", help="cache activations, train SAE(s), evaluate, write saes/<run>/ "
                              "(no arguments: TopK on zoo-dense blocks.2.hook_resid_pre)")
    p.add_argument("--config", help="TOML recipe (e.g. saes/recipes/default.toml); flags override it")
    p.add_argument("--model")
    p.add_argument("--hook")
    p.add_argument("--cache-tokens", type=int)
    p.add_argument("--cache-dir")
    p.add_argument("--eval-tokens", type=int)
    p.add_argument("--out-dir")
    p.add_argument("--run")
    p.add_argument("--variant", help="applies to every SAE of the recipe")
    p.add_argument("--n-latents", type=int)
    p.add_argument("--k", type=int)
    p.add_argument("--normalize", choices=("none", "scale", "layer_norm"),  # interp.sae.config.NORMALIZATIONS
                   help="input normalisation of every SAE of the recipe (default none)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--train-tokens", type=int, dest="n_tokens")
    p.add_argument("--lr", type=float)
    p.add_argument("--dtype", choices=["float32", "bfloat16"])
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--resume", action="store_true", help="continue from saes/<run>/checkpoint")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_train_sae)

    e = subparsers.add_parser("eval-sae", help="evaluate a saved SAE with its reconstruction spliced into the model")
    e.add_argument("path", help="SAE directory (cfg.json + sae_weights.safetensors)")
    e.add_argument("--model", help="default: the model named in cfg.json")
    e.add_argument("--eval-tokens", type=int, default=16_384)
    e.add_argument("--eval-seed", type=int, default=1_000)
    e.set_defaults(func=_eval_sae)


def print_table(metrics: pd.DataFrame) -> None:
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.4g}".format):
        print(metrics[[c for c in COLUMNS if c in metrics.columns]].to_string())


def _train_sae(args) -> int:
    from interp.cli import UserError
    from interp.sae import job
    from interp.sae.trainer import NonFiniteLoss

    top = dict(model=args.model, hook=args.hook, cache_tokens=args.cache_tokens, cache_dir=args.cache_dir,
               eval_tokens=args.eval_tokens, out_dir=args.out_dir, run=args.run)
    cfg = job.JobConfig.from_toml(args.config) if args.config else job.JobConfig()
    cfg = job.with_overrides(cfg, sae=dict(variant=args.variant, n_latents=args.n_latents, k=args.k,
                                                     normalize=args.normalize),
                             train=dict(batch_size=args.batch_size, n_tokens=args.n_tokens, lr=args.lr,
                                        dtype=args.dtype, checkpoint_every=args.checkpoint_every, seed=args.seed),
                             **top)
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
    from interp.sae.evaluate import evaluate

    meta = saving.read_config(args.path)["metadata"]
    sae = saving.load(args.path)
    model = load_model(args.model or meta["model_name"])
    ctx = meta.get("context_size") or model.cfg.n_ctx
    tokens = sources.resolve(args.eval_tokens, model, ctx, args.eval_seed).tokens
    metrics = evaluate(sae, model, tokens, meta["hook_name"])
    print_table(metrics)
    from pathlib import Path

    write_bytes(Path(args.path) / "metrics.json",
                 (metrics.reset_index().to_json(orient="records", indent=1, double_precision=15) + "\n").encode())
    return 0
