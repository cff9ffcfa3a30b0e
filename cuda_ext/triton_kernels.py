"""Triton kernels (GPU; CPU only under TRITON_INTERPRET=1) and their launch wrappers.

* `topk_select`: fused TopK encoder selection. Each program takes a block of rows and walks
  the latents block by block: pre tile = xc @ W_enc + b_enc (fp32 accumulation), then a
  running top-k (and AuxK top-k over dead latents) kept in registers, so the B x n matrix
  never reaches memory. Value and index travel together as one int64 sort key:
  high 32 bits = order-preserving integer image of the fp32 value, low 32 bits = 2^32-1-index
  (so among equal values the lower index wins).
* `segment_sum`, `pair_dots`: the sparse primitives of sae_kernels.segment_ops, same contracts.

Importing this module needs the `triton` package; sae_kernels.dispatch only imports it when the
Triton backend is asked for and can run.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from sae_kernels import selection
from sae_kernels.selection import TopkSelection

_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
# Beyond these the running lists no longer fit in registers (large-k variants such as top-AFA's
# candidate pass): such calls select in torch latent blocks on the same device instead.
MAX_FUSED_K = 256
MAX_FUSED_K_AUX = 512
_LOW32 = 0xFFFFFFFF


@triton.jit
def _sort_keys(pre, cols):
    """int64 keys ordering (value desc, index asc) for fp32 `pre` and int32/64 `cols`."""
    bits = pre.to(tl.int32, bitcast=True)
    ordered = tl.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    return (ordered.to(tl.int64) << 32) | (0xFFFFFFFF - cols.to(tl.int64))


@triton.jit
def _merge(running, tile_keys, K: tl.constexpr, BLOCK_B: tl.constexpr):
    best = tl.topk(tile_keys, K)  # (BLOCK_B, K)
    both = tl.reshape(tl.join(running, best), (BLOCK_B, 2 * K))
    return tl.topk(both, K)


@triton.jit
def _topk_select_kernel(
    xc_ptr, w_ptr, b_ptr, dead_ptr, top_ptr, aux_ptr,
    B, D, N, N_PER_SPLIT, SPLITS,
    stride_xb, stride_xd, stride_wd, stride_wn,
    K: tl.constexpr, K_AUX: tl.constexpr, USE_AUX: tl.constexpr,
    BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, UPCAST: tl.constexpr,
    PRECISION: tl.constexpr,
):
    # program (i, s): rows [i*BLOCK_B, ...) x latents [s*N_PER_SPLIT, (s+1)*N_PER_SPLIT)
    pid = tl.program_id(0)
    split = tl.program_id(1)
    rows = pid * BLOCK_B + tl.arange(0, BLOCK_B)
    row_ok = rows < B
    lowest = tl.full((BLOCK_B, K), -9223372036854775808, tl.int64)
    running = lowest
    running_aux = tl.full((BLOCK_B, K_AUX), -9223372036854775808, tl.int64)
    n_stop = tl.minimum(N, (split + 1) * N_PER_SPLIT)
    for n0 in range(split * N_PER_SPLIT, n_stop, BLOCK_N):
        cols = n0 + tl.arange(0, BLOCK_N)
        col_ok = cols < n_stop
        acc = tl.zeros((BLOCK_B, BLOCK_N), dtype=tl.float32)
        for d0 in range(0, D, BLOCK_D):
            ds = d0 + tl.arange(0, BLOCK_D)
            d_ok = ds < D
            a = tl.load(xc_ptr + rows[:, None] * stride_xb + ds[None, :] * stride_xd,
                        mask=row_ok[:, None] & d_ok[None, :], other=0.0)
            w = tl.load(w_ptr + ds[:, None] * stride_wd + cols[None, :] * stride_wn,
                        mask=d_ok[:, None] & col_ok[None, :], other=0.0)
            if UPCAST:  # the interpreter's low-precision tl.dot is unreliable
                a = a.to(tl.float32)
                w = w.to(tl.float32)
            acc += tl.dot(a, w, input_precision=PRECISION)
        acc += tl.load(b_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)[None, :]
        keys = _sort_keys(acc, cols[None, :] + tl.zeros((BLOCK_B, BLOCK_N), tl.int32))
        keys = tl.where(col_ok[None, :], keys, -9223372036854775808)
        running = _merge(running, keys, K, BLOCK_B)
        if USE_AUX:
            dead = tl.load(dead_ptr + cols, mask=col_ok, other=0) != 0
            aux_keys = tl.where(dead[None, :], keys, -9223372036854775808)
            running_aux = _merge(running_aux, aux_keys, K_AUX, BLOCK_B)
    out_k = tl.arange(0, K)
    tl.store(top_ptr + rows[:, None] * (SPLITS * K) + split * K + out_k[None, :], running, mask=row_ok[:, None])
    if USE_AUX:
        out_a = tl.arange(0, K_AUX)
        tl.store(aux_ptr + rows[:, None] * (SPLITS * K_AUX) + split * K_AUX + out_a[None, :], running_aux,
                 mask=row_ok[:, None])


def _decode_keys(keys: torch.Tensor, k: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(values (B, k) in dtype, indices (B, k) int64) from the k largest sort keys of each row of
    keys (B, SPLITS * K): the per-split top-K lists are merged here."""
    keys = keys.topk(k, dim=1).values
    ordered = (keys >> 32).to(torch.int32)
    bits = torch.where(ordered < 0, ordered ^ 0x7FFFFFFF, ordered)
    return bits.view(torch.float32).to(dtype), _LOW32 - (keys & _LOW32)


