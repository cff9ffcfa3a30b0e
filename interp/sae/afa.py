"""Approximate Feature Activation (Lee et al. 2025, arXiv 2503.24277).

For an eps-quasi-orthogonal unit dictionary, ||f|| ~ ||x||, where ||f||^2 = sum_i (a_i ||d_i||)^2
+ ||b_dec||^2 (the bias counts as one more atom). This module holds the top-AFA choice of k per
token, the AFA loss term, and the eps_LBO / ZF-plot statistics that `evaluate` reports for any SAE."""

from __future__ import annotations

from typing import NamedTuple

import torch


def afa_k(sorted_scores_BK: torch.Tensor, target_B: torch.Tensor) -> torch.Tensor:
    """(B,) int64 k_b = argmin_j |sqrt(cumsum_j s) - t_b| + 1 (first minimiser), for scores
    s (B, K) sorted descending and targets t (B,) >= 0."""
    C_BK = sorted_scores_BK.cumsum(dim=1).clamp(min=0).sqrt()
    return (C_BK - target_B.unsqueeze(1)).abs().argmin(dim=1) + 1


def feature_norm(acts_BK: torch.Tensor, indices_BK: torch.Tensor, W_dec_ND: torch.Tensor,
                 b_dec_D: torch.Tensor) -> torch.Tensor:
    """(B,) ||f|| = sqrt(sum_j (a_j ||d_j||)^2 + ||b_dec||^2)."""
    atom_norms_BK = W_dec_ND.norm(dim=1)[indices_BK]
    return ((acts_BK * atom_norms_BK).pow(2).sum(dim=1) + b_dec_D.pow(2).sum()).sqrt()


def afa_loss(f_norm_B: torch.Tensor, x_BD: torch.Tensor) -> torch.Tensor:
    """mean_b (||f_b|| - ||x_b||)^2."""
    return (f_norm_B - x_BD.norm(dim=1)).pow(2).mean()


def element_variance(x_BD: torch.Tensor) -> torch.Tensor:
    """sigma^2 = sum_b ||x_b - mean(x)||^2 / (B d): the batch's variance per element, the factor
    between element-wise MSE and NMSE (NMSE = MSE / sigma^2). A constant of the data (no gradient)."""
    x = x_BD.detach().float()
    return (x - x.mean(dim=0)).pow(2).mean()


class ZFData(NamedTuple):
    """Per-token data of the ZF plot and eps_LBO. x_norm (T,) ||x||; f_norm (T,) ||f||; eps_lbo (T,)."""

    x_norm: torch.Tensor
    f_norm: torch.Tensor
    eps_lbo: torch.Tensor


ZF_BANDS = (0.25, 0.5, 1.0)
"""Reference bands of the ZF plot: y = x * sqrt(1 / (1 +- c))."""


def zf_data(x_BD: torch.Tensor, f_norm_B: torch.Tensor, n_latents: int) -> ZFData:
    """eps_LBO = | ||x||^2 - ||f||^2 | / ((n - 1) ||f||^2) per token (inf where ||f|| = 0)."""
    x_norm, f2 = x_BD.norm(dim=1), f_norm_B.pow(2)
    eps = (x_norm.pow(2) - f2).abs() / ((n_latents - 1) * f2)
    return ZFData(x_norm, f_norm_B, eps)
