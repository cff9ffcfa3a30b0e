"""Fused SAE encode/decode kernels behind one dispatch point.

Every function takes `backend=` "auto" | "reference" | "chunked" | "cpu" | "triton" (see
`sae_kernels.dispatch`). Triton is optional: without it, "auto" uses the chunked torch path on
GPUs; on CPUs it uses the fused C++ kernels when they build here, else the chunked path.
"""

from sae_kernels.dispatch import (
    BACKENDS,
    coo_decode,
    feature_choice_encode,
    mutual_choice_encode,
    resolve_backend,
    sparse_decode,
    topk_encode,
    triton_available,
)
from sae_kernels.outputs import EncoderOutput, SparseCode

__all__ = [
    "BACKENDS",
    "EncoderOutput",
    "SparseCode",
    "coo_decode",
    "feature_choice_encode",
    "mutual_choice_encode",
    "resolve_backend",
    "sparse_decode",
    "topk_encode",
    "triton_available",
]
