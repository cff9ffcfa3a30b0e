"""`interp zoo list | info NAME | train NAME | eval NAME`."""

from __future__ import annotations

import json
from dataclasses import asdict

from interp.zoo import registry


def register(subparsers) -> None:
    from interp.models import add_model_flags

    zoo = subparsers.add_parser("zoo", help="the embedded model zoo: list, inspect, train, evaluate")
    sub = zoo.add_subparsers(dest="zoo_command", metavar="ZOO_COMMAND", required=True)
    sub.add_parser("list", help="list the zoo models").set_defaults(func=_list)
    info = sub.add_parser("info", help="architecture, recipe and metrics of a zoo model")
    info.add_argument("name", choices=list(registry.ZOO))
    info.set_defaults(func=_info)
    train = sub.add_parser("train", help="train a zoo model from its recipe (deterministic)")
    train.add_argument("name", choices=list(registry.ZOO))
    train.add_argument("--steps", type=int, default=None,
                       help="override the recipe's step count (default: the recipe's, see `interp zoo info NAME`)")
    train.add_argument("--out", default=None, help="output directory (default: data/zoo/NAME)")
    train.set_defaults(func=_train)
    ev = sub.add_parser("eval", help="measure held-out behaviours; writes data/zoo/NAME/metrics.json")
    ev.add_argument("name", help="a zoo name or a model directory")
    ev.add_argument("-n", type=int, default=200, help="held-out prompts per task (default 200)")
    add_model_flags(ev)
    ev.set_defaults(func=_eval)


def _list(args) -> int:
    for name, spec in registry.ZOO.items():
        trained = "trained" if (spec.directory / "model.safetensors").is_file() else "not trained"
        print(f"{name:10s} {trained:12s} {spec.description}")
    return 0


def _info(args) -> int:
    spec = registry.get(args.name)
    out = {"name": spec.name, "description": spec.description, "directory": str(spec.directory),
           "architecture": spec.architecture(), "train": asdict(spec.train)}
    metrics = spec.directory / "metrics.json"
    if metrics.is_file():
        out["metrics"] = json.loads(metrics.read_text())
    print(json.dumps(out, indent=2))
    return 0


def _train(args) -> int:
    from interp.zoo.train import train

    result = train(args.name, out_dir=args.out, steps=args.steps)
    print(f"{args.name}: final loss {result.final_loss:.3f} after {result.tokens_seen:,} tokens "
          f"in {result.seconds / 60:.1f} min -> {result.directory}")
    return 0


def _eval(args) -> int:
    from pathlib import Path

    from interp.models import model_from_flags
    from interp.zoo.evaluate import TARGETS, evaluate_zoo_model, missed_targets, write_metrics

    model = model_from_flags(args, args.name)
    metrics = evaluate_zoo_model(model, n=args.n)
    directory = registry.ZOO[args.name].directory if args.name in registry.ZOO else Path(args.name)
    write_metrics(metrics, directory / "metrics.json")
    for key, value in metrics.items():
        target = " ".join(map(str, TARGETS[key])) if key in TARGETS else ""
        print(f"{key:28s} {value:>10} {target}")
    missed = missed_targets(metrics)
    print(f"targets missed: {', '.join(missed)}" if missed else "all targets met")
    print(f"wrote {directory / 'metrics.json'}")
    return 1 if missed else 0
