"""The two sparse primitives every sparse backward is built from, in torch (any device).

`segment_sum` is a gather-and-weighted-sum over destination segments (CSR form), `pair_dots`
a dot product per (row, row) pair. The Triton backend supplies the same two functions
(cuda_ext.triton_kernels); cuda_ext.sparse_autograd composes them into encoder and decoder
backward passes. Neither ever forms a B x n matrix, and pair_dots works in chunks so that its
(chunk, d) temporaries stay small.
"""

from __future__ import annotations

import torch

_PAIR_CHUNK_ELEMENTS = 1 << 22  # (chunk, d) temporaries of pair_dots hold at most this many elements


def csr_offsets(sorted_keys: torch.Tensor, n_segments: int) -> torch.Tensor:
    """(n_segments + 1,) int64 start offsets of each key's run in `sorted_keys` (E,) non-decreasing."""
    counts = torch.bincount(sorted_keys, minlength=n_segments)
    return torch.cat([counts.new_zeros(1), counts.cumsum(0)])


def segment_sum(
    src: torch.Tensor, src_idx: torch.Tensor, weights: torch.Tensor, offsets: torch.Tensor
) -> torch.Tensor:
    """(R, d) out[r] = sum over e in [offsets[r], offsets[r+1]) of weights[e] * src[src_idx[e]].

    src (m, d) contiguous; src_idx (E,) int64; weights (E,); offsets (R + 1,) int64. The result
    has src's dtype. On CPU this is `embedding_bag` (parallel over segments, no (E, d) temporary).
    """
    return torch.nn.functional.embedding_bag(
        src_idx,
        src,
        offsets,
        mode="sum",
        per_sample_weights=weights.to(src.dtype),
        include_last_offset=True,
    )


def pair_dots(a: torch.Tensor, a_idx: torch.Tensor, b: torch.Tensor, b_idx: torch.Tensor) -> torch.Tensor:
    """(E,) out[e] = a[a_idx[e]] . b[b_idx[e]], for a (Ra, d), b (Rb, d), in the promoted dtype."""
    d = a.shape[1]
    chunk = max(1, _PAIR_CHUNK_ELEMENTS // max(d, 1))
    dtype = torch.promote_types(a.dtype, b.dtype)
    out = torch.empty(a_idx.shape[0], dtype=dtype, device=a.device)
    for start in range(0, a_idx.shape[0], chunk):
        stop = start + chunk
        out[start:stop] = (a[a_idx[start:stop]].to(dtype) * b[b_idx[start:stop]].to(dtype)).sum(-1)
    return out
