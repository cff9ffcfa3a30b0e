"""Fused SAE encode/decode kernels behind one dispatch point.

Every function takes `backend=` "auto" | "reference" | "chunked" | "cpu" | "triton" (see
`cuda_ext.dispatch`). Triton is optional: without it, "auto" uses the chunked torch path on
GPUs; on CPUs it uses the fused C++ kernels when they build here, else the chunked path.
"""

from cuda_ext.dispatch import (
    BACKENDS,
    coo_decode,
    feature_choice_encode,
    mutual_choice_encode,
    resolve_backend,
    sparse_decode,
    topk_encode,
    triton_available,
)
from cuda_ext.outputs import EncoderOutput, SparseCode

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
