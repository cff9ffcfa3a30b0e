"""The two sparse primitives every sparse backward is built from, in torch (any device).

`segment_sum` is a gather-and-weighted-sum over destination segments (CSR form), `pair_dots`
a dot product per (row, row) pair. The Triton backend supplies the same two functions
(sae_kernels.triton_kernels); sae_kernels.sparse_autograd composes them into encoder and decoder
backward passes. Neither ever forms a B x n matrix, and pair_dots works in chunks so that its
(chunk, d) temporaries stay small.
"""

from __future__ import annotations

import torch

_CHUNK_ELEMENTS = 1 << 22  # (chunk, d) temporaries hold at most this many elements


def csr_offsets(sorted_keys: torch.Tensor, n_segments: int) -> torch.Tensor:
    """(n_segments + 1,) int64 start offsets of each key's run in `sorted_keys` (E,) non-decreasing."""
    counts = torch.bincount(sorted_keys, minlength=n_segments)
    return torch.cat([counts.new_zeros(1), counts.cumsum(0)])


def segment_sum(
    src: torch.Tensor, src_idx: torch.Tensor, weights: torch.Tensor, offsets: torch.Tensor, out: torch.Tensor
) -> torch.Tensor:
    """Fill out (R, d) with out[r] = sum over e in [offsets[r], offsets[r+1]) of weights[e] * src[src_idx[e]].

    src (m, d) contiguous; src_idx (E,) int64; weights (E,); offsets (R + 1,) int64; out may be
    a strided view (e.g. the transpose of a (d, R) gradient), so no second copy is needed.
    On CPU each chunk of segments is one `embedding_bag` (parallel, no (E, d) temporary).
    Returns out.
    """
    R, d = out.shape
    chunk = max(1, _CHUNK_ELEMENTS // max(d, 1))
    for r0 in range(0, R, chunk):
        r1 = min(r0 + chunk, R)
        e0, e1 = int(offsets[r0]), int(offsets[r1])
        out[r0:r1] = torch.nn.functional.embedding_bag(
            src_idx[e0:e1],
            src,
            offsets[r0 : r1 + 1] - e0,
            mode="sum",
            per_sample_weights=weights[e0:e1].to(src.dtype),
            include_last_offset=True,
        )
    return out


def pair_dots(a: torch.Tensor, a_idx: torch.Tensor, b: torch.Tensor, b_idx: torch.Tensor) -> torch.Tensor:
    """(E,) out[e] = a[a_idx[e]] . b[b_idx[e]], for a (Ra, d), b (Rb, d), in the promoted dtype."""
    d = a.shape[1]
    chunk = max(1, _CHUNK_ELEMENTS // max(d, 1))
    dtype = torch.promote_types(a.dtype, b.dtype)
    out = torch.empty(a_idx.shape[0], dtype=dtype, device=a.device)
    for start in range(0, a_idx.shape[0], chunk):
        stop = start + chunk
        out[start:stop] = (a[a_idx[start:stop]].to(dtype) * b[b_idx[start:stop]].to(dtype)).sum(-1)
    return out
