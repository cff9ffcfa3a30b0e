"""`interp patch ioi` / `interp patch pairs` (one method -> CSV + heatmap PNG) and `interp patch
protocol` (the paper's protocol: on IOI alone -> results/relp_ioi.md; on several contrasts,
models or a pair file -> results/relp.md)."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    from interp import resources
    from interp.models import add_model_flags
    from interp.tasks.base import SPLITS

    p = subparsers.add_parser("patch", help="circuit discovery: activation patching, AtP, RelP, IG")
    sub = p.add_subparsers(dest="patch_command", metavar="TASK")
    i = sub.add_parser("ioi", help="score IOI nodes with one method; write CSV and heatmap PNG")
    i.add_argument("--n", type=int, default=32, help="prompt pairs (default: 32)")
    i.add_argument("--split", default="train", choices=SPLITS, help="IOI split the templates and names come from")
    i.add_argument("--template", type=int, default=0, help="template index within the split (default: 0)")
    i.add_argument("--seed", type=int, default=0, help="seed of the prompt pairs (default: 0)")
    _scoring_flags(i)
    i.set_defaults(func=_ioi)
    q = sub.add_parser("pairs", help="score nodes of any clean/corrupt pair set (JSON Lines) with one method",
                       description="Each line of PAIRS is {\"clean\": ..., \"corrupt\": ..., \"answer\": ..., "
                       "\"wrong\": ...}; the metric is the answer-minus-wrong logit difference at the last "
                       "position, normalised to clean = 1, corrupt = 0 (interp.patching.pairs).")
    q.add_argument("pairs", help="JSON Lines file of prompt pairs")
    _scoring_flags(q)
    q.set_defaults(func=_pairs)
    r = sub.add_parser("protocol", help="the paper's protocol: AP vs AtP vs RelP, timing, SAE circuits",
                       description="With --task ioi and one model (the default): the IOI study with templates, "
                       "verification and the SAE comparison (results/relp_ioi.md). With several tasks or models, "
                       "or --pairs: one section per (model, contrast) (results/relp.md).")
    r.add_argument("--task", default=None, help="comma-separated built-in contrasts, of "
                   "ioi, refusal, jailbreak (default: ioi)")
    r.add_argument("--pairs", default=None,
                   help="a JSON Lines pair file (as `interp patch pairs`) instead of --task (default: none)")
    r.add_argument("--model", default="zoo-dense", help="comma-separated models (default: zoo-dense)")
    r.add_argument("--n", type=int, default=32, help="prompt pairs per template or contrast (default: 32)")
    r.add_argument("--split", default="train", choices=SPLITS, help="split the prompt pairs come from")
    r.add_argument("--templates", default="0", help="comma-separated template indices (the first one drives "
                   "the maps, verification and SAE comparison) (default: 0)")
    r.add_argument("--sae", default=None, help="SAE directory for the feature-circuit comparison, or 'none' "
                   f"(default: the shipped {resources.DEFAULT_SAE} for the IOI study, none for contrasts)")
    r.add_argument("--ig-steps", type=int, default=10, help="IG steps of the SAE comparison (default: 10)")
    r.add_argument("--seed", type=int, default=0, help="seed of the prompt pairs (default: 0)")
    r.add_argument("--out", default=None, help="report path (default: results/relp_ioi.md for the IOI study, "
                   "results/relp.md otherwise)")
    add_model_flags(r)
    r.set_defaults(func=_protocol)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def _scoring_flags(parser) -> None:
    """The flags of a subcommand that scores nodes with one method (`patch ioi`, `patch pairs`)."""
    from interp.models import add_model_flags
    from interp.patching import METHODS
    from interp.patching.nodes import COMPONENTS, DEFAULT_COMPONENTS

    parser.add_argument("--model", default="zoo-dense", help="zoo name, model or Hugging Face checkpoint "
                        "directory, or cached hub name (default: zoo-dense)")
    parser.add_argument("--method", default="relp", choices=list(METHODS),
                        help="scoring method: exact activation patching or a gradient approximation of it")
    parser.add_argument("--components", default=",".join(DEFAULT_COMPONENTS),
                        help=f"comma-separated, of {', '.join(c for c in COMPONENTS if c != 'sae')} "
                        f"(default: {','.join(DEFAULT_COMPONENTS)})")
    parser.add_argument("--steps", type=int, default=10, help="interpolation steps of the methods that take them "
                        "(ig) (default: 10)")
    parser.add_argument("--out", default="results/patching", help="output directory (default: results/patching)")
    add_model_flags(parser)


def _ints(text: str, field: str) -> tuple[int, ...]:
    from interp.errors import UserError

    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise UserError(f"--{field}={text!r} must be comma-separated integers") from None


def _components(args) -> tuple[str, ...]:
    """--components, checked before anything is loaded."""
    from interp.errors import UserError
    from interp.patching.nodes import COMPONENTS

    components = tuple(c.strip() for c in args.components.split(",") if c.strip())
    allowed = [c for c in COMPONENTS if c != "sae"]
    bad = [c for c in components if c not in allowed]
    if bad or not components:
        raise UserError(f"--components={args.components!r}: {', '.join(bad) or 'empty'} is not a component; "
                        f"allowed: {', '.join(allowed)}")
    return components


def _ioi(args) -> int:
    from interp.models import model_from_flags
    from interp.patching.protocol import ioi_inputs

    _components(args)
    model = model_from_flags(args)
    return _score(args, model, ioi_inputs(model, args.n, args.split, args.template, args.seed), "ioi")


def _pairs(args) -> int:
    from interp.models import model_from_flags
    from interp.patching.pairs import pair_inputs, read_pairs

    pairs = read_pairs(args.pairs)
    _components(args)
    model = model_from_flags(args)
    return _score(args, model, pair_inputs(model, pairs), Path(args.pairs).stem)


def _score(args, model, inputs, task: str) -> int:
    from interp.patching.pairs import score
    from interp.patching.report import write_scores

    scores = score(model, args.method, inputs, _components(args), args.steps)
    csv, png = write_scores(scores, Path(args.out) / f"{task}-{Path(args.model).name}-{args.method}",
                            model.to_str_tokens(inputs.clean[0]))
    top = scores.reindex(scores["score"].abs().sort_values(ascending=False).index).head(10)
    print(top[["node", "score"]].to_string(index=False))
    print(f"wrote {csv}\nwrote {png}")
    return 0


def _protocol(args) -> int:
    from interp.errors import UserError

    models = [m.strip() for m in args.model.split(",") if m.strip()]
    if args.pairs is not None and args.task is not None:
        raise UserError(f"--task={args.task!r} and --pairs={args.pairs!r}: give one of them")
    tasks = None if args.pairs else [t.strip() for t in (args.task or "ioi").split(",") if t.strip()]
    if not models or tasks == []:
        raise UserError(f"--model={args.model!r} / --task={args.task!r}: name at least one")
    if tasks == ["ioi"] and len(models) == 1:
        return _ioi_study(args)
    return _contrasts(args, models, tasks)


def _ioi_study(args) -> int:
    from interp.patching.protocol import ioi_study
    from interp import resources
    from interp.models import model_from_flags
    from interp.patching.report import write_ioi_report

    if args.sae is None:  # the shipped SAE, written in the report relative to here when it is below here
        shipped = resources.sae_path().resolve()
        sae = str(shipped.relative_to(Path.cwd())) if shipped.is_relative_to(Path.cwd()) else str(shipped)
    else:
        sae = None if args.sae.lower() == "none" else args.sae
    study = ioi_study(args.model, args.n, args.split, _ints(args.templates, "templates"), sae,
                      ig_steps=args.ig_steps, seed=args.seed, model=model_from_flags(args))
    path = write_ioi_report(study, args.out or "results/relp_ioi.md")
    print(path.read_text())
    return 0


def _contrasts(args, models: list[str], tasks: list[str] | None) -> int:
    from interp.models import model_from_flags
    from interp.patching.contrasts import CONTRASTS, contrast_inputs
    from interp.patching.pairs import pair_inputs, read_pairs
    from interp.patching.protocol import contrast_study
    from interp.patching.report import protocol_command, write_contrast_report
    from interp.errors import UserError

    bad = [t for t in tasks or [] if t not in CONTRASTS]
    if bad:
        raise UserError(f"--task={bad[0]!r} is not a built-in contrast; allowed: {', '.join(CONTRASTS)} "
                        "(or --pairs FILE.jsonl)")
    sae = None if args.sae is None or args.sae.lower() == "none" else args.sae
    pairs = read_pairs(args.pairs) if args.pairs else None
    out = args.out or "results/relp.md"
    studies = []
    for name in models:
        model = model_from_flags(args, name)
        for task in tasks or [args.pairs]:
            inputs = pair_inputs(model, pairs) if pairs else contrast_inputs(model, task, args.n, args.split, args.seed)
            studies.append(contrast_study(model, name, task, inputs, args.split, args.seed, sae,
                                          ig_steps=args.ig_steps))
    n = len(pairs) if pairs else args.n
    path = write_contrast_report(studies, out, protocol_command(models, n, args.split, args.seed, out, tasks,
                                                                args.pairs, sae))
    print(path.read_text())
    return 0
