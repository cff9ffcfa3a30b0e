"""Typed results shared by every backend of the SAE encode/decode kernels."""

from __future__ import annotations

from typing import NamedTuple

import torch


class EncoderOutput(NamedTuple):
    """Result of `topk_encode`. Rows are sorted by pre-activation, largest first.

    top_acts: (B, k) ReLU of the k largest pre-activations of each row.
    top_indices: (B, k) int64 latent index of each of them.
    aux_acts: (B, k_aux') ReLU of the k_aux' = min(k_aux, n_dead) largest pre-activations
        among dead latents, or None when AuxK is off or nothing is dead.
    aux_indices: (B, k_aux') int64, or None with aux_acts.
    """

    top_acts: torch.Tensor
    top_indices: torch.Tensor
    aux_acts: torch.Tensor | None
    aux_indices: torch.Tensor | None


class SparseCode(NamedTuple):
    """A batch of latent codes in coordinate (COO) form, entries ordered by row then column.

    values: (nnz,) activation of each kept (token, latent) pair, all > 0.
    rows: (nnz,) int64 token index in the batch, in [0, batch_size).
    cols: (nnz,) int64 latent index.
    batch_size: B, the number of tokens (rows may be missing from `rows` when a token got no latent).
    """

    values: torch.Tensor
    rows: torch.Tensor
    cols: torch.Tensor
    batch_size: int

    def to_dense(self, n_latents: int) -> torch.Tensor:
        """(B, n_latents) dense matrix of the code (differentiable w.r.t. values)."""
        dense = self.values.new_zeros(self.batch_size, n_latents)
        return dense.index_put((self.rows, self.cols), self.values)
