"""A kernel backend assembled from a top-k selection pass and the two sparse primitives.

The chunked torch backend and the Triton backend are both instances of `SparseBackend`:
they differ only in how the TopK selection runs (torch latent blocks or one fused Triton
kernel) and in who computes `segment_sum` / `pair_dots`. Batch-level selections (Mutual and
Feature Choice) always run as torch latent blocks (sae_kernels.selection), on any device.
"""

from __future__ import annotations

from types import ModuleType
from typing import Callable

import torch

from sae_kernels import selection
from sae_kernels.outputs import EncoderOutput, SparseCode
from sae_kernels.sparse_autograd import CooDecode, SelectedPre

TopkSelect = Callable[..., selection.TopkSelection]


class SparseBackend:
    """The five kernels of sae_kernels with the B x n pre-activations never materialised.

    select_topk(xc, W_enc, b_enc, k, dead_latents, k_aux) -> TopkSelection; ops: a module
    with segment_sum and pair_dots (see sae_kernels.segment_ops).
    """

    def __init__(self, select_topk: TopkSelect, ops: ModuleType):
        self.select_topk = select_topk
        self.ops = ops

    def _encode_entries(self, xc, W_enc, b_enc, values, rows, cols):
        return SelectedPre.apply(xc, W_enc, b_enc, values, rows, cols, self.ops)

    def topk_encode(self, x, W_enc, b_enc, b_dec, k, *, dead_mask=None, k_aux=0) -> EncoderOutput:
        B = x.shape[0]
        dead_latents = None
        if dead_mask is not None and k_aux > 0:
            dead_latents = dead_mask.nonzero().squeeze(1)
            k_aux = min(k_aux, dead_latents.numel())
            if k_aux == 0:
                dead_latents = None
        xc = x - b_dec
        chosen = self.select_topk(xc.detach(), W_enc.detach(), b_enc.detach(), k, dead_latents, k_aux)
        width = chosen.top_indices.shape[1] + chosen.aux_indices.shape[1]
        cols_BW = torch.cat([chosen.top_indices, chosen.aux_indices], dim=1)
        pre_BW = torch.cat([chosen.top_pre, chosen.aux_pre], dim=1)
        rows = torch.arange(B, device=x.device).repeat_interleave(width)
        acts_BW = self._encode_entries(xc, W_enc, b_enc, pre_BW.flatten(), rows, cols_BW.flatten())
        acts_BW = acts_BW.view(B, width).relu()
        if dead_latents is None:
            return EncoderOutput(acts_BW, chosen.top_indices, None, None)
        return EncoderOutput(acts_BW[:, :k], chosen.top_indices, acts_BW[:, k:], chosen.aux_indices)

    def _coo_code(self, x, W_enc, b_enc, b_dec, chosen: selection.CooSelection) -> SparseCode:
        xc = x - b_dec
        values = self._encode_entries(xc, W_enc, b_enc, chosen.values, chosen.rows, chosen.cols)
        return SparseCode(values, chosen.rows, chosen.cols, x.shape[0])

    def mutual_choice_encode(self, x, W_enc, b_enc, b_dec, budget) -> SparseCode:
        xc = (x - b_dec).detach()
        chosen = selection.mutual_choice(xc, W_enc.detach(), b_enc.detach(), budget)
        return self._coo_code(x, W_enc, b_enc, b_dec, chosen)

    def feature_choice_encode(self, x, W_enc, b_enc, b_dec, capacity) -> SparseCode:
        xc = (x - b_dec).detach()
        chosen = selection.feature_choice(xc, W_enc.detach(), b_enc.detach(), capacity)
        return self._coo_code(x, W_enc, b_enc, b_dec, chosen)

    def coo_decode(self, code: SparseCode, W_dec, b_dec) -> torch.Tensor:
        values, rows, cols = code.values, code.rows, code.cols
        if rows.numel() > 1 and not bool((rows[1:] >= rows[:-1]).all()):  # CooDecode wants row order
            by_row = torch.argsort(rows, stable=True)
            values, rows, cols = values[by_row], rows[by_row], cols[by_row]
        out = CooDecode.apply(values, rows, cols, W_dec, code.batch_size, self.ops)
        return out if b_dec is None else out + b_dec

    def sparse_decode(self, acts, indices, W_dec, b_dec) -> torch.Tensor:
        B, k = acts.shape
        rows = torch.arange(B, device=acts.device).repeat_interleave(k)
        code = SparseCode(acts.flatten(), rows, indices.flatten(), B)
        return self.coo_decode(code, W_dec, b_dec)
