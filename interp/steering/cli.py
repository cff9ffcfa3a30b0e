"""`interp steer train | generate | sweep`."""

from __future__ import annotations

import json
from dataclasses import replace


def register(subparsers) -> None:
    from interp.config import add_flags
    from interp.models import add_model_flags
    from interp.steering.apply import POSITIONS
    from interp.steering.controller import ZOO_SETTINGS, ControllerConfig
    from interp.steering.evaluate import EvalConfig
    from interp.steering.train import RefusalRecipe, ControllerTrainConfig

    steer = subparsers.add_parser("steer", help="activation steering: train a controller, generate, sweep")
    sub = steer.add_subparsers(dest="steer_command", metavar="STEER_COMMAND", required=True)

    t = sub.add_parser("train", help="train a refusal controller on the zoo's plain harmful vs benign prompts",
                       description="Every flag is a field of interp.steering.RefusalRecipe, its [controller] "
                       "table (ControllerConfig) or its [train] table (ControllerTrainConfig); a flag overrides the recipe.")
    t.add_argument("--out", required=True, help="controller directory to write (required)")
    t.add_argument("--config", help="TOML recipe (top level: model, n, direction_layer, seed; tables "
                   "[controller], [train]); flags override it (default: none)")
    t.add_argument("--direction", help="a saved direction directory (default: harmful − benign mean difference)")
    add_flags(t, RefusalRecipe, exclude=("controller", "train"), flags={"n": ("-n", "--n")})
    add_flags(t.add_argument_group("controller (the recipe's [controller] table)"), ControllerConfig,
              exclude=("d_model", "n_layers", "seed"), defaults=ZOO_SETTINGS,
              flags={"hidden": ("--hidden", "--hidden-size")}, default_text={"read_layers": "the last 4 layers"})
    add_flags(t.add_argument_group("optimisation (the recipe's [train] table)"), ControllerTrainConfig, group="train",
              exclude=("seed",))
    add_model_flags(t)
    t.set_defaults(func=_train)

    g = sub.add_parser("generate", help="greedy replies without and with steering, side by side")
    g.add_argument("prompts", nargs="+", help="prompts (a zoo chat prompt looks like 'User: ...\\nAssistant:')")
    g.add_argument("--model", default="zoo-dense", help="zoo name, model or Hugging Face checkpoint directory, "
                   "or cached hub name")
    g.add_argument("--controller", help="a trained controller directory (default: none)")
    g.add_argument("--mode", choices=["paper", "reference"], help="override the controller's mode (default: its own)")
    g.add_argument("--alpha", type=float, help="override the controller's α (default: its own)")
    g.add_argument("--direction", help="a saved direction directory, for fixed steering (default: none)")
    g.add_argument("--layers", type=int, nargs="+", help="fixed steering: layers to patch (default: none)")
    g.add_argument("--coefficients", type=float, nargs="+",
                   help="fixed steering: one, or one per layer (default: none)")
    g.add_argument("--positions", default="generated", help="fixed steering: positions to patch, one of "
                   f"{', '.join(POSITIONS)} or comma-separated token positions")
    g.add_argument("--max-new-tokens", type=int, default=8,
                   help="tokens generated per reply at most (a reply also ends at the end-of-text token)")
    add_model_flags(g)
    g.set_defaults(func=_generate)

    s = sub.add_parser("sweep", help="fixed steering over layers × coefficients beside a controller: "
                       "table + Pareto plot")
    s.add_argument("--controller", required=True,
                   help="trained controller directory (its direction is swept too) (required)")
    s.add_argument("--out", required=True, help="directory for sweep.csv, sweep.md and pareto.html (required)")
    s.add_argument("--model", default="zoo-dense", help="zoo name, model or Hugging Face checkpoint directory, "
                   "or cached hub name")
    s.add_argument("--layers", nargs="+", default=["0", "1", "2", "3", "all"],
                   help="layer sets: an index, comma-separated indices, or 'all' (default: 0 1 2 3 all)")
    s.add_argument("--coefficients", type=float, nargs="+", default=[2.0, 4.0, 6.0, 8.0, 12.0, 16.0],
                   help="fixed steering coefficients, in residual-stream units along the unit direction "
                   "(default: 2 4 6 8 12 16)")
    s.add_argument("--positions", default="generated", choices=POSITIONS, help="positions the fixed steering patches")
    s.add_argument("--controller-alphas", type=float, nargs="+", default=None,
                   help="α values to evaluate the controller at, in both modes (default: its own α)")
    s.add_argument("-n", type=int, help="shorthand: --n-refusal and --n-ioi at once (default: their defaults)")
    add_flags(s.add_argument_group("held-out data (EvalConfig)"), EvalConfig)
    add_model_flags(s)
    s.set_defaults(func=_sweep)


