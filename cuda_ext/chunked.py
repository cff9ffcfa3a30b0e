"""The chunked torch backend: TopK / Mutual / Feature Choice selection in latent blocks
(sae_kernels.selection), sparse backward passes with torch primitives (sae_kernels.segment_ops).
Runs on any device and never materialises the B x n pre-activations, on CPU as on GPU."""

from __future__ import annotations

from sae_kernels import segment_ops, selection
from sae_kernels.sparse_backend import SparseBackend

_BACKEND = SparseBackend(selection.topk, segment_ops)

topk_encode = _BACKEND.topk_encode
sparse_decode = _BACKEND.sparse_decode
mutual_choice_encode = _BACKEND.mutual_choice_encode
feature_choice_encode = _BACKEND.feature_choice_encode
coo_decode = _BACKEND.coo_decode
