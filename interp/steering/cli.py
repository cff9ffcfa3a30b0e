"""`interp steer train | generate | sweep`."""

from __future__ import annotations

import json
from dataclasses import asdict


def register(subparsers) -> None:
    steer = subparsers.add_parser("steer", help="activation steering: train a controller, generate, sweep")
    sub = steer.add_subparsers(dest="steer_command", metavar="STEER_COMMAND", required=True)

    t = sub.add_parser("train", help="train a refusal controller on the zoo's plain harmful vs benign prompts")
    t.add_argument("--out", required=True, help="controller directory to write")
    t.add_argument("--config", help="TOML recipe (top level: model, n, direction_layer, seed; tables "
                   "[controller], [train]); flags override it")
    t.add_argument("--model", help="default zoo-dense")
    t.add_argument("-n", type=int, help="training prompts per class (default 400)")
    t.add_argument("--direction", help="a saved direction directory (default: harmful − benign mean difference)")
    t.add_argument("--direction-layer", type=int, help="layer of the default direction (default 2)")
    t.add_argument("--read-layers", type=int, nargs="+", help="default: the last 4 layers")
    t.add_argument("--read-position", choices=["last", "mean", "max"], help="default max (paper: last)")
    t.add_argument("--alpha", type=float, help="patch scale α (default 2.0; paper: 4.0)")
    cap = t.add_mutually_exclusive_group()
    cap.add_argument("--scale-cap", type=float, help="cap on the scale s in the patch (default 4.0)")
    cap.add_argument("--no-scale-cap", action="store_true", help="patch with the raw s, as the paper")
    t.add_argument("--mode", choices=["paper", "reference"], help="default paper")
    t.add_argument("--hidden-size", type=int, help="controller MLP width (default and paper: 1024)")
    t.add_argument("--epochs", type=int, help="default 10")
    t.add_argument("--lr", type=float, help="default 5e-5")
    t.add_argument("--seed", type=int, help="default 0")
    t.set_defaults(func=_train)

    g = sub.add_parser("generate", help="greedy replies without and with steering, side by side")
    g.add_argument("prompts", nargs="+", help="prompts (a zoo chat prompt looks like 'User: ...\\nAssistant:')")
    g.add_argument("--model", default="zoo-dense")
    g.add_argument("--controller", help="a trained controller directory")
    g.add_argument("--mode", choices=["paper", "reference"], help="override the controller's mode")
    g.add_argument("--alpha", type=float, help="override the controller's α")
    g.add_argument("--direction", help="a saved direction directory (fixed steering)")
    g.add_argument("--layers", type=int, nargs="+", help="fixed steering: layers to patch")
    g.add_argument("--coefficients", type=float, nargs="+", help="fixed steering: one, or one per layer")
    g.add_argument("--positions", default="generated", help="fixed steering positions (default: generated)")
    g.add_argument("--max-new-tokens", type=int, default=8)
    g.set_defaults(func=_generate)

    s = sub.add_parser("sweep", help="fixed steering over layers × coefficients beside a controller: "
                       "table + Pareto plot")
    s.add_argument("--controller", required=True, help="trained controller directory (its direction is swept too)")
    s.add_argument("--out", required=True, help="directory for sweep.csv, sweep.md and pareto.html")
    s.add_argument("--model", default="zoo-dense")
    s.add_argument("--layers", nargs="+", default=["0", "1", "2", "3", "all"],
                   help="layer sets: an index, comma-separated indices, or 'all' (default: 0 1 2 3 all)")
    s.add_argument("--coefficients", type=float, nargs="+", default=[2.0, 4.0, 6.0, 8.0, 12.0, 16.0])
    s.add_argument("--positions", default="generated")
    s.add_argument("--controller-alphas", type=float, nargs="+", default=None,
                   help="α values to evaluate the controller at, in both modes (default: its own α)")
    s.add_argument("-n", type=int, default=100, help="held-out prompts per refusal kind and IOI (default 100)")
    s.add_argument("--n-prose", type=int, default=50)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_sweep)


