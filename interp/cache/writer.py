"""Write an activation store: one model pass per batch caches every requested hook (and,
on request, dL/d(activation)) straight into memory-mapped shard files.

Crash safety: the first manifest (complete=False, no shards) is written atomically before
any shard. A shard is written to a hidden temporary file (`.shard_00012.bin.tmp` for shard 12;
space reserved up front with `posix_fallocate`, so a full disk fails cleanly, not with SIGBUS), fsynced,
then renamed; the manifest is rewritten atomically after each shard. `resume=True`
keeps every intact shard (size and checksum) and recomputes the rest; a directory holding
only this writer's own temporary files (a kill before the first manifest landed) is started
over. Shards are computed from fixed sequence ranges with batches that never straddle shards,
so a resumed store is byte-identical to an uninterrupted one, whichever write a kill hit.
Memory is bounded by one batch plus the page cache of one shard, whatever the token count
(text and dataset token rows are spilled to a memory-mapped temporary file: `interp.cache.sources`).

One writer per store: rank 0 holds the store's lock (`interp.locks.hold_lock`) for the
whole run, so a second writer fails at once with a message naming the holder.
"""

from __future__ import annotations

import difflib
import errno
import os
import re
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from interp.hooks import named_all
from interp.atomic import fsync_dir
from interp.cache import distributed, sources
from interp.cache.format import (CHECKSUM, DTYPES, MANIFEST, Manifest, ShardInfo, StoreError, algorithm_of, as_tensor,
                                 checksum, dtype_name, file_checksum, read_manifest, shard_layout, shard_name,
                                 write_manifest)
from interp.config import check_fields, to_dict
from interp.locks import LockError, hold_lock

SHARD_BYTES_TARGET = 128 * 2**20
"""Default shard size: about 128 MiB (rounded to whole batches)."""


@dataclass(frozen=True)
class CacheConfig:
    """How a store is written; stored verbatim in the manifest's `config`."""

    hooks: tuple[str, ...]
    """TransformerLens hook names, cached in one model pass."""
    dtype: torch.dtype = field(default=torch.float32, metadata={"choices": tuple(DTYPES)})
    """Storage dtype: float32 | float16 | bfloat16 (the manifest records its name)."""
    batch_size: int = 32
    """Sequences per model pass."""
    context_size: int = 128
    """Tokens per sequence."""
    grads: bool = False
    """Also store dL/d(activation), L = next-token cross-entropy summed over each sequence's positions."""
    seed: int = 0
    """Seed of the default token source (the zoo corpus)."""
    shard_sequences: int = 1024
    """Sequences per shard file; a multiple of `batch_size`."""

    def __post_init__(self):
        check_fields(self)
        if not self.hooks or len(set(self.hooks)) != len(self.hooks):
            raise ValueError(f"CacheConfig.hooks={list(self.hooks)} must be a non-empty list of distinct hook names")
        dtype_name(self.dtype)  # a dtype the store can hold, or a ValueError naming the allowed ones
        for name in ("batch_size", "shard_sequences"):
            if getattr(self, name) < 1:
                raise ValueError(f"CacheConfig.{name}={getattr(self, name)} must be a positive integer")
        if self.context_size < 2:
            raise ValueError(f"CacheConfig.context_size={self.context_size} must be >= 2")
        if self.shard_sequences % self.batch_size:
            raise ValueError(f"CacheConfig.shard_sequences={self.shard_sequences} must be a multiple of "
                             f"batch_size={self.batch_size} (batches never straddle shards)")


