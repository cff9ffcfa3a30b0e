"""`interp moe scan | ablate | force`: routing statistics and behaviour experts, switching
experts off (one set, or the whole MoTE experiment with random controls), forcing them on."""

from __future__ import annotations

import shlex

import pandas as pd


def parse_experts(text: str) -> list[tuple[int, int]]:
    """'2:5,3:4' -> [(2, 5), (3, 4)]."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        layer, sep, expert = part.partition(":")
        if not sep or not layer.strip().isdigit() or not expert.strip().isdigit():
            raise ValueError(f"--experts: {part!r} is not LAYER:EXPERT (e.g. --experts 2:5,3:4)")
        out.append((int(layer), int(expert)))
    if not out:
        raise ValueError(f"--experts={text!r} names no expert; write LAYER:EXPERT[,LAYER:EXPERT...]")
    return out


# MoteConfig field -> flag, in the order the reproduce command writes them: the flags are
# generated from the config's fields, and the command is written back from a config.
MOTE_FLAGS = {"model": "--model", "top_n": "--top", "policies": "--policy", "seeds": "--seeds",
              "n_train": "--train", "n_heldout": "--heldout", "n_prose": "--prose", "n_ioi": "--ioi",
              "statistic": "--statistic", "last": "--last"}
_COMMON = ("model", "n_train", "statistic", "last")  # how experts are scored, for every subcommand


def _flags(parser, *fields: str, **kwargs) -> None:
    from interp.config import add_flags
    from interp.moe.experiment import MoteConfig

    add_flags(parser, MoteConfig, include=fields, flags=MOTE_FLAGS, **kwargs)


def register(subparsers) -> None:
    from interp.models import add_model_flags

    moe = subparsers.add_parser("moe", help="MoE experts: routing statistics, ablation, forcing (MoTE)")
    sub = moe.add_subparsers(dest="moe_command", metavar="MOE_COMMAND", required=True)

    scan = sub.add_parser("scan", help="routing statistics and fTRI behaviour experts on refusal prompts")
    _flags(scan, *_COMMON)
    scan.add_argument("--top", type=int, default=10, help="behaviour experts to print (default: 10)")
    scan.add_argument("--csv", help="also write every expert's score to this CSV file (default: none)")
    add_model_flags(scan)
    scan.set_defaults(func=_scan)

    ab = sub.add_parser("ablate", help="switch experts off; with --top, the MoTE experiment with random controls")
    _flags(ab, *_COMMON, "policies", "seeds", "n_heldout", "n_prose", "n_ioi")
    which = ab.add_mutually_exclusive_group(required=True)
    which.add_argument("--experts", type=parse_experts, help="LAYER:EXPERT[,...] to switch off (required, or --top)")
    _flags(which, "top_n", default_text={"top_n": "required, or --experts"})
    ab.add_argument("--report", help="with --top: write the markdown report here (default: none)")
    add_model_flags(ab)
    ab.set_defaults(func=_ablate)

    fo = sub.add_parser("force", help="force experts into every token's top-k; refusal rates and replies")
    _flags(fo, *_COMMON, "n_heldout")
    which = fo.add_mutually_exclusive_group(required=True)
    which.add_argument("--experts", type=parse_experts, help="LAYER:EXPERT[,...] to force (required, or --top)")
    which.add_argument("--top", type=int, help="force the top-N fTRI experts (required, or --experts)")
    fo.add_argument("--weight", type=float, default=None,
                    help="router probability of forced experts (default: just above the largest other one)")
    add_model_flags(fo)
    fo.set_defaults(func=_force)


def _config(args):
    """The `MoteConfig` of the flags given (the rest at its defaults)."""
    from interp.config import flag_values
    from interp.moe.experiment import MoteConfig

    return MoteConfig(**flag_values(args, MoteConfig))


def _show(df: pd.DataFrame) -> None:
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.4g}".format):
        print(df.to_string(index=False))


def _train_prompts(model, n: int):
    from interp.tasks import chat_format, refusal

    chat = chat_format(model)
    return [p.prompt for kind in ("harmful", "benign") for p in refusal.generate(n, kind, "train", chat=chat)]


def _scores(model, config):
    from interp import moe

    prompts = _train_prompts(model, config.n_train)
    classes = moe.refused(model, prompts)
    cap = moe.capture_routing(model, prompts)
    return cap, classes, moe.score_experts(cap, classes, config.statistic, config.last)


def _moe_model(args, config):
    """The model of `config`, checked to be a TransformerLens MoE model before any work."""
    from interp import moe
    from interp.models import model_from_flags

    model = model_from_flags(args, config.model)
    moe.shape(model)  # a dense model is an error naming what it has, not a failure minutes later
    return model


def _scan(args) -> int:
    from interp import moe

    config = _config(args)
    model = _moe_model(args, config)
    cap, classes, scores = _scores(model, config)
    print(f"{config.model}: {sum(classes)} of {len(classes)} training prompts refused")
    print("\nper layer: load balance and routing entropy")
    _show(moe.layer_table(cap))
    print(f"\ntop {args.top} behaviour experts (fTRI, {config.statistic}, refused - answered)")
    _show(scores.head(args.top))
    if args.csv:
        scores.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    return 0


# `interp moe ablate --experts` table: measurement key -> printed column, in printed order.
_ABLATE_COLUMNS = {"policy": "policy", "refusal_rate": "refusal_harmful", "refusal_rate_benign": "refusal_benign",
                   "prose_ce": "prose_ce", "ioi_accuracy": "ioi_accuracy"}


def _mote_command(config, report: str | None = None) -> str:
    """The `interp moe ablate` command line that runs `config` (a `MoteConfig` of the flags'
    fields) and writes the report to `report`; every flag written out, defaults included."""
    words = ["interp", "moe", "ablate"]
    for field, flag in MOTE_FLAGS.items():
        value = getattr(config, field)
        if value is not None:
            words += [flag, *map(str, value if isinstance(value, tuple) else (value,))]
    return shlex.join(words + (["--report", str(report)] if report else []))


def _ablate(args) -> int:
    from interp import moe
    from interp.moe.experiment import HeldOut, measure, run_mote, write_report

    config = _config(args)
    if args.experts is None:
        result = run_mote(config)
        print("\nsummary (top-N against random controls)")
        _show(result.summary)
        if result.forcing is not None and not result.forcing.empty:
            print("\nforcing the top-N experts on")
            _show(result.forcing)
        if args.report:
            write_report(result, args.report, _mote_command(config, args.report))
            print(f"wrote {args.report}")
        return 0
    model = _moe_model(args, config)
    experts = moe.check_experts(model, args.experts, field="--experts")
    heldout = HeldOut.draw(model, config.n_heldout, config.n_ioi, config.n_prose)
    rows = [dict(policy="(none)", **measure(model, heldout, benign=True))]
    for policy in config.policies:
        with moe.ablate(model, experts, policy):
            rows.append(dict(policy=policy, **measure(model, heldout, benign=True)))
    print(f"{config.model}: experts {experts} switched off")
    _show(pd.DataFrame(rows)[list(_ABLATE_COLUMNS)].rename(columns=_ABLATE_COLUMNS))
    return 0


def _force(args) -> int:
    from interp import moe
    from interp.generation import greedy
    from interp.tasks import chat_format, refusal
    from interp.tasks.refusal import refusal_rate

    config = _config(args)
    model = _moe_model(args, config)
    experts = args.experts if args.experts else moe.top_experts(_scores(model, config)[2], args.top)
    experts = moe.check_experts(model, experts, field="--experts")
    chat = chat_format(model)
    benign = refusal.generate(config.n_heldout, "benign", "heldout", chat=chat)
    harmful = refusal.generate(config.n_heldout, "harmful", "heldout", chat=chat)
    rows = [dict(forced="(none)", refusal_benign=refusal_rate(model, benign),
                 refusal_harmful=refusal_rate(model, harmful))]
    with moe.force(model, experts, weight=args.weight):
        rows.append(dict(forced=str(experts), refusal_benign=refusal_rate(model, benign),
                         refusal_harmful=refusal_rate(model, harmful)))
        replies = greedy(model, [p.prompt for p in benign[:3]], max_new_tokens=12)
    _show(pd.DataFrame(rows))
    print("\nbenign replies with the experts forced:")
    for p, r in zip(benign[:3], replies):
        print(f"  {p.request!r} -> {r!r}")
    return 0
