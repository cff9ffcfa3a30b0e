"""The one entry point `interp.sae` calls: argument checks, then the chosen backend.

Backends:
  "reference"  pure torch, materialises the B x n pre-activations (sae_kernels.reference);
  "chunked"    torch in latent blocks with a sparse backward, never a B x n matrix (any device);
  "cpu"        the chunked scheme with its selection and dot products fused in C++ (CPU tensors;
               built on first use, sae_kernels.cpu_ext);
  "triton"     fused Triton kernels (GPU; CPU only under TRITON_INTERPRET=1);
  "auto"       "triton" for CUDA tensors when Triton imports; "cpu" for CPU tensors when the C++
               kernels build here; "reference" for meta tensors (a shape-only dry run: the other
               backends read values, e.g. index ranges); else "chunked".
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from types import ModuleType

import torch

from sae_kernels import cpu_ext
from sae_kernels.outputs import EncoderOutput, SparseCode

BACKENDS = ("auto", "reference", "chunked", "cpu", "triton")
_MODULES = {"reference": "sae_kernels.reference", "chunked": "sae_kernels.chunked", "cpu": "sae_kernels.cpu_backend",
            "triton": "sae_kernels.triton_backend"}


def triton_available(device: torch.device) -> bool:
    """Whether the Triton backend can run on `device` (CUDA, or CPU under TRITON_INTERPRET=1)."""
    if importlib.util.find_spec("triton") is None:
        return False
    return device.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1"


def resolve_backend(backend: str, device: torch.device) -> str:
    """The concrete backend name for `backend` on `device`; raises if it cannot run there."""
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not one of {BACKENDS}")
    if backend == "auto":
        if device.type == "meta":
            return "reference"
        if device.type == "cuda":
            return "triton" if triton_available(device) else "chunked"
        return "cpu" if device.type == "cpu" and cpu_ext.available() else "chunked"
    if backend == "cpu" and (device.type != "cpu" or not cpu_ext.available()):
        why = f"the tensors are on {device}" if device.type != "cpu" else cpu_ext.reason()
        raise ValueError(f"backend='cpu' cannot run here: {why}; use backend='chunked' or 'auto'")
    if backend == "triton" and not triton_available(device):
        raise ValueError(
            f"backend='triton' cannot run on device {device}: it needs a CUDA device with the "
            "`triton` package, or TRITON_INTERPRET=1 on CPU; use backend='chunked' or 'auto'"
        )
    return backend


def _implementation(backend: str, device: torch.device) -> ModuleType:
    return importlib.import_module(_MODULES[resolve_backend(backend, device)])


def _check_encoder(x: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, b_dec: torch.Tensor) -> None:
    if x.dim() != 2:
        raise ValueError(f"x must be (B, d); got shape {tuple(x.shape)}")
    if W_enc.dim() != 2 or W_enc.shape[0] != x.shape[1]:
        raise ValueError(f"W_enc must be (d, n) with d = {x.shape[1]}; got shape {tuple(W_enc.shape)}")
    if tuple(b_enc.shape) != (W_enc.shape[1],):
        raise ValueError(f"b_enc must be (n,) = ({W_enc.shape[1]},); got shape {tuple(b_enc.shape)}")
    if tuple(b_dec.shape) != (x.shape[1],):
        raise ValueError(f"b_dec must be (d,) = ({x.shape[1]},); got shape {tuple(b_dec.shape)}")


def _check_decoder(W_dec: torch.Tensor, b_dec: torch.Tensor | None) -> None:
    if W_dec.dim() != 2:
        raise ValueError(f"W_dec must be (n, d); got shape {tuple(W_dec.shape)}")
    if b_dec is not None and tuple(b_dec.shape) != (W_dec.shape[1],):
        raise ValueError(f"b_dec must be (d,) = ({W_dec.shape[1]},) or None; got shape {tuple(b_dec.shape)}")


def _check_index_range(name: str, index: torch.Tensor, size: int, what: str) -> None:
    if index.device.type == "meta":  # a shape-only dry run has no values to check
        return
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= size):
        raise ValueError(
            f"{name} must lie in [0, {size}) ({what}); got values in [{int(index.min())}, {int(index.max())}]"
        )


def topk_encode(
    x: torch.Tensor,
    W_enc: torch.Tensor,
    b_enc: torch.Tensor,
    b_dec: torch.Tensor,
    k: int,
    *,
    dead_mask: torch.Tensor | None = None,
    k_aux: int = 0,
    backend: str = "auto",
) -> EncoderOutput:
    """TopK encoder with optional AuxK selection in the same pass.

    pre = (x - b_dec) @ W_enc + b_enc (B, n); top_indices (B, k) = the k largest entries of
    each row of pre, sorted descending; top_acts (B, k) = ReLU(pre) there. When dead_mask (n,)
    bool has any True and k_aux > 0, aux_indices/aux_acts (B, min(k_aux, n_dead)) are the same
    over dead latents only. Which of several tied entries at the k-th place is kept is
    unspecified. Differentiable w.r.t. x, W_enc, b_enc, b_dec, through aux_acts as well.
    """
    _check_encoder(x, W_enc, b_enc, b_dec)
    n = W_enc.shape[1]
    if not 1 <= k <= n:
        raise ValueError(f"k={k} must be in [1, n={n}]")
    if k_aux < 0:
        raise ValueError(f"k_aux={k_aux} must be >= 0")
    if dead_mask is not None and (dead_mask.dtype != torch.bool or tuple(dead_mask.shape) != (n,)):
        raise ValueError(
            f"dead_mask must be a bool tensor of shape ({n},); got {dead_mask.dtype} {tuple(dead_mask.shape)}"
        )
    impl = _implementation(backend, x.device)
    return impl.topk_encode(x, W_enc, b_enc, b_dec, k, dead_mask=dead_mask, k_aux=k_aux)


def sparse_decode(
    acts: torch.Tensor,
    indices: torch.Tensor,
    W_dec: torch.Tensor,
    b_dec: torch.Tensor | None = None,
    *,
    backend: str = "auto",
) -> torch.Tensor:
    """(B, d) out[b] = sum_j acts[b, j] * W_dec[indices[b, j]] (+ b_dec), fp32 accumulation in the
    fused kernels. acts (B, k) float, indices (B, k) int64. Differentiable w.r.t. acts, W_dec, b_dec."""
    _check_decoder(W_dec, b_dec)
    if acts.dim() != 2 or acts.shape != indices.shape:
        raise ValueError(
            f"acts and indices must both be (B, k); got {tuple(acts.shape)} and {tuple(indices.shape)}"
        )
    if indices.dtype != torch.int64:
        raise ValueError(f"indices must be int64; got {indices.dtype}")
    _check_index_range("indices", indices, W_dec.shape[0], "rows of W_dec")
    return _implementation(backend, W_dec.device).sparse_decode(acts, indices, W_dec, b_dec)


def mutual_choice_encode(
    x: torch.Tensor,
    W_enc: torch.Tensor,
    b_enc: torch.Tensor,
    b_dec: torch.Tensor,
    budget: int,
    *,
    backend: str = "auto",
) -> SparseCode:
    """Mutual Choice (= BatchTopK at train time): the `budget` largest entries of ReLU(pre) over the
    whole (B, n) matrix, positives only, as a SparseCode ordered by (row, col). Ties at the
    boundary: unspecified which is kept. Differentiable w.r.t. x, W_enc, b_enc, b_dec."""
    _check_encoder(x, W_enc, b_enc, b_dec)
    if budget < 0:
        raise ValueError(f"budget={budget} must be >= 0 (typically k * B)")
    return _implementation(backend, x.device).mutual_choice_encode(x, W_enc, b_enc, b_dec, budget)


def feature_choice_encode(
    x: torch.Tensor,
    W_enc: torch.Tensor,
    b_enc: torch.Tensor,
    b_dec: torch.Tensor,
    capacity: torch.Tensor,
    *,
    backend: str = "auto",
) -> SparseCode:
    """Feature Choice: latent i keeps the capacity[i] tokens with the largest ReLU(pre), positives
    only, as a SparseCode ordered by (row, col). capacity (n,) int64 >= 0 (values above B keep all).
    Ties: unspecified which is kept. Differentiable w.r.t. x, W_enc, b_enc, b_dec."""
    _check_encoder(x, W_enc, b_enc, b_dec)
    n = W_enc.shape[1]
    if capacity.dtype != torch.int64 or tuple(capacity.shape) != (n,):
        raise ValueError(
            f"capacity must be an int64 tensor of shape ({n},); got {capacity.dtype} {tuple(capacity.shape)}"
        )
    if bool((capacity < 0).any()):
        raise ValueError(f"capacity must be >= 0; got min {int(capacity.min())}")
    return _implementation(backend, x.device).feature_choice_encode(x, W_enc, b_enc, b_dec, capacity)


def coo_decode(
    code: SparseCode, W_dec: torch.Tensor, b_dec: torch.Tensor | None = None, *, backend: str = "auto"
) -> torch.Tensor:
    """(B, d) out[r] = sum over entries e with rows[e] = r of values[e] * W_dec[cols[e]] (+ b_dec).
    Differentiable w.r.t. code.values, W_dec, b_dec."""
    _check_decoder(W_dec, b_dec)
    if not (code.values.shape == code.rows.shape == code.cols.shape) or code.values.dim() != 1:
        raise ValueError(
            "code.values, code.rows and code.cols must be 1-D of equal length; got "
            f"{tuple(code.values.shape)}, {tuple(code.rows.shape)}, {tuple(code.cols.shape)}"
        )
    _check_index_range("code.rows", code.rows, code.batch_size, "tokens of the batch")
    _check_index_range("code.cols", code.cols, W_dec.shape[0], "rows of W_dec")
    return _implementation(backend, W_dec.device).coo_decode(code, W_dec, b_dec)
