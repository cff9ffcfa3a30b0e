"""Data-dependent initialisation (Gao et al.): the input scale (normalize="scale": one global
factor so that E||x|| = sqrt(d)) and b_dec = geometric median of a sample of (scaled) inputs."""

from __future__ import annotations

import math

import torch

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
    """Set `input_scale` (normalize="scale") and b_dec from raw activations sample (T, d)."""
    sample = sample_TD.float()
    if sae.cfg.normalize == "scale":
        sae.input_scale.fill_(math.sqrt(sae.cfg.d_in) / float(sample.norm(dim=1).mean().clamp(min=1e-12)))
    sae.b_dec.copy_(geometric_median(sample * sae.input_scale))
