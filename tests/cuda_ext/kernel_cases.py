"""Shared checks: a backend's kernels against the reference and plain autograd.

Gradients are compared with plain autograd of the reference pre-activations gathered at the
backend's own selection, so that ties (where either choice is correct) are still checked.
"""

from __future__ import annotations

import os

import torch

import sae_kernels
from sae_kernels import reference

DEVICE = torch.device(os.environ.get("INTERP_KERNEL_DEVICE", "cpu"))
"""Where the cases run: the CPU, or the GPU when benchmarks.gpu runs them (INTERP_KERNEL_DEVICE=cuda).
Inputs are drawn on the CPU from seeded generators, then moved, so every device sees the same numbers."""

TOL = {torch.float64: dict(atol=1e-9, rtol=1e-9), torch.float32: dict(atol=1e-4, rtol=1e-4),
       torch.float16: dict(atol=2e-2, rtol=2e-2)}


def encoder(B, d, n, dtype=torch.float64, seed=0, bias=0.0, ties=False):
    """Random encoder inputs; ties=True makes latent 2i+1 a copy of latent 2i (exactly tied pre)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, d, generator=g).to(DEVICE, dtype).requires_grad_()
    W_enc = torch.randn(d, n, generator=g) / d**0.5
    b_enc = 0.1 * torch.randn(n, generator=g) + bias
    if ties:
        W_enc[:, 1::2] = W_enc[:, 0::2][:, : n // 2]
        b_enc[1::2] = b_enc[0::2][: n // 2]
    W_enc = W_enc.to(DEVICE, dtype).requires_grad_()
    b_enc = b_enc.to(DEVICE, dtype).requires_grad_()
    b_dec = (0.1 * torch.randn(d, generator=g)).to(DEVICE, dtype).requires_grad_()
    return x, W_enc, b_enc, b_dec


def grads(loss, tensors):
    return torch.autograd.grad(loss, tensors, allow_unused=True)


def assert_grads_close(got, expected, dtype):
    for g, e in zip(got, expected):
        if e is None:
            assert g is None or g.abs().max() == 0
        else:
            torch.testing.assert_close(g, e, **TOL[dtype])


def check_topk(backend, B, d, n, k, *, dtype=torch.float64, dead=None, k_aux=0, seed=0, bias=0.0, ties=False):
    params = encoder(B, d, n, dtype, seed, bias, ties)
    dead = None if dead is None else dead.to(DEVICE)
    out = sae_kernels.topk_encode(*params, k, dead_mask=dead, k_aux=k_aux, backend=backend)
    ref = reference.topk_encode(*params, k, dead_mask=dead, k_aux=k_aux)
    torch.testing.assert_close(out.top_acts, ref.top_acts, **TOL[dtype])
    assert out.top_indices.dtype == torch.int64 and out.top_indices.shape == (B, k)
    assert (out.aux_acts is None) == (ref.aux_acts is None)
    pre = reference.pre_activations(*params)
    # the selection is a valid top-k: what it chose is as large as what the reference chose
    torch.testing.assert_close(pre.gather(1, out.top_indices).relu(), ref.top_acts, **TOL[dtype])
    g = torch.Generator().manual_seed(seed + 1)
    w_top = torch.randn(B, k, generator=g).to(DEVICE, dtype)
    loss = (w_top * out.top_acts).sum()
    plain = (w_top * pre.gather(1, out.top_indices).relu()).sum()
    if ref.aux_acts is not None:
        torch.testing.assert_close(out.aux_acts, ref.aux_acts, **TOL[dtype])
        assert bool(dead[out.aux_indices].all())
        w_aux = torch.randn(*out.aux_acts.shape, generator=g).to(DEVICE, dtype)
        loss = loss + (w_aux * out.aux_acts).sum()
        plain = plain + (w_aux * pre.gather(1, out.aux_indices).relu()).sum()
    assert_grads_close(grads(loss, params), grads(plain, params), dtype)
    return out, ref


def check_code(backend, kind, B, d, n, arg, *, dtype=torch.float64, seed=0, bias=0.0, ties=False):
    params = encoder(B, d, n, dtype, seed, bias, ties)
    encode = {"mutual": sae_kernels.mutual_choice_encode, "feature": sae_kernels.feature_choice_encode}[kind]
    ref_encode = {"mutual": reference.mutual_choice_encode, "feature": reference.feature_choice_encode}[kind]
    arg = arg.to(DEVICE) if isinstance(arg, torch.Tensor) else arg
    code = encode(*params, arg, backend=backend)
    ref = ref_encode(*params, arg)
    assert code.batch_size == B
    assert code.values.numel() == ref.values.numel()
    order = code.rows * n + code.cols
    assert bool((order[1:] > order[:-1]).all()), "entries must be ordered by (row, col)"
    if ties:  # either of two tied entries may be kept: compare the kept values as multisets
        torch.testing.assert_close(code.values.sort().values, ref.values.sort().values, **TOL[dtype])
    else:
        assert torch.equal(code.rows, ref.rows) and torch.equal(code.cols, ref.cols)
        torch.testing.assert_close(code.values, ref.values, **TOL[dtype])
    w = torch.randn(code.values.shape, generator=torch.Generator().manual_seed(seed + 1)).to(DEVICE, dtype)
    pre = reference.pre_activations(*params)
    plain = (w * pre[code.rows, code.cols].relu()).sum()
    assert_grads_close(grads((w * code.values).sum(), params), grads(plain, params), dtype)


def check_decode(backend, B, n, d, k, *, dtype=torch.float64, seed=0, with_bias=True):
    g = torch.Generator().manual_seed(seed)
    acts = torch.rand(B, k, generator=g).to(DEVICE, dtype).requires_grad_()
    indices = torch.stack([torch.randperm(n, generator=g)[:k] for _ in range(B)]).to(DEVICE)
    W_dec = torch.randn(n, d, generator=g).to(DEVICE, dtype).requires_grad_()
    b_dec = torch.randn(d, generator=g).to(DEVICE, dtype).requires_grad_() if with_bias else None
    out = sae_kernels.sparse_decode(acts, indices, W_dec, b_dec, backend=backend)
    ref = reference.sparse_decode(acts, indices, W_dec, b_dec)
    torch.testing.assert_close(out, ref, **TOL[dtype])
    w = torch.randn(B, d, generator=g).to(DEVICE, dtype)
    inputs = [t for t in (acts, W_dec, b_dec) if t is not None]
    assert_grads_close(grads((w * out).sum(), inputs), grads((w * ref).sum(), inputs), dtype)


def check_coo_decode(backend, B, n, d, budget, *, dtype=torch.float64, seed=0):
    x, W_enc, b_enc, b_dec = encoder(B, d, n, dtype, seed)
    code = reference.mutual_choice_encode(x.detach(), W_enc.detach(), b_enc.detach(), b_dec.detach(), budget)
    values = code.values.detach().requires_grad_()
    code = sae_kernels.SparseCode(values, code.rows, code.cols, B)
    W_dec = torch.randn(n, d, generator=torch.Generator().manual_seed(seed)).to(DEVICE, dtype).requires_grad_()
    out = sae_kernels.coo_decode(code, W_dec, b_dec, backend=backend)
    ref = reference.coo_decode(code, W_dec, b_dec)
    torch.testing.assert_close(out, ref, **TOL[dtype])
    w = torch.randn(B, d, generator=torch.Generator().manual_seed(seed + 2)).to(DEVICE, dtype)
    inputs = (values, W_dec, b_dec)
    assert_grads_close(grads((w * out).sum(), inputs), grads((w * ref).sum(), inputs), dtype)
