"""Pure-torch reference of every kernel: the B x n pre-activation matrix is materialised and
plain autograd differentiates it. Every other backend is tested against these functions.

Shapes follow sae-lens: x (B, d), W_enc (d, n), b_enc (n,), b_dec (d,), W_dec (n, d).
Arguments are assumed valid here; `sae_kernels.dispatch` checks them where they enter.
"""

from __future__ import annotations

import torch

from sae_kernels.outputs import EncoderOutput, SparseCode


def pre_activations(
    x: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, b_dec: torch.Tensor
) -> torch.Tensor:
    """(B, n) pre = (x - b_dec) @ W_enc + b_enc."""
    return (x - b_dec) @ W_enc + b_enc


def topk_encode(
    x: torch.Tensor,
    W_enc: torch.Tensor,
    b_enc: torch.Tensor,
    b_dec: torch.Tensor,
    k: int,
    *,
    dead_mask: torch.Tensor | None = None,
    k_aux: int = 0,
) -> EncoderOutput:
    """Top-k of the pre-activations of each row, ReLU'd; AuxK top-k over dead latents if asked."""
    pre_BN = pre_activations(x, W_enc, b_enc, b_dec)
    top_pre, top_indices = pre_BN.topk(k, dim=-1)
    aux_acts = aux_indices = None
    if dead_mask is not None and k_aux > 0 and bool(dead_mask.any()):
        k_aux_eff = min(k_aux, int(dead_mask.sum()))
        dead_pre_BN = pre_BN.masked_fill(~dead_mask, float("-inf"))
        aux_pre, aux_indices = dead_pre_BN.topk(k_aux_eff, dim=-1)
        aux_acts = aux_pre.relu()
    return EncoderOutput(top_pre.relu(), top_indices, aux_acts, aux_indices)


def sparse_decode(
    acts: torch.Tensor, indices: torch.Tensor, W_dec: torch.Tensor, b_dec: torch.Tensor | None
) -> torch.Tensor:
    """(B, d) out[b] = sum_j acts[b, j] * W_dec[indices[b, j]] (+ b_dec)."""
    rows_BK_D = W_dec[indices]  # (B, k, d)
    out = (acts.unsqueeze(-1) * rows_BK_D).sum(dim=1)
    return out if b_dec is None else out + b_dec


def _code_from_mask(acts_BN: torch.Tensor, keep_BN: torch.Tensor) -> SparseCode:
    rows, cols = keep_BN.nonzero(as_tuple=True)  # row-major order
    return SparseCode(acts_BN[rows, cols], rows, cols, acts_BN.shape[0])


def mutual_choice_encode(
    x: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, b_dec: torch.Tensor, budget: int
) -> SparseCode:
    """The `budget` largest entries of ReLU(pre) over the whole (B, n) matrix, positives only."""
    acts_BN = pre_activations(x, W_enc, b_enc, b_dec).relu()
    n_keep = min(budget, acts_BN.numel())
    keep_flat = torch.zeros(acts_BN.numel(), dtype=torch.bool, device=acts_BN.device)
    if n_keep > 0:
        top_vals, top_flat = acts_BN.detach().flatten().topk(n_keep)
        keep_flat[top_flat[top_vals > 0]] = True
    return _code_from_mask(acts_BN, keep_flat.view_as(acts_BN))


def feature_choice_encode(
    x: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, b_dec: torch.Tensor, capacity: torch.Tensor
) -> SparseCode:
    """Latent i keeps the capacity[i] tokens of the batch with the largest ReLU(pre), positives only."""
    acts_BN = pre_activations(x, W_enc, b_enc, b_dec).relu()
    order_BN = acts_BN.detach().argsort(dim=0, descending=True, stable=True)
    rank_BN = torch.empty_like(order_BN)
    rank_BN.scatter_(0, order_BN, torch.arange(acts_BN.shape[0], device=acts_BN.device)[:, None].expand_as(order_BN))
    keep_BN = (rank_BN < capacity.to(acts_BN.device)) & (acts_BN > 0)
    return _code_from_mask(acts_BN, keep_BN)


def coo_decode(code: SparseCode, W_dec: torch.Tensor, b_dec: torch.Tensor | None) -> torch.Tensor:
    """(B, d) out[r] = sum over entries e with rows[e] = r of values[e] * W_dec[cols[e]] (+ b_dec)."""
    contrib_E_D = code.values.unsqueeze(-1) * W_dec[code.cols]
    out = contrib_E_D.new_zeros(code.batch_size, W_dec.shape[1]).index_add(0, code.rows, contrib_E_D)
    return out if b_dec is None else out + b_dec