# The zoo's controller settings where they differ from the paper's (results/steering.md says why).
ZOO_DEFAULTS = {"model": "zoo-dense", "n": 400, "direction_layer": 2, "seed": 0,
                "controller": {"alpha": 2.0, "read_position": "max", "scale_cap": 4.0}, "train": {}}


def _train(args) -> int:
    from interp.models import load_model
    from interp.steering import ControllerConfig, Direction, TrainConfig
    from interp.steering.evaluate import auroc
    from interp.steering.train import read_recipe, train_refusal_controller
    from interp.tasks import refusal

    recipe = read_recipe(args.config) if args.config else {}
    top = {k: v for k, v in {**ZOO_DEFAULTS, **recipe}.items() if k not in ("controller", "train")}
    top.update({k: v for k, v in dict(model=args.model, n=args.n, direction_layer=args.direction_layer,
                                      seed=args.seed).items() if v is not None})
    ctrl = {**ZOO_DEFAULTS["controller"], "seed": top["seed"], **recipe.get("controller", {})}
    ctrl.update({k: v for k, v in dict(read_layers=tuple(args.read_layers) if args.read_layers else None,
                                       read_position=args.read_position, alpha=args.alpha, mode=args.mode,
                                       scale_cap=args.scale_cap, hidden=args.hidden_size).items() if v is not None})
    if args.no_scale_cap:
        ctrl["scale_cap"] = None
    train_kw = {"seed": top["seed"], **recipe.get("train", {})}
    train_kw.update({k: v for k, v in dict(epochs=args.epochs, lr=args.lr).items() if v is not None})
    model = load_model(top["model"])
    config = ControllerConfig(d_model=model.cfg.d_model, n_layers=model.cfg.n_layers, **ctrl)
    train = TrainConfig(**train_kw)
    print(json.dumps({**top, "controller": asdict(config), "train": asdict(train)}, indent=2))
    direction = Direction.load(args.direction) if args.direction else None
    result = train_refusal_controller(model, top["n"], direction, top["direction_layer"], config, train, top["seed"])
    print(result.history.to_string(index=False))
    held = {k: [p.prompt for p in refusal.generate(100, k, "heldout", top["seed"])] for k in refusal.KINDS}
    scores = {kind: result.controller.scores(model, prompts) for kind, prompts in held.items()}
    for kind in ("harmful", "jailbreak"):
        print(f"held-out AUROC of s, {kind} vs benign: {auroc(scores[kind], scores['benign']):.3f}")
    for kind, s in scores.items():
        print(f"held-out s, {kind}: mean {s.mean():+.2f}, min {s.min():+.2f}, max {s.max():+.2f}, "
              f"share > 0 {(s > 0).float().mean():.2f}")
    print(f"wrote {result.controller.save(args.out)}")
    return 0


def _generate(args) -> int:
    import pandas as pd

    from interp.cli import UserError
    from interp.models import load_model
    from interp.steering import ControllerSteering, Direction, Steering, SteeringController
    from interp.steering.apply import generate

    if bool(args.controller) == bool(args.direction):
        raise UserError("give exactly one of --controller DIR or --direction DIR (with --layers and --coefficients)")
    model = load_model(args.model)
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
    from interp.cli import UserError
    from interp.models import load_model
    from interp.steering import ControllerSteering, EvalConfig, SteeringController
    from interp.steering.evaluate import sweep, to_markdown, write_sweep

    model = load_model(args.model)
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
    config = EvalConfig(n_refusal=args.n, n_prose=args.n_prose, n_ioi=args.n, seed=args.seed)
    frame = sweep(model, controller.direction, layer_sets, args.coefficients, controllers, args.positions, config)
    paths = write_sweep(frame, args.out)
    cols = ["label", "refusal_harmful", "refusal_jailbreak", "refusal_benign", "prose_ppl_change", "ioi_accuracy"]
    print(to_markdown(frame, cols))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0
