"""Autograd functions with sparse backward passes, parameterised by the primitives module
(`sae_kernels.segment_ops` for torch, `sae_kernels.triton_kernels` for Triton): any object with
`segment_sum(src, src_idx, weights, offsets, out)` and `pair_dots(a, a_idx, b, b_idx)`.
"""

from __future__ import annotations

from types import ModuleType

import torch

from sae_kernels.segment_ops import csr_offsets


class SelectedPre(torch.autograd.Function):
    """values (E,) = pre[rows, cols] with pre = xc @ W_enc + b_enc, for entries already chosen
    (and evaluated) by a selection pass. Forward returns those values; backward is sparse:

      grad_xc[b]     = sum over entries of row b of g[e] * W_enc[:, cols[e]]   (gather rows of W_encᵀ)
      grad_W_enc[:, i] = sum over entries of latent i of g[e] * xc[rows[e]]    (sparse-transpose product)
      grad_b_enc[i]  = sum over entries of latent i of g[e]                    (scatter)

    rows must be non-decreasing. A latent chosen twice for one row (TopK and AuxK) gets both
    gradients, as plain autograd gives.
    """

    @staticmethod
    def forward(ctx, xc, W_enc, b_enc, values, rows, cols, ops: ModuleType):  # noqa: D102
        ctx.save_for_backward(xc, W_enc, rows, cols)
        ctx.ops = ops
        ctx.b_enc_dtype = b_enc.dtype
        return values.clone()

    @staticmethod
    def backward(ctx, grad_E):  # noqa: D102
        xc, W_enc, rows, cols = ctx.saved_tensors
        ops = ctx.ops
        grad_E = grad_E.contiguous()
        d, n = W_enc.shape
        grad_xc = grad_W = grad_b = None
        if ctx.needs_input_grad[0]:
            W_enc_T = W_enc.t().contiguous()  # (n, d): rows are encoder directions
            grad_xc = ops.segment_sum(W_enc_T, cols, grad_E, csr_offsets(rows, xc.shape[0]), torch.empty_like(xc))
            del W_enc_T  # freed before grad_W exists: the two d x n buffers never coexist
        if ctx.needs_input_grad[1]:
            by_latent = torch.argsort(cols, stable=True)
            grad_W = torch.empty_like(W_enc, memory_format=torch.contiguous_format)  # (d, n)
            ops.segment_sum(
                xc.contiguous(), rows[by_latent], grad_E[by_latent], csr_offsets(cols[by_latent], n), grad_W.t()
            )
        if ctx.needs_input_grad[2]:
            grad_b = grad_E.new_zeros(n, dtype=ctx.b_enc_dtype).index_add_(0, cols, grad_E.to(ctx.b_enc_dtype))
        return grad_xc, grad_W, grad_b, None, None, None, None


class CooDecode(torch.autograd.Function):
    """(B, d) out[r] = sum over entries e of row r of values[e] * W_dec[cols[e]]; rows non-decreasing.

    Backward: grad_values[e] = grad_out[rows[e]] . W_dec[cols[e]] (dot products);
    grad_W_dec[i] = sum over entries of latent i of values[e] * grad_out[rows[e]] (per latent).
    """

    @staticmethod
    def forward(ctx, values, rows, cols, W_dec, batch_size: int, ops: ModuleType):  # noqa: D102
        ctx.save_for_backward(values, rows, cols, W_dec)
        ctx.ops = ops
        out = W_dec.new_empty(batch_size, W_dec.shape[1], dtype=torch.promote_types(values.dtype, W_dec.dtype))
        return ops.segment_sum(W_dec.contiguous(), cols, values, csr_offsets(rows, batch_size), out)

    @staticmethod
    def backward(ctx, grad_BD):  # noqa: D102
        values, rows, cols, W_dec = ctx.saved_tensors
        ops = ctx.ops
        grad_values = grad_W = None
        grad_BD = grad_BD.contiguous()
        if ctx.needs_input_grad[0]:
            grad_values = ops.pair_dots(grad_BD, rows, W_dec, cols).to(values.dtype)
        if ctx.needs_input_grad[3]:
            by_latent = torch.argsort(cols, stable=True)
            offsets = csr_offsets(cols[by_latent], W_dec.shape[0])
            grad_W = torch.empty_like(W_dec, memory_format=torch.contiguous_format)  # (n, d)
            ops.segment_sum(grad_BD, rows[by_latent], values[by_latent], offsets, grad_W)
        return grad_values, None, None, grad_W, None, None
