"""Batches of equal-length token sequences, so that no padding ever enters a forward pass.

Prompt sets here are small and of few distinct lengths (a task's templates), so grouping by
length wastes little and keeps every forward exactly what one prompt alone would see: no
attention mask, no pad token, no position shift. Generation, steering read-outs and the
task metrics all batch their prompts this way; this module imports none of them.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from typing import NamedTuple

import torch


class Batch(NamedTuple):
    """One forward pass's worth of sequences, all of the same length."""

    indices: list[int]
    """Position of each row in the input sequence list, to put results back in input order."""
    tokens: torch.Tensor
    """(B, T) the rows stacked; T is the common length."""


def equal_length_batches(sequences: Sequence[torch.Tensor], batch_size: int = 64,
                         keys: Sequence[Hashable] | None = None) -> Iterator[Batch]:
    """Group 1-D token tensors by length and yield them as `Batch`es of at most `batch_size` rows.

    Groups come in the order their first sequence is seen; within a group, sequences keep
    their input order. Every input index appears in exactly one batch. `keys` (one label per
    sequence) splits groups further, so that a batch never mixes two labels: an MoE forward
    is not batch-invariant in the last bits (an expert's matmul sees another set of rows),
    so a metric whose figures were measured one label per batch keeps them bit for bit.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
    if keys is not None and len(keys) != len(sequences):
        raise ValueError(f"keys has {len(keys)} labels for {len(sequences)} sequences: give one per sequence")
    groups: dict[tuple, list[int]] = {}
    for i, seq in enumerate(sequences):
        if not isinstance(seq, torch.Tensor) or seq.ndim != 1:
            shape = tuple(seq.shape) if isinstance(seq, torch.Tensor) else type(seq).__name__
            raise ValueError(f"sequences[{i}] is {shape}: each sequence must be a 1-D tensor of token ids")
        groups.setdefault((len(seq), None if keys is None else keys[i]), []).append(i)
    for group in groups.values():
        for start in range(0, len(group), batch_size):
            indices = group[start:start + batch_size]
            yield Batch(indices, torch.stack([sequences[i] for i in indices]))