def _pow2(v: int) -> int:
    return max(1, triton.next_power_of_2(v))


def topk_select(
    xc: torch.Tensor,
    W_enc: torch.Tensor,
    b_enc: torch.Tensor,
    k: int,
    dead_latents: torch.Tensor | None,
    k_aux: int,
    block_b: int | None = None,
    block_n: int | None = None,
    block_d: int | None = None,
    splits: int | None = None,
) -> TopkSelection:
    """Fused TopK (+ AuxK) selection; same contract as sae_kernels.selection.topk.

    The grid is (row blocks, latent splits): each program keeps the running top-k of its rows
    over its share of the latents, and the (B, splits * K) candidate keys are merged with one
    torch top-k. `splits` defaults to enough programs to fill the GPU (about 4 per SM).
    k > MAX_FUSED_K or k_aux > MAX_FUSED_K_AUX: sae_kernels.selection.topk instead."""
    B, D = xc.shape
    N = W_enc.shape[1]
    use_aux = dead_latents is not None and k_aux > 0
    if k > MAX_FUSED_K or (use_aux and k_aux > MAX_FUSED_K_AUX):
        return selection.topk(xc, W_enc, b_enc, k, dead_latents, k_aux)
    K, K_AUX = _pow2(k), _pow2(k_aux if use_aux else 1)
    if block_b is None:
        block_b = 16 if _INTERPRET else (32 if K_AUX <= 64 else 16)
    block_n = max(block_n or (256 if _INTERPRET else 128), K, K_AUX)
    block_d = block_d or (128 if _INTERPRET else 64)
    row_blocks, latent_blocks = triton.cdiv(B, block_b), triton.cdiv(N, block_n)
    if splits is None:
        sms = 1 if _INTERPRET else torch.cuda.get_device_properties(xc.device).multi_processor_count
        splits = triton.cdiv(4 * sms, row_blocks)
    splits = max(1, min(splits, latent_blocks))
    n_per_split = triton.cdiv(latent_blocks, splits) * block_n
    splits = triton.cdiv(N, n_per_split)
    dead = torch.zeros(N, dtype=torch.int8, device=xc.device)
    if use_aux:
        dead[dead_latents] = 1
    top = torch.empty(B, splits * K, dtype=torch.int64, device=xc.device)
    aux = torch.empty(B, splits * K_AUX if use_aux else 1, dtype=torch.int64, device=xc.device)
    _topk_select_kernel[(row_blocks, splits)](
        xc, W_enc, b_enc, dead, top, aux, B, D, N, n_per_split, splits,
        xc.stride(0), xc.stride(1), W_enc.stride(0), W_enc.stride(1),
        K=K, K_AUX=K_AUX, USE_AUX=use_aux, BLOCK_B=block_b, BLOCK_N=block_n, BLOCK_D=block_d,
        UPCAST=_INTERPRET, PRECISION="ieee" if xc.dtype == torch.float32 else "tf32",
        num_warps=8 if use_aux else 4,  # sm_90: no register spills up to k_aux = 256
    )
    top_pre, top_idx = _decode_keys(top, k, xc.dtype)
    if not use_aux:
        empty = xc.new_empty(B, 0)
        return TopkSelection(top_pre, top_idx, empty, torch.empty(B, 0, dtype=torch.int64, device=xc.device))
    aux_pre, aux_idx = _decode_keys(aux, k_aux, xc.dtype)
    return TopkSelection(top_pre, top_idx, aux_pre, aux_idx)


