"""The writer's view of torch.distributed: which rank am I, and the few collectives it needs.

Under `torchrun` (WORLD_SIZE > 1 in the environment) the process group is joined on first
use with the gloo backend, which runs everywhere and only carries small shard records.
Without torchrun every function degrades to the single-process case.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import torch.distributed as dist


class Ranks(NamedTuple):
    rank: int
    world_size: int


def current() -> Ranks:
    """This process's rank and the world size, joining the torchrun group if needed."""
    if not dist.is_available():
        return Ranks(0, 1)
    if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group(backend="gloo")
    if not dist.is_initialized():
        return Ranks(0, 1)
    return Ranks(dist.get_rank(), dist.get_world_size())


def my_range(n: int, ranks: Ranks) -> range:
    """The contiguous block of `range(n)` owned by `ranks.rank` (blocks differ in size by <= 1)."""
    return range(n * ranks.rank // ranks.world_size, n * (ranks.rank + 1) // ranks.world_size)


def barrier(ranks: Ranks) -> None:
    if ranks.world_size > 1:
        dist.barrier()


def all_gather(obj, ranks: Ranks) -> list:
    """Every rank's `obj` (picklable, small), in rank order."""
    if ranks.world_size == 1:
        return [obj]
    out = [None] * ranks.world_size
    dist.all_gather_object(out, obj)
    return out
