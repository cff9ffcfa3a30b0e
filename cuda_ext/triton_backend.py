"""The Triton backend: fused TopK/AuxK selection kernel and Triton sparse primitives
(sae_kernels.triton_kernels); Mutual/Feature Choice select in torch latent blocks on the same
device (sae_kernels.selection) and share the Triton sparse backward."""

from __future__ import annotations

from sae_kernels import triton_kernels
from sae_kernels.sparse_backend import SparseBackend

_BACKEND = SparseBackend(triton_kernels.topk_select, triton_kernels)

topk_encode = _BACKEND.topk_encode
sparse_decode = _BACKEND.sparse_decode
mutual_choice_encode = _BACKEND.mutual_choice_encode
feature_choice_encode = _BACKEND.feature_choice_encode
coo_decode = _BACKEND.coo_decode
