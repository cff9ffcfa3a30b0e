"""`interp cache --model M --hook H [--hook ...] --tokens N|FILE --out PATH [--grads] [--resume]`
and `interp cache verify PATH`. Under `torchrun --nproc-per-node N -m interp cache ...` each
rank caches its block of shards into the same store."""

from __future__ import annotations

import argparse

from interp.cache.format import StoreError


def _tokens(text: str) -> int | str:
    """A token count (underscores allowed: 2_000_000) or a path."""
    try:
        return int(text)
    except ValueError:
        return text


def register(subparsers) -> None:
    from interp.cache.writer import CacheConfig
    from interp.config import add_flags
    from interp.models import add_model_flags

    cache = subparsers.add_parser(
        "cache", help="cache activations (and gradients) of hooks to an activation store; `verify PATH` checks one",
        description="Cache activations to a store directory, or `interp cache verify PATH`. The store's "
        "settings are the fields of interp.cache.CacheConfig.")
    cache.add_argument("--model", default="zoo-dense",
                       help="zoo name, model directory or TransformerLens name (default: zoo-dense)")
    cache.add_argument("--hook", action="append", dest="hooks", metavar="HOOK",
                       help="TransformerLens hook name; repeat for several hooks cached in one pass (required)")
    cache.add_argument("--tokens", type=_tokens, default=None,
                       help="token count from the zoo corpus (e.g. 2_000_000), a text file or a datasets "
                       "directory (required)")
    cache.add_argument("--out", default=None, help="store directory (required)")
    cache.add_argument("--resume", action="store_true", help="continue a stopped run in --out (default: off)")
    add_model_flags(cache, dtype_flag="--model-dtype")
    add_flags(cache, CacheConfig, exclude=("hooks",),
              default_text={"context_size": "the model's n_ctx", "shard_sequences": "about 128 MiB per shard"})
    cache.set_defaults(func=_write)
    sub = cache.add_subparsers(dest="cache_command", metavar="verify", required=False)
    verify = sub.add_parser("verify", help="check every shard's size and checksum against the manifest")
    verify.add_argument("path", help="store directory")
    verify.set_defaults(func=_verify)


def _write(args: argparse.Namespace) -> int:
    import torch

    from interp.cache.format import dtype_name
    from interp.cache.writer import CacheConfig, write
    from interp.config import flag_values
    from interp.errors import UserError
    from interp.models import model_from_flags

    missing = [flag for flag, value in (("--hook", args.hooks), ("--tokens", args.tokens), ("--out", args.out))
               if value is None]
    if missing:
        raise UserError(f"{', '.join(missing)} required (or `interp cache verify PATH`)")
    try:
        values = flag_values(args, CacheConfig)
        dtype_name(values.get("dtype", torch.float32))  # fail before loading the model
        store = write(model_from_flags(args), args.hooks, args.tokens, args.out, resume=args.resume,
                      model_name=args.model, **values)
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
          "sizes and checksums checked")
    return 0
