"""`interp cache --model M --hook H [--hook ...] --tokens N|FILE --out PATH [--grads] [--resume]`
and `interp cache verify PATH`. Under `torchrun --nproc-per-node N -m interp cache ...` each
rank caches its block of shards into the same store."""

from __future__ import annotations

import argparse

from interp.cache.format import DTYPES, StoreError


def _tokens(text: str) -> int | str:
    """A token count (underscores allowed: 2_000_000) or a path."""
    try:
        return int(text)
    except ValueError:
        return text


def register(subparsers) -> None:
    cache = subparsers.add_parser(
        "cache", help="cache activations (and gradients) of hooks to an activation store; `verify PATH` checks one",
        description="Cache activations to a store directory, or `interp cache verify PATH`.")
    cache.add_argument("--model", default="zoo-dense", help="zoo name, model directory or TransformerLens name")
    cache.add_argument("--hook", action="append", dest="hooks", metavar="HOOK",
                       help="TransformerLens hook name; repeat for several hooks cached in one pass")
    cache.add_argument("--tokens", type=_tokens, default=None,
                       help="token count from the zoo corpus (e.g. 2_000_000), a text file or a datasets directory")
    cache.add_argument("--out", default=None, help="store directory")
    cache.add_argument("--grads", action="store_true", help="also cache dL/d(activation)")
    cache.add_argument("--resume", action="store_true", help="continue a stopped run in --out")
    cache.add_argument("--dtype", default="float32", choices=list(DTYPES))
    cache.add_argument("--batch-size", type=int, default=32, help="sequences per model pass (default 32)")
    cache.add_argument("--context-size", type=int, default=None, help="tokens per row (default: model n_ctx)")
    cache.add_argument("--shard-sequences", type=int, default=None,
                       help="sequences per shard file, a multiple of --batch-size (default: ~128 MiB shards)")
    cache.add_argument("--seed", type=int, default=0, help="seed of the zoo corpus (default 0)")
    cache.add_argument("--device", default="cpu")
    cache.set_defaults(func=_write)
    sub = cache.add_subparsers(dest="cache_command", metavar="verify", required=False)
    verify = sub.add_parser("verify", help="check every shard's size and CRC-32 against the manifest")
    verify.add_argument("path")
    verify.set_defaults(func=_verify)


def _write(args: argparse.Namespace) -> int:
    from interp.cache.writer import cache_model
    from interp.errors import UserError

    missing = [flag for flag, value in (("--hook", args.hooks), ("--tokens", args.tokens), ("--out", args.out))
               if value is None]
    if missing:
        raise UserError(f"{', '.join(missing)} required (or `interp cache verify PATH`)")
    try:
        store = cache_model(args.model, args.hooks, args.tokens, args.out, dtype=args.dtype, device=args.device,
                            grads=args.grads, batch_size=args.batch_size, context_size=args.context_size,
                            seed=args.seed, resume=args.resume,
                            shard_sequences=args.shard_sequences)
    except StoreError as e:
        raise UserError(str(e)) from e
    print(store)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from interp.cache.verify import verify
    from interp.errors import UserError

    try:
        report = verify(args.path)
    except StoreError as e:
        raise UserError(str(e)) from e
    print(f"{report.path}: OK, {report.n_shards} shards, {report.n_tokens:,} tokens, {report.bytes:,} bytes, "
          "sizes and CRC-32 checked")
    return 0