def write(model, hooks: str | list[str], tokens, out_dir: str | Path, *, grads: bool = False,
          dtype: torch.dtype = torch.float32, batch_size: int = 32, context_size: int | None = None,
          seed: int = 0, resume: bool = False, progress: bool = True, shard_sequences: int | None = None,
          model_name: str | None = None):
    """Cache the activations of `hooks` over `tokens` into the store `out_dir`; returns the `Store`.

    `model`: a `HookedTransformer`. `hooks`: one hook name or several (one pass for all).
    `tokens`: an int (that many tokens from the zoo corpus, rounded up to whole rows), a
    LongTensor (n_seq, ctx), or a path to a text file / `datasets` directory (see
    `interp.cache.sources.resolve`). Activations of shape (B, T, ...) are stored as
    (B*T, prod(...)) rows in `dtype`. `grads=True` adds dL/d(activation) per token.
    `batch_size`: sequences per model pass. `context_size`: tokens per row (default the
    model's n_ctx). `resume=True` continues a killed run. `shard_sequences` overrides the
    shard size (default ~128 MiB per shard). `model_name` goes into the manifest (default
    `model.cfg.model_name`). Under torchrun each rank writes a contiguous block of shards and
    rank 0 writes the manifest; the store equals the single-process one.
    """
    from interp.cache.reader import open_store

    hooks = [hooks] if isinstance(hooks, str) else list(hooks)
    _check_hook_names(model, hooks)
    storage = dtype_name(dtype)
    # errors on empty sources come here; text and dataset rows are spilled beside the store, not held in memory
    rows = sources.resolve(tokens, model, context_size, seed, spill_dir=Path(out_dir).parent)
    n_seq, ctx = rows.tokens.shape
    d_model = _probe_widths(model, hooks, rows.tokens[:1, :2])
    bytes_per_seq = ctx * (sum(d_model.values()) * DTYPES[storage][1].itemsize * (2 if grads else 1) + 4)
    if shard_sequences is None:
        shard_sequences = max(1, SHARD_BYTES_TARGET // (bytes_per_seq * batch_size)) * batch_size
    config = CacheConfig(tuple(hooks), storage, batch_size, ctx, grads, seed, shard_sequences)
    manifest = Manifest(model=model_name or model.cfg.model_name, hooks=hooks, d_model=d_model, dtype=storage,
                        context_size=ctx, n_tokens=n_seq * ctx, has_grads=grads, shard_sequences=shard_sequences,
                        config=dict(to_dict(config), hooks=hooks, source=rows.source))

    out_dir = Path(out_dir)
    ranks = distributed.current()
    with _one_writer(out_dir, ranks):
        previous = _check_target(out_dir, manifest, resume, clean=ranks.rank == 0)
        distributed.barrier(ranks)
        if ranks.rank == 0:
            out_dir.mkdir(parents=True, exist_ok=True)
            if previous is None:
                write_manifest(out_dir, manifest)
        distributed.barrier(ranks)

        recorded = {s.name: s for s in (previous.shards if previous else ())}
        mine = distributed.my_range(manifest.n_shards, ranks)
        done: list[ShardInfo] = []
        bar = tqdm(total=len(mine) * shard_sequences, desc=f"cache {', '.join(hooks)}", unit="seq",
                   disable=not progress or ranks.rank != 0)
        for i in mine:
            info = _existing_shard(out_dir, manifest, i, recorded)
            if info is None:
                info = _write_shard(model, rows.tokens, out_dir, manifest, i)
                if ranks.world_size == 1:  # progress is visible in the manifest (ranks > 1: at the end)
                    recorded[info.name] = info
                    manifest.shards = tuple(sorted(recorded.values(), key=lambda s: s.name))
                    write_manifest(out_dir, manifest)
            done.append(info)
            bar.update(shard_sequences)
        bar.close()

        gathered = [s for part in distributed.all_gather(done, ranks) for s in part]
        if ranks.rank == 0:
            manifest.shards = tuple(sorted(gathered, key=lambda s: s.name))
            manifest.complete = True
            write_manifest(out_dir, manifest)
        distributed.barrier(ranks)
    return open_store(out_dir)


@contextmanager
def _one_writer(out_dir: Path, ranks: distributed.Ranks):
    """Rank 0 holds the store's lock while every rank writes; all ranks fail if it cannot."""
    if out_dir.exists() and not out_dir.is_dir():
        raise StoreError(f"{out_dir} is a file, not a directory: choose a directory for the store")
    with ExitStack() as held:
        refused = None
        if ranks.rank == 0:
            try:
                held.enter_context(hold_lock(out_dir, what="activation store"))
            except LockError as e:
                refused = e
        message = distributed.all_gather(None if refused is None else str(refused), ranks)[0]
        if refused is not None:
            raise refused
        if message is not None:
            raise LockError(message)
        yield


def _check_hook_names(model, hooks: list[str]) -> None:
    valid = list(model.hook_dict)
    for hook in hooks:
        if hook not in model.hook_dict:
            near = difflib.get_close_matches(hook, valid, n=5, cutoff=0.5)
            raise ValueError(f"unknown hook {hook!r}; nearest valid names: {', '.join(near) or '(none close)'}; "
                             f"the model has {len(valid)} hooks (model.hook_dict)")


def _stop_at_layer(model, hooks: list[str]) -> int | None:
    """The layer to stop the forward pass at (exclusive), or None when a hook needs the full pass."""
    layers = []
    for hook in hooks:
        m = re.match(r"blocks\.(\d+)\.", hook)
        if m:
            layers.append(int(m.group(1)))
        elif hook in ("hook_embed", "hook_pos_embed", "hook_tokens"):
            layers.append(-1)
        else:
            return None
    return max(layers) + 1 if max(layers) + 1 < model.cfg.n_layers else None


def _probe_widths(model, hooks: list[str], probe: torch.Tensor) -> dict[str, int]:
    """Width per hook from a 2-token pass; every hook must be per token: (batch, pos, ...)."""
    shapes = {}

    def grab(act, hook):
        shapes[hook.name] = tuple(act.shape)

    with torch.no_grad():
        model.run_with_hooks(probe.to(model.cfg.device), fwd_hooks=named_all([(h, grab) for h in hooks]),
                             return_type=None, stop_at_layer=_stop_at_layer(model, hooks))
    widths = {}
    for hook in hooks:
        shape = shapes.get(hook)
        if shape is None or len(shape) < 3 or shape[:2] != tuple(probe.shape):
            raise ValueError(f"hook {hook!r} has activations of shape {shape}; the store caches per-token "
                             "activations of shape (batch, pos, ...), e.g. hook_resid_post, hook_z, mlp.hook_post")
        widths[hook] = int(np.prod(shape[2:]))
    return widths


_MATCHING_FIELDS = ("d_model", "dtype", "has_grads", "model", "hooks", "context_size", "n_tokens",
                    "shard_sequences", "config")


_OWN_PARTIAL = re.compile(r"\.(manifest\.json|shard_\d{5,}\.bin)\.tmp")
"""Temporary files of this writer: what a kill before the first manifest can leave."""


def _check_target(out_dir: Path, manifest: Manifest, resume: bool, clean: bool) -> Manifest | None:
    """The store already at `out_dir` that this run continues (None for a fresh one). A
    directory holding only this writer's temporary files is a run killed before its first
    manifest: with `clean` (rank 0, which holds the lock) they are removed, and it starts over."""
    if not (out_dir / MANIFEST).is_file():
        entries = sorted(out_dir.iterdir()) if out_dir.is_dir() else []
        foreign = [p.name for p in entries if not _OWN_PARTIAL.fullmatch(p.name)]
        if foreign:
            raise StoreError(f"{out_dir} exists, is not empty ({', '.join(foreign[:3])}"
                             f"{' ...' if len(foreign) > 3 else ''}) and holds no {MANIFEST}: it is not an "
                             "activation store; choose an empty or new directory")
        for p in entries if clean else ():
            p.unlink(missing_ok=True)
        return None
    previous = read_manifest(out_dir)
    if not resume:
        raise StoreError(f"{out_dir} already holds a store ({'complete' if previous.complete else 'incomplete'}); "
                         "pass resume=True (--resume) to continue it, or choose another directory")
    for name in _MATCHING_FIELDS:
        old, new = getattr(previous, name), getattr(manifest, name)
        if old != new:
            raise StoreError(f"cannot append to {out_dir}: its {name} is {old!r} but this run has {new!r}; "
                             "rerun with the store's settings, or write a new store")
    return previous


def _existing_shard(out_dir: Path, manifest: Manifest, i: int, recorded: dict[str, ShardInfo]) -> ShardInfo | None:
    """The record of shard `i` if an intact file is already there (a resumed run); removes
    leftovers and damaged shards, which are then recomputed. A shard the manifest does not
    record yet (a kill between its rename and the manifest's) is complete: it was fsynced
    before the rename."""
    name = shard_name(i)
    path, tmp = out_dir / name, out_dir / f".{name}.tmp"
    tmp.unlink(missing_ok=True)
    if not path.is_file():
        return None
    n_tokens = _shard_sequences(manifest, i) * manifest.context_size
    size = shard_layout(manifest.hooks, manifest.d_model, manifest.dtype, manifest.has_grads, n_tokens)[1]
    old = recorded.get(name)
    intact = path.stat().st_size == size
    if intact:  # hashed with the recorded algorithm: a format-1 store keeps its CRC-32 records
        info = ShardInfo(name, i * manifest.shard_tokens, n_tokens, size,
                         file_checksum(path, algorithm_of(old.checksum) if old else CHECKSUM))
        intact = old is None or old == info
    if not intact:
        path.unlink()  # damaged after it was written: recompute it
        return None
    return info


def _shard_sequences(manifest: Manifest, i: int) -> int:
    n_seq = manifest.n_tokens // manifest.context_size
    return min(manifest.shard_sequences, n_seq - i * manifest.shard_sequences)


def _write_shard(model, tokens: torch.Tensor, out_dir: Path, manifest: Manifest, i: int) -> ShardInfo:
    name = shard_name(i)
    path, tmp = out_dir / name, out_dir / f".{name}.tmp"
    seq0, n_seq = i * manifest.shard_sequences, _shard_sequences(manifest, i)
    ctx = manifest.context_size
    layout, size = shard_layout(manifest.hooks, manifest.d_model, manifest.dtype, manifest.has_grads, n_seq * ctx)
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as e:
            _raise_disk_error(e, out_dir, name)
        buffer = np.memmap(tmp, dtype=np.uint8, mode="r+", shape=(size,))
        views = {key: as_tensor(buffer, spec, None if key == "tokens" else manifest.dtype)
                 for key, spec in layout.items()}
        shard_rows = tokens[seq0:seq0 + n_seq]  # (n_seq, ctx)
        views["tokens"].copy_(shard_rows.reshape(-1))
        batch_size = manifest.config["batch_size"]
        for b0 in range(0, n_seq, batch_size):
            batch = shard_rows[b0:b0 + batch_size]  # (B, ctx)
            rows = slice(b0 * ctx, (b0 + len(batch)) * ctx)
            where = f"batch of sequences [{seq0 + b0}, {seq0 + b0 + len(batch)})"
            _cache_batch(model, batch, manifest, {h: views[f"acts/{h}"][rows] for h in manifest.hooks},
                         {h: views[f"grads/{h}"][rows] for h in manifest.hooks} if manifest.has_grads else None,
                         where)
        buffer.flush()
        digest = checksum(buffer)
        del views, buffer
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
    fsync_dir(out_dir)
    return ShardInfo(name, seq0 * ctx, n_seq * ctx, size, digest)


def _raise_disk_error(e: OSError, out_dir: Path, name: str):
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        raise StoreError(f"disk full while writing {out_dir / name}: the store stays consistent (every shard "
                         "before it is complete); free space and rerun with resume=True (--resume)") from e
    raise e


def _cache_batch(model, batch: torch.Tensor, manifest: Manifest, acts_out: dict[str, torch.Tensor],
                 grads_out: dict[str, torch.Tensor] | None, where: str) -> None:
    """Run one model pass over `batch` (B, T); copy each hook's (B*T, d) activations into
    `acts_out[hook]` and, with `grads_out`, dL/d(activation) into `grads_out[hook]`."""
    batch = batch.to(model.cfg.device)
    kept: dict[str, torch.Tensor] = {}

    def store(act, hook):
        _check_finite(act, "activations", hook.name, where)
        acts_out[hook.name].copy_(act.detach().reshape(acts_out[hook.name].shape))
        if grads_out is None:
            return None
        if not act.requires_grad:  # a frozen model: make the activation a leaf to differentiate
            act = act.detach().requires_grad_(True)
        kept[hook.name] = act
        return act

    fwd_hooks = named_all([(h, store) for h in manifest.hooks])
    if grads_out is None:
        with torch.no_grad():
            model.run_with_hooks(batch, fwd_hooks=fwd_hooks, return_type=None,
                                 stop_at_layer=_stop_at_layer(model, manifest.hooks))
        return
    with torch.enable_grad():
        logits = model.run_with_hooks(batch, fwd_hooks=fwd_hooks, return_type="logits")  # (B, T, V)
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), batch[:, 1:].flatten(), reduction="sum")
        grads = torch.autograd.grad(loss, [kept[h] for h in manifest.hooks], allow_unused=True)
    for hook, g in zip(manifest.hooks, grads):
        if g is None:
            grads_out[hook].zero_()
            continue
        _check_finite(g, "gradients", hook, where)
        grads_out[hook].copy_(g.reshape(grads_out[hook].shape))


def _check_finite(t: torch.Tensor, what: str, hook: str, where: str) -> None:
    # one reduction in the common case; the elementwise test only when the sum is not finite
    if not torch.isfinite(t.detach().float().sum()) and not torch.isfinite(t.detach()).all():
        raise FloatingPointError(f"NaN/Inf in the {what} of hook {hook!r} in the {where}; "
                                 "the model or its inputs are broken (nothing of this shard was kept)")


def cache_model(model: str, hooks: list[str], tokens: int | str | Path, out_dir: str | Path, *,
                dtype: torch.dtype = torch.float32, device: str = "cpu", **options):
    """`write` for a model given by name (zoo name, model directory or TransformerLens name):
    what `interp cache` runs. `dtype`: the storage dtype; `options`: `write`'s keywords."""
    from interp.models import load_model

    dtype_name(dtype)  # fail before loading the model
    loaded = load_model(model, device=device)
    return write(loaded, hooks, tokens, out_dir, dtype=dtype, model_name=str(model), **options)
