"""Data-dependent initialisation (Gao et al.): the input scale (normalize="scale": one global
factor so that E||x|| = sqrt(d)) and b_dec = geometric median of a sample of inputs in the
SAE's input space (scaled or per-token normalised);
then the variant's own policy (`Variant.init_encoder`): by default [ours] the tied encoder is
rescaled so that the initial k-sparse reconstruction is the least-squares fit of the sample. With unit decoder rows and W_enc = W_dec^T, the k largest
projections all point partly along x, so the raw tied reconstruction overshoots by about
k * E[top projection^2] / ||x||^2: NMSE ~5 at k=64, n=2048, d=128, which takes hundreds of
steps to unlearn. Scaling the encoder leaves every variant's selection unchanged (it is
positively homogeneous in the pre-activations while b_enc = 0). top-AFA's policy is its
`init` param: `tied` keeps the shared init without the rescale, `kaiming` is the authors'
(`kaiming_init`: Kaiming-uniform encoder, b_dec = 0)."""

from __future__ import annotations

import math

import torch

import sae_kernels
from interp.sae.module import SparseAutoencoder


def geometric_median(points_TD: torch.Tensor, max_iter: int = 200, tol: float = 1e-7) -> torch.Tensor:
    """(d,) point minimising the sum of Euclidean distances to the rows of points (T, d) (Weiszfeld)."""
    points = points_TD.double()
    median = points.mean(dim=0)
    for _ in range(max_iter):
        weights_T = 1 / (points - median).norm(dim=1).clamp(min=1e-12)
        new = (weights_T[:, None] * points).sum(dim=0) / weights_T.sum()
        shift = (new - median).norm()
        median = new
        if shift <= tol * max(1.0, float(median.norm())):
            break
    return median.to(points_TD.dtype)


@torch.no_grad()
def initialize_from_data(sae: SparseAutoencoder, sample_TD: torch.Tensor) -> None:
    """Set `input_scale` (normalize="scale"), b_dec and the encoder's scale from raw activations
    sample (T, d) (on any device: it is moved to the SAE's)."""
    sample = sample_TD.to(sae.device, torch.float32)
    if sae.cfg.normalize == "scale":
        sae.input_scale.fill_(math.sqrt(sae.cfg.d_in) / float(sample.norm(dim=1).mean().clamp(min=1e-12)))
    x_TD, _ = sae.to_sae_space(sample)
    sae.b_dec.copy_(geometric_median(x_TD))
    sae.variant.init_encoder(sae, x_TD)


def least_squares_scale(sae: SparseAutoencoder, x_TD: torch.Tensor) -> float:
    """s minimising ||x - b_dec - s * (x_hat - b_dec)||^2 over the sample, for the TopK-k code
    (every variant's training L0 is k on average); 1 when the code is empty."""
    code = sae_kernels.topk_encode(x_TD, sae.W_enc, sae.b_enc, sae.b_dec, sae.cfg.k, backend=sae.backend)
    r_TD = sae_kernels.sparse_decode(code.top_acts, code.top_indices, sae.W_dec, torch.zeros_like(sae.b_dec),
                                  backend=sae.backend)
    norm = float(r_TD.pow(2).sum())
    return max(float(((x_TD - sae.b_dec) * r_TD).sum()) / norm, 0.0) if norm > 0 else 1.0


@torch.no_grad()
def kaiming_init(sae: SparseAutoencoder) -> None:
    """The top-AFA authors' initialisation: encoder rows Kaiming-uniform (fan_in = d_in, gain
    sqrt(2), bound sqrt(6 / d_in)), decoder = the encoder's transpose with unit rows (the
    decoder constraint every variant here keeps), b_enc = b_dec = 0. Replaces the weights from
    the data-dependent init; seeded by `cfg.seed` on a CPU generator, so equal on every device.
    `input_scale` (normalize="scale") is kept: it is the input space, not a weight."""
    gen = torch.Generator().manual_seed(sae.cfg.seed)
    W_ND = torch.nn.init.kaiming_uniform_(torch.empty(sae.cfg.n_latents, sae.cfg.d_in), generator=gen)
    sae.W_enc.copy_(W_ND.T)
    sae.W_dec.copy_(W_ND / W_ND.norm(dim=1, keepdim=True).clamp(min=1e-12))
    sae.b_enc.zero_()
    sae.b_dec.zero_()
