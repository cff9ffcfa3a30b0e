"""Read an activation store: shuffled minibatches across shards from memory-mapped files.

Token `i` of the store (global index = seq * context_size + pos) lives in shard
`i // shard_tokens` at row `i % shard_tokens`. An epoch is a permutation of all tokens
(seeded by `(seed, epoch)`, evaluated batch by batch so memory does not grow with the
store: `interp.cache.permutation`); rank r of `world_size` takes the r-th contiguous block
of it, so ranks partition every epoch. Each minibatch is gathered shard by shard in sorted
row order (sequential page-cache reads), on a prefetch thread.

Verified reads: the first time a `Store` touches a shard (any read: `batches`, `tokens_of`)
it checks the shard's size and checksum against the manifest and raises `StoreError`
naming the shard and the remedy on a mismatch, so damaged bytes are never returned. Each
shard is hashed once per `Store`; `python -m benchmarks.cache` reports what it costs.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np
import torch

from interp.cache.format import DTYPES, Manifest, StoreError, as_tensor, manifest_layout, read_manifest
from interp.cache.permutation import Permutation
from interp.cache.verify import VerifyReport, check_contents, check_shard, check_store

PREFETCH = 4
"""Minibatches prepared ahead of the consumer."""


class Batch(NamedTuple):
    acts: torch.Tensor
    """(B, d) activations in the dtype asked for."""
    grads: torch.Tensor | None
    """(B, d) dL/d(activation), or None unless `with_grads=True`."""
    tokens: torch.Tensor | None
    """(B,) int64 token id at each position, or None unless `with_tokens=True`."""
    index: torch.Tensor
    """(B,) int64 global token index = seq * context_size + pos (ascending within a batch)."""
    target: torch.Tensor | None = None
    """(B, d_target) activations of the target hook at the same tokens (a transcoder's pair), or None."""


class Store:
    """An activation store opened for reading (`interp.cache.open_store`)."""

    def __init__(self, path: Path, manifest: Manifest):
        self.path = path
        self.manifest = manifest
        self._buffers: dict[int, np.memmap] = {}
        self._lock = threading.Lock()

    @property
    def hooks(self) -> list[str]:
        return list(self.manifest.hooks)

    @property
    def n_tokens(self) -> int:
        return self.manifest.n_tokens

    @property
    def has_grads(self) -> bool:
        return self.manifest.has_grads

    def __len__(self) -> int:
        return self.n_tokens

    def __repr__(self) -> str:
        m = self.manifest
        return (f"Store({str(self.path)!r}, model={m.model!r}, hooks={list(m.hooks)}, n_tokens={m.n_tokens:,}, "
                f"dtype={m.dtype}, grads={m.has_grads}, shards={len(m.shards)})")

    def d_model(self, hook: str | None = None) -> int:
        """Activation width of `hook` (may be omitted when the store holds one hook)."""
        return self.manifest.d_model[self._hook(hook)]

    def verify(self, checksums: bool = True) -> VerifyReport:
        """Check every shard's size and (unless `checksums=False`) checksum; raises `StoreError`."""
        return check_store(self.path, self.manifest, checksums)

    def batches(self, batch_size: int, *, hook: str | None = None, shuffle: bool = True, seed: int = 0,
                rank: int = 0, world_size: int = 1, with_grads: bool = False, with_tokens: bool = False,
                epochs: int = 1, dtype: torch.dtype = torch.float32, drop_last: bool = False,
                skip: int = 0, target_hook: str | None = None) -> Iterator[Batch]:
        """Minibatches of `batch_size` tokens; each epoch visits every token of this rank's
        block exactly once (blocks of different ranks differ by at most one token, so pass
        `drop_last=True` to DDP for equal batch counts). Reproducible given the arguments.
        `skip`: start at the `skip`-th minibatch of that sequence without reading the ones
        before (a resumed training run).

        `target_hook`: a second hook of the store read at the same tokens (one shuffle for the
        pair: a transcoder's input `hook` and its target); `grads` are then dL/d(target), what
        a gradient-aware transcoder scores its decoder rows with."""
        hook = self._hook(hook)
        if target_hook is not None:
            target_hook = self._hook(target_hook)
            if target_hook == hook:
                raise ValueError(f"target_hook={target_hook!r} is the input hook: a transcoder predicts another hook")
        if batch_size < 1 or epochs < 1:
            raise ValueError(f"batch_size={batch_size} and epochs={epochs} must be positive")
        if skip < 0:
            raise ValueError(f"skip={skip} must be >= 0")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank={rank} must be in [0, world_size={world_size})")
        if with_grads and not self.has_grads:
            raise ValueError(f"with_grads=True but {self.path} holds no gradients (write it with grads=True)")
        if dtype not in [t for t, _ in DTYPES.values()]:
            raise ValueError(f"dtype={dtype}; allowed: {', '.join(str(t) for t, _ in DTYPES.values())}")
        return _prefetched(lambda: self._batches(batch_size, hook, shuffle, seed, rank, world_size, with_grads,
                                                 with_tokens, epochs, dtype, drop_last, skip, target_hook))

    def tokens_of(self, index: torch.Tensor, before: int = 16, after: int = 4) -> torch.Tensor:
        """Token ids around global token indices `index` (M,): (M, before + 1 + after) int64,
        column `before` being the token itself; -1 where the window leaves its sequence."""
        index = torch.as_tensor(index, dtype=torch.long).reshape(-1)
        if len(index) and not (0 <= int(index.min()) and int(index.max()) < self.n_tokens):
            raise IndexError(f"token indices must be in [0, {self.n_tokens}); got [{int(index.min())}, "
                             f"{int(index.max())}]")
        ctx = self.manifest.context_size
        offsets = torch.arange(-before, after + 1)
        pos = (index % ctx)[:, None] + offsets  # (M, W)
        inside = (pos >= 0) & (pos < ctx)
        wanted = (index - index % ctx)[:, None] + pos.clamp(0, ctx - 1)
        flat, order = wanted.reshape(-1).sort()
        gathered = torch.empty(len(flat), dtype=torch.int32)
        self._gather("tokens", flat, gathered)
        out = torch.empty(len(flat), dtype=torch.long)
        out[order] = gathered.long()
        return out.reshape(wanted.shape).masked_fill(~inside, -1)

    def _hook(self, hook: str | None) -> str:
        if hook is None:
            if len(self.manifest.hooks) > 1:
                raise ValueError(f"{self.path} holds several hooks {list(self.manifest.hooks)}: pass hook=...")
            return self.manifest.hooks[0]
        if hook not in self.manifest.hooks:
            raise ValueError(f"hook={hook!r} is not in {self.path}; it holds {list(self.manifest.hooks)}")
        return hook

    def _batches(self, batch_size, hook, shuffle, seed, rank, world_size, with_grads, with_tokens, epochs,
                 dtype, drop_last, skip, target_hook=None) -> Iterator[Batch]:
        n = self.n_tokens
        lo, hi = n * rank // world_size, n * (rank + 1) // world_size
        d = self.d_model(hook)
        d_target = None if target_hook is None else self.d_model(target_hook)
        grad_hook = hook if target_hook is None else target_hook
        d_grad = self.d_model(grad_hook)
        per_epoch = (hi - lo) // batch_size if drop_last else -(-(hi - lo) // batch_size)
        if per_epoch == 0:
            return
        first_epoch, first_batch = divmod(skip, per_epoch)
        for epoch in range(first_epoch, epochs):
            order = Permutation(n, (seed, epoch)) if shuffle else None
            for b in range(first_batch if epoch == first_epoch else 0, per_epoch):
                positions = np.arange(lo + b * batch_size, min(lo + (b + 1) * batch_size, hi))
                index, _ = torch.from_numpy(order(positions) if shuffle else positions).sort()
                acts = self._gather(f"acts/{hook}", index, torch.empty(len(index), d, dtype=dtype))
                target = None if target_hook is None else \
                    self._gather(f"acts/{target_hook}", index, torch.empty(len(index), d_target, dtype=dtype))
                grads = self._gather(f"grads/{grad_hook}", index, torch.empty(len(index), d_grad, dtype=dtype)) \
                    if with_grads else None
                tokens = self._gather("tokens", index, torch.empty(len(index), dtype=torch.int32)).long() \
                    if with_tokens else None
                yield Batch(acts, grads, tokens, index, target)

    def _gather(self, key: str, index: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Rows `index` (ascending global token indices) of array `key` into `out` (len(index), ...)."""
        shard_tokens = self.manifest.shard_tokens
        shard_of = index // shard_tokens
        bounds = torch.searchsorted(shard_of, torch.arange(int(shard_of[0]), int(shard_of[-1]) + 2)) \
            if len(index) else torch.zeros(1, dtype=torch.long)
        for j in range(len(bounds) - 1):
            a, b = int(bounds[j]), int(bounds[j + 1])
            if a == b:
                continue
            i = int(shard_of[a])
            source = self._array(i, key)
            local = index[a:b] - i * shard_tokens
            if source.dtype == out.dtype:
                torch.index_select(source, 0, local, out=out[a:b])
            else:
                out[a:b] = source.index_select(0, local)
        return out

    def _array(self, i: int, key: str) -> torch.Tensor:
        shard = self.manifest.shards[i]
        with self._lock:  # one thread maps and verifies a shard; the others wait for it
            if i not in self._buffers:
                check_shard(self.path, shard)  # a truncated file would not map
                buffer = np.memmap(self.path / shard.name, dtype=np.uint8, mode="c", shape=(shard.bytes,))
                check_contents(self.path, shard, buffer)
                self._buffers[i] = buffer
        layout = manifest_layout(self.manifest, shard.n_tokens)[0]
        return as_tensor(self._buffers[i], layout[key], None if key == "tokens" else self.manifest.dtype)


def open_store(path: str | Path) -> Store:
    """Open the store at `path` after checking its manifest (fields against each other, the
    writer config and the shard records; its own checksum), that it is complete and every
    shard file has its size. Each shard's checksum is checked when a read first touches it
    (all at once: `Store.verify()` or `interp cache verify PATH`). Raises `StoreError`."""
    path = Path(path)
    manifest = read_manifest(path)
    check_store(path, manifest, checksums=False)
    return Store(path, manifest)


_END = object()


class _Failure(NamedTuple):
    error: BaseException


def _prefetched(make: callable, depth: int = PREFETCH) -> Iterator:
    """Run the iterator `make()` on a thread, `depth` items ahead; errors re-raise here."""
    items: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work():
        try:
            for item in make():
                if not put(item):
                    return
            put(_END)
        except BaseException as e:  # handed to the consumer, which re-raises it
            put(_Failure(e))

    thread = threading.Thread(target=work, daemon=True, name="interp.cache prefetch")

    def consume():
        thread.start()
        try:
            while True:
                item = items.get()
                if item is _END:
                    return
                if isinstance(item, _Failure):
                    raise item.error
                yield item
        finally:
            stop.set()
            thread.join()

    return consume()
