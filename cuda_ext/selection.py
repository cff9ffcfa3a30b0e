"""Block-wise selection passes (torch, any device, no autograd): the pre-activations are
computed one block of latents at a time, and only running candidates survive between blocks,
so no B x n matrix is ever held. Each returns the chosen entries and their pre-activation
values; sae_kernels.sparse_autograd turns those into differentiable outputs.

xc = x - b_dec (B, d); W_enc (d, n); b_enc (n,).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

BLOCK_ELEMENTS = 1 << 22  # a (B, block) pre-activation tile holds at most this many elements


class TopkSelection(NamedTuple):
    """top_pre/top_indices (B, k) and aux_pre/aux_indices (B, k_aux) (k_aux may be 0), sorted descending."""

    top_pre: torch.Tensor
    top_indices: torch.Tensor
    aux_pre: torch.Tensor
    aux_indices: torch.Tensor


class CooSelection(NamedTuple):
    """Chosen entries ordered by (row, col): pre-activation values (E,), rows (E,), cols (E,)."""

    values: torch.Tensor
    rows: torch.Tensor
    cols: torch.Tensor


def latent_blocks(batch_size: int, n: int, block: int | None = None) -> list[tuple[int, int]]:
    """[start, stop) latent ranges whose (batch_size, block) tile fits BLOCK_ELEMENTS (>= 16 wide)."""
    if block is None:
        block = min(n, max(16, BLOCK_ELEMENTS // max(batch_size, 1)))
    return [(start, min(start + block, n)) for start in range(0, n, block)]


def _pre_block(xc: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    return torch.addmm(b_enc[start:stop], xc, W_enc[:, start:stop])  # (B, stop - start)


def _merge_topk(run_v, run_i, block_v, block_ids, k):
    """Running top-k (B, <=k) merged with a block's values (B, L) whose latent ids are block_ids (L,).

    Once every row holds k values, only block entries above the row's current k-th value can
    enter; they are few (about k/j per row in the j-th block), so instead of a top-k over the
    whole block they are gathered into a (B, m) ragged-to-padded tile and merged with the
    running list. Before that, the block's own top-k is merged."""
    if run_v.shape[1] == k:
        above = block_v > run_v[:, -1:]
        rows, pos = above.nonzero(as_tuple=True)
        if rows.numel() == 0:
            return run_v, run_i
        counts = torch.bincount(rows, minlength=block_v.shape[0])
        starts = torch.cumsum(counts, 0) - counts
        slot = torch.arange(rows.numel(), device=rows.device) - starts[rows]
        width = int(counts.max())
        new_v = block_v.new_full((block_v.shape[0], width), float("-inf"))
        new_i = run_i.new_zeros(block_v.shape[0], width)
        new_v[rows, slot] = block_v[rows, pos]
        new_i[rows, slot] = block_ids[pos]
    else:
        new_v, best_pos = block_v.topk(min(k, block_v.shape[1]), dim=1)
        new_i = block_ids[best_pos]
    cand_v = torch.cat([run_v, new_v], dim=1)
    cand_i = torch.cat([run_i, new_i], dim=1)
    top_v, pos = cand_v.topk(min(k, cand_v.shape[1]), dim=1)
    return top_v, cand_i.gather(1, pos)


@torch.no_grad()
def topk(
    xc: torch.Tensor,
    W_enc: torch.Tensor,
    b_enc: torch.Tensor,
    k: int,
    dead_latents: torch.Tensor | None,
    k_aux: int,
    block: int | None = None,
) -> TopkSelection:
    """Running top-k of pre per row; with dead_latents (n_dead,) int64 and k_aux <= n_dead, also
    the running top-k_aux over those latents, in the same pass over the latent blocks."""
    B, n = xc.shape[0], W_enc.shape[1]
    empty_v = xc.new_empty(B, 0)
    empty_i = torch.empty(B, 0, dtype=torch.int64, device=xc.device)
    top_v, top_i, aux_v, aux_i = empty_v, empty_i, empty_v, empty_i
    use_aux = dead_latents is not None and k_aux > 0
    dead_mask = None
    if use_aux:
        dead_mask = torch.zeros(n, dtype=torch.bool, device=xc.device)
        dead_mask[dead_latents] = True
    for start, stop in latent_blocks(B, n, block):
        pre_BL = _pre_block(xc, W_enc, b_enc, start, stop)
        latent_ids = torch.arange(start, stop, device=xc.device)
        top_v, top_i = _merge_topk(top_v, top_i, pre_BL, latent_ids, k)
        if use_aux:
            dead_here = dead_mask[start:stop].nonzero().squeeze(1)
            if dead_here.numel():
                aux_v, aux_i = _merge_topk(aux_v, aux_i, pre_BL[:, dead_here], dead_here + start, k_aux)
    return TopkSelection(top_v, top_i, aux_v, aux_i)


def _coo_in_row_order(values: torch.Tensor, flat: torch.Tensor, n: int) -> CooSelection:
    flat, order = flat.sort()
    return CooSelection(values[order], flat // n, flat % n)


@torch.no_grad()
def mutual_choice(
    xc: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, budget: int, block: int | None = None
) -> CooSelection:
    """The `budget` largest positive entries of pre over the whole batch: per block, only entries
    above the running threshold (the budget-th largest so far, or 0) become candidates."""
    B, n = xc.shape[0], W_enc.shape[1]
    run_v = xc.new_empty(0)
    run_flat = torch.empty(0, dtype=torch.int64, device=xc.device)
    if budget == 0:
        return _coo_in_row_order(run_v, run_flat, n)
    for start, stop in latent_blocks(B, n, block):
        pre_BL = _pre_block(xc, W_enc, b_enc, start, stop)
        threshold = run_v.min() if run_v.numel() == budget else pre_BL.new_zeros(())
        rows, cols = (pre_BL > threshold).nonzero(as_tuple=True)
        cand_v = torch.cat([run_v, pre_BL[rows, cols]])
        cand_flat = torch.cat([run_flat, rows * n + cols + start])
        if cand_v.numel() > budget:
            cand_v, pos = cand_v.topk(budget)
            cand_flat = cand_flat[pos]
        run_v, run_flat = cand_v, cand_flat
    return _coo_in_row_order(run_v, run_flat, n)


@torch.no_grad()
def feature_choice(
    xc: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, capacity: torch.Tensor, block: int | None = None
) -> CooSelection:
    """Per latent i, its capacity[i] tokens with the largest positive pre. Every latent's column
    lies whole in one block, so blocks are independent."""
    B, n = xc.shape[0], W_enc.shape[1]
    values, flats = [], []
    for start, stop in latent_blocks(B, n, block):
        cap_L = capacity[start:stop].clamp(max=B).to(xc.device)
        m = int(cap_L.max())
        if m == 0:
            continue
        pre_BL = _pre_block(xc, W_enc, b_enc, start, stop)
        top_v, top_rows = pre_BL.topk(m, dim=0)  # (m, L)
        rank = torch.arange(m, device=xc.device)[:, None]
        keep = (rank < cap_L) & (top_v > 0)
        cols = torch.arange(start, stop, device=xc.device).expand(m, -1)
        values.append(top_v[keep])
        flats.append(top_rows[keep] * n + cols[keep])
    if not values:
        return _coo_in_row_order(xc.new_empty(0), torch.empty(0, dtype=torch.int64, device=xc.device), n)
    return _coo_in_row_order(torch.cat(values), torch.cat(flats), n)