@triton.jit
def _segment_sum_kernel(
    src_ptr, idx_ptr, w_ptr, off_ptr, out_ptr, D, stride_src, stride_out_r, stride_out_d,
    BLOCK_E: tl.constexpr, BLOCK_D: tl.constexpr,
):
    r = tl.program_id(0)
    ds = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    d_ok = ds < D
    start = tl.load(off_ptr + r)
    stop = tl.load(off_ptr + r + 1)
    acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    for e0 in range(start, stop, BLOCK_E):
        es = e0 + tl.arange(0, BLOCK_E)
        e_ok = es < stop
        idx = tl.load(idx_ptr + es, mask=e_ok, other=0)
        w = tl.load(w_ptr + es, mask=e_ok, other=0.0).to(tl.float32)
        rows = tl.load(src_ptr + idx[:, None] * stride_src + ds[None, :],
                       mask=e_ok[:, None] & d_ok[None, :], other=0.0).to(tl.float32)
        acc += tl.sum(w[:, None] * rows, axis=0)
    tl.store(out_ptr + r * stride_out_r + ds * stride_out_d, acc.to(out_ptr.dtype.element_ty), mask=d_ok)


def segment_sum(
    src: torch.Tensor, src_idx: torch.Tensor, weights: torch.Tensor, offsets: torch.Tensor, out: torch.Tensor
) -> torch.Tensor:
    """Fill out (R, d) (any strides) with out[r] = sum over e in [offsets[r], offsets[r+1]) of
    weights[e] * src[src_idx[e]]; fp32 accumulation. One program per (segment, block of d): no
    atomics, deterministic. Returns out."""
    R, D = out.shape
    if R == 0:
        return out
    src, src_idx, weights = src.contiguous(), src_idx.contiguous(), weights.contiguous()
    block_d = min(128 if _INTERPRET else 256, _pow2(D))
    _segment_sum_kernel[(R, triton.cdiv(D, block_d))](
        src, src_idx, weights, offsets, out, D, src.stride(0), out.stride(0), out.stride(1),
        BLOCK_E=16, BLOCK_D=block_d,
    )
    return out


@triton.jit
def _pair_dots_kernel(
    a_ptr, a_idx_ptr, b_ptr, b_idx_ptr, out_ptr, E, D, stride_a, stride_b,
    BLOCK_E: tl.constexpr, BLOCK_D: tl.constexpr,
):
    es = tl.program_id(0) * BLOCK_E + tl.arange(0, BLOCK_E)
    e_ok = es < E
    ia = tl.load(a_idx_ptr + es, mask=e_ok, other=0)
    ib = tl.load(b_idx_ptr + es, mask=e_ok, other=0)
    acc = tl.zeros((BLOCK_E,), dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        ds = d0 + tl.arange(0, BLOCK_D)
        m = e_ok[:, None] & (ds < D)[None, :]
        va = tl.load(a_ptr + ia[:, None] * stride_a + ds[None, :], mask=m, other=0.0).to(tl.float32)
        vb = tl.load(b_ptr + ib[:, None] * stride_b + ds[None, :], mask=m, other=0.0).to(tl.float32)
        acc += tl.sum(va * vb, axis=1)
    tl.store(out_ptr + es, acc, mask=e_ok)


def pair_dots(a: torch.Tensor, a_idx: torch.Tensor, b: torch.Tensor, b_idx: torch.Tensor) -> torch.Tensor:
    """(E,) out[e] = a[a_idx[e]] . b[b_idx[e]]; fp32 accumulation, result in the promoted dtype."""
    E, D = a_idx.shape[0], a.shape[1]
    a, b, a_idx, b_idx = a.contiguous(), b.contiguous(), a_idx.contiguous(), b_idx.contiguous()
    out = torch.empty(E, dtype=torch.float32, device=a.device)
    block_e = 64 if _INTERPRET else 32
    block_d = min(128, _pow2(D))
    if E:
        _pair_dots_kernel[(triton.cdiv(E, block_e),)](
            a, a_idx, b, b_idx, out, E, D, a.stride(0), b.stride(0), BLOCK_E=block_e, BLOCK_D=block_d,
        )
    return out.to(torch.promote_types(a.dtype, b.dtype))