def _train(args) -> int:
    from interp.config import flag_values, to_dict
    from interp.steering import ControllerConfig, Direction, ControllerTrainConfig
    from interp.steering.evaluate import score_summary
    from interp.steering.train import RefusalRecipe, train_from_recipe

    recipe = RefusalRecipe.from_toml(args.config) if args.config else RefusalRecipe()
    recipe = replace(recipe, controller={**recipe.controller, **flag_values(args, ControllerConfig)},
                     train=replace(recipe.train, **flag_values(args, ControllerTrainConfig, "train")),
                     **flag_values(args, RefusalRecipe))
    from interp.models import model_from_flags

    model = model_from_flags(args, recipe.model)
    config, train = recipe.controller_config(model), recipe.train_config()
    top = {k: v for k, v in to_dict(recipe).items() if k not in ("controller", "train")}
    print(json.dumps({**top, "controller": to_dict(config), "train": to_dict(train)}, indent=2))
    direction = Direction.load(args.direction) if args.direction else None
    result = train_from_recipe(recipe, model, direction)
    print(result.history.to_string(index=False))
    summary = score_summary(model, result.controller, 100, recipe.seed).set_index("kind")
    for kind in ("harmful", "jailbreak"):
        print(f"held-out AUROC of s, {kind} vs benign: {summary.loc[kind, 'auroc_vs_benign']:.3f}")
    for kind, row in summary.iterrows():
        print(f"held-out s, {kind}: mean {row['mean']:+.2f}, min {row['min']:+.2f}, max {row['max']:+.2f}, "
              f"share > 0 {row['share_positive']:.2f}")
    print(f"wrote {result.controller.save(args.out)}")
    return 0


def _generate(args) -> int:
    import pandas as pd

    from interp.errors import UserError
    from interp.models import model_from_flags
    from interp.steering import ControllerSteering, Direction, Steering, SteeringController
    from interp.steering.apply import generate

    if bool(args.controller) == bool(args.direction):
        raise UserError("give exactly one of --controller DIR or --direction DIR (with --layers and --coefficients)")
    model = model_from_flags(args)
    if args.controller:
        spec = ControllerSteering(SteeringController.load(args.controller), mode=args.mode, alpha=args.alpha)
    else:
        if not args.layers or not args.coefficients:
            raise UserError("fixed steering needs --layers and --coefficients")
        coefs = args.coefficients[0] if len(args.coefficients) == 1 else args.coefficients
        positions = args.positions
        if positions.replace(",", "").isdigit():
            positions = [int(p) for p in positions.split(",")]
        spec = Steering(Direction.load(args.direction), args.layers, coefs, positions=positions)
    prompts = [p.replace("\\n", "\n") for p in args.prompts]
    frame, trace = generate(model, spec, prompts, args.max_new_tokens)
    with pd.option_context("display.width", 200, "display.max_colwidth", 80):
        print(frame.to_string(index=False))
        where = trace.to_frame().groupby(["layer", "role"])["delta_norm_mean"].agg(["count", "mean"])
        print("\nwhere the patch was applied (count of patched positions, mean ‖patch‖):")
        print(where.to_string())
    return 0


def _sweep(args) -> int:
    from interp.config import flag_values
    from interp.errors import UserError
    from interp.models import model_from_flags
    from interp.steering import ControllerSteering, EvalConfig, SteeringController
    from interp.steering.evaluate import sweep, to_markdown, write_sweep

    model = model_from_flags(args)
    layer_sets = []
    for item in args.layers:
        if item == "all":
            layer_sets.append(list(range(model.cfg.n_layers)))
        else:
            try:
                layer_sets.append([int(x) for x in item.split(",")])
            except ValueError:
                raise UserError(f"--layers item {item!r} is not an index, comma-separated indices, or 'all'") from None
    controller = SteeringController.load(args.controller)
    alphas = args.controller_alphas or [controller.cfg.alpha]
    controllers = {f"controller {mode} α={a:g}": ControllerSteering(controller, mode=mode, alpha=a)
                   for mode in ("paper", "reference") for a in alphas}
    shorthand = {} if args.n is None else {"n_refusal": args.n, "n_ioi": args.n}
    config = EvalConfig(**{**shorthand, **flag_values(args, EvalConfig)})
    frame = sweep(model, controller.direction, layer_sets, args.coefficients, controllers, args.positions, config)
    paths = write_sweep(frame, args.out)
    cols = ["label", "refusal_harmful", "refusal_jailbreak", "refusal_benign", "prose_ppl_change", "ioi_accuracy"]
    print(to_markdown(frame, cols))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0
