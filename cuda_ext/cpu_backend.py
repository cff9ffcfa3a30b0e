"""The fused CPU backend: the encoder's matmul runs block by block in torch (oneDNN/MKL), and
each block's pre-activations go through one C++ pass that keeps every row's running top-k
(and AuxK top-k over dead latents) in a heap (cuda_ext/csrc/cpu_kernels.cpp). The sparse
backward uses `embedding_bag` for segment sums and a C++ gathered dot product for pair_dots.
Mutual and Feature Choice select in torch latent blocks (sae_kernels.selection), as elsewhere."""

from __future__ import annotations

import torch

from sae_kernels import cpu_ext, segment_ops, selection
from sae_kernels.sparse_backend import SparseBackend


class _Ops:
    """segment_sum from torch (embedding_bag is already a fused, parallel CPU kernel); pair_dots in C++."""

    segment_sum = staticmethod(segment_ops.segment_sum)

    @staticmethod
    def pair_dots(a, a_idx, b, b_idx):
        if a.dtype not in (torch.float32, torch.bfloat16) or b.dtype not in (torch.float32, torch.bfloat16):
            return segment_ops.pair_dots(a, a_idx, b, b_idx)
        out = cpu_ext.module().pair_dots(a.contiguous(), a_idx.contiguous(), b.contiguous(), b_idx.contiguous())
        return out.to(torch.promote_types(a.dtype, b.dtype))


def _heap(B: int, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.full((B, m), float("-inf")), torch.full((B, m), -1, dtype=torch.int64)


@torch.no_grad()
def topk(xc, W_enc, b_enc, k, dead_latents, k_aux, block: int | None = None) -> selection.TopkSelection:
    """Same contract as sae_kernels.selection.topk, with the per-block merge fused in C++ (its heaps
    hold float32, so float64 inputs take the torch selection instead)."""
    if torch.promote_types(xc.dtype, W_enc.dtype) == torch.float64:
        return selection.topk(xc, W_enc, b_enc, k, dead_latents, k_aux, block)
    ext = cpu_ext.module()
    B, n = xc.shape[0], W_enc.shape[1]
    use_aux = dead_latents is not None and k_aux > 0
    top_v, top_i = _heap(B, k)
    aux_v, aux_i = _heap(B, k_aux if use_aux else 0)
    dead_mask = torch.zeros(n if use_aux else 0, dtype=torch.bool)
    if use_aux:
        dead_mask[dead_latents] = True
    pre_BL = None
    for start, stop in selection.latent_blocks(B, n, block):
        pre_BL = torch.addmm(b_enc[start:stop], xc, W_enc[:, start:stop]).contiguous()
        if ext.topk_merge(pre_BL, start, top_v, top_i, dead_mask, aux_v, aux_i):  # NaN: torch.topk's order
            return selection.topk(xc, W_enc, b_enc, k, dead_latents, k_aux, block)
    ext.topk_finish(top_v, top_i)
    if use_aux:
        ext.topk_finish(aux_v, aux_i)
    dtype = pre_BL.dtype  # the matmul's dtype (bf16 under autocast)
    return selection.TopkSelection(top_v.to(dtype), top_i, aux_v.to(dtype), aux_i)


_BACKEND = SparseBackend(topk, _Ops)

topk_encode = _BACKEND.topk_encode
sparse_decode = _BACKEND.sparse_decode
mutual_choice_encode = _BACKEND.mutual_choice_encode
feature_choice_encode = _BACKEND.feature_choice_encode
coo_decode = _BACKEND.coo_decode
