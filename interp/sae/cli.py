"""`interp train-sae` (the main job) and `interp eval-sae`."""

from __future__ import annotations

import dataclasses
import json
import shlex
import typing
from dataclasses import replace

import pandas as pd

COLUMNS = ["kind", "variant", "mode", "n_latents", "l0", "nmse", "dead_fraction", "dense_fraction", "ce_recovered",
           "ce_delta", "kl", "eps_lbo_median", "skip_fve", "task_nmse", "task_ce_recovered", "task_kl"]
NOT_FLAGS = ("d_in", "d_out", "params", "format_version")
"""SAEConfig fields without a flag: d_in and d_out come from the store, params from the variant flags."""


def register(subparsers) -> None:
    from interp.config import add_flags
    from interp.sae.config import SAEConfig, SAETrainConfig
    from interp.sae.evaluate import SAEEvalConfig
    from interp.sae.job import DEFAULT_SAES, JobConfig

    p = subparsers.add_parser("train-sae", help="cache activations, train SAE(s), evaluate, write saes/<run>/ "
                              "(no arguments: TopK on zoo-dense blocks.2.hook_resid_pre)",
                              description="Every flag is a field of interp.sae.JobConfig, its [train] table "
                              "(SAETrainConfig), its [[sae]] tables (SAEConfig) or their [sae.params] tables "
                              "(the variant's config); a flag overrides the recipe.")
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
              exclude=NOT_FLAGS, defaults=DEFAULT_SAES[0], flags={"seed": "--sae-seed"})
    params = p.add_argument_group("variant hyper-parameters of every SAE (its [sae.params] table); a flag that "
                                  "the SAE's variant lacks is an error")
    for cls, names in _variant_flag_fields().items():
        add_flags(params, cls, group="variant", include=names)
    p.set_defaults(func=_train_sae)

    e = subparsers.add_parser("eval-sae", help="evaluate a saved SAE with its reconstruction spliced into the model")
    e.add_argument("path", help="SAE directory (cfg.json + sae_weights.safetensors)")
    e.add_argument("--model", help="model to splice the SAE into (default: the model named in cfg.json)")
    add_flags(e, JobConfig, include=("eval_tokens", "eval_seed"))
    add_flags(e, SAEEvalConfig, include=("device", "dtype", "batch_size"),
              default_text={"device": "the model's default: CUDA when there is one, else the CPU"})
    e.set_defaults(func=_eval_sae)

    x = subparsers.add_parser("export-transcoders", help="write a model's per-layer transcoders as one transcoder "
                              "set (config.json + layer_<L>.safetensors; format in interp.sae.export)")
    x.add_argument("run", help="a layered run directory (e.g. saes/zoo-dense-transcoders, with L<layer>/ "
                   "subdirectories) or one transcoder directory")
    x.add_argument("--out", required=True, help="directory to write the set into")
    x.set_defaults(func=_export_transcoders)

    r = subparsers.add_parser("sae-report", help="write the comparison report of a finished train-sae run (mean ± "
                              "std over seeds, Pareto plots, the papers' claims) without training again")
    r.add_argument("run", help="the run directory (e.g. saes/compare)")
    r.add_argument("--out", required=True, help="the Markdown file to write (its plots go beside it as "
                   "<stem>-pareto.png and .html)")
    r.add_argument("--command", dest="stated_command", metavar="TEXT",
                   help="the command line to state above the tables (default: the one that ran the job, as its "
                   "training.json records it)")
    r.add_argument("--against", metavar="RUN", help="the run directory of the same SAEs trained for fewer steps: "
                   "every row's numbers beside that run's (default: the job's report_against, if any)")
    r.set_defaults(func=_sae_report)


def _variant_flag_fields() -> dict[type, list[str]]:
    """{variant config class: its fields that no earlier registered class declared}: one flag per name."""
    from interp.sae.registry import VARIANTS, variant_config

    seen, out = set(), {}
    for name in VARIANTS:
        cls = variant_config(name)
        new = [f.name for f in dataclasses.fields(cls) if f.name not in seen]
        if new:
            out.setdefault(cls, []).extend(new)
            seen.update(new)
    return out


def variant_flag_values(args) -> dict:
    """{field: value} of the variant flags given, typed by the config class that declares them
    (they are laid over every SAE as format-1 flat keys, which SAEConfig moves into `params`)."""
    from interp.config import check_value

    given = vars(args)
    return {name: check_value(typing.get_type_hints(cls)[name], given[f"variant.{name}"], f"{cls.__name__}.{name}")
            for cls, names in _variant_flag_fields().items() for name in names if f"variant.{name}" in given}


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
    cfg = job.with_overrides(cfg, sae={**flag_values(args, SAEConfig, "sae"), **variant_flag_values(args)},
                             train=flag_values(args, SAETrainConfig, "train"), **flag_values(args, job.JobConfig))
    print("interp train-sae config:\n" + json.dumps(cfg.to_json(), indent=1))
    try:
        result = job.run(cfg, resume=args.resume, progress=not args.no_progress,
                         command="interp " + shlex.join(getattr(args, "argv", ["train-sae"])))
    except NonFiniteLoss as e:
        raise UserError(str(e)) from e
    print_table(result.metrics)
    print(f"wrote {result.run_dir}")
    return 0


def _sae_report(args) -> int:
    from interp.sae.report import write_report

    print(f"wrote {write_report(args.run, args.out, args.stated_command, args.against)}")
    return 0


def _export_transcoders(args) -> int:
    from interp.sae.export import export_transcoders

    out = export_transcoders(args.run, args.out)
    print(f"wrote {out}")
    return 0


def _eval_sae(args) -> int:
    from pathlib import Path

    from interp.atomic import write_bytes
    from interp.config import flag_values
    from interp.models import load_model
    from interp.sae import saving
    from interp.sae.evaluate import SAEEvalConfig
    from interp.sae.job import JobConfig, evaluate_sets, heldout_sets
    from interp.sae.saving import SAELoadError

    cfg = replace(JobConfig(), **flag_values(args, JobConfig))
    eval_cfg = SAEEvalConfig(**flag_values(args, SAEEvalConfig))
    meta = saving.read_config(args.path)["metadata"]
    sae = saving.load(args.path)
    model = load_model(args.model or meta["model_name"], device=eval_cfg.device)
    ctx = meta.get("context_size") or model.cfg.n_ctx
    sets = heldout_sets(model, cfg.eval_tokens, ctx, cfg.eval_seed)
    target = meta.get("hook_name_out") if sae.cfg.is_transcoder else None
    if sae.cfg.is_transcoder and not target:
        raise SAELoadError(f"{args.path}/cfg.json: a {sae.cfg.kind} without metadata.hook_name_out (the hook it "
                           "predicts); add it to cfg.json")
    metrics = evaluate_sets(sae, model, sets, meta["hook_name"], target_hook=target,
                            **{f.name: getattr(eval_cfg, f.name) for f in dataclasses.fields(eval_cfg)}).metrics
    print_table(metrics)
    write_bytes(Path(args.path) / "metrics.json",
                (metrics.reset_index().to_json(orient="records", indent=1, double_precision=15) + "\n").encode())
    return 0

