"""Loss terms shared by the variants: NMSE, AuxK, and aux_zipf's under-utilised set.

aux_zipf [ours: the paper (Ayonrinde 2024) says it "generalises aux_k_loss to mitigate dead
and under-utilised features" without a formula]: with running densities rho_i and Zipf-expected
densities rho_hat_i for each latent's density rank (normalised to the same total), the
under-utilised set is U = dead | {rho_i < c * rho_hat_i}; AuxK is applied with D := U, each
latent's auxiliary activation weighted by its deficit w_i = 1 - rho_i / (c rho_hat_i) (w = 1 for
dead latents). With U = dead this is AuxK exactly."""

from __future__ import annotations

import torch

import sae_kernels


def nmse(x_hat_BD: torch.Tensor, x_BD: torch.Tensor) -> torch.Tensor:
    """sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 over the batch (1 = predicting the mean)."""
    x = x_BD.float()
    return (x - x_hat_BD.float()).pow(2).sum() / (x - x.mean(dim=0)).pow(2).sum()


def auxk_loss(residual_BD: torch.Tensor, aux_acts_BK: torch.Tensor | None, aux_indices_BK: torch.Tensor | None,
              W_dec_ND: torch.Tensor, weights_N: torch.Tensor | None = None, backend: str = "auto") -> torch.Tensor:
    """||e - e_hat||^2 / Var(e) with e = residual (detached here), e_hat = W_dec z_aux (no bias);
    exactly 0 with no gradient when there is no auxiliary code (nothing dead) or it is NaN."""
    if aux_acts_BK is None:
        return residual_BD.new_zeros((), dtype=torch.float32)
    acts = aux_acts_BK if weights_N is None else aux_acts_BK * weights_N[aux_indices_BK].to(aux_acts_BK.dtype)
    e_hat_BD = sae_kernels.sparse_decode(acts, aux_indices_BK, W_dec_ND, None, backend=backend)
    loss = nmse(e_hat_BD, residual_BD.detach())
    return torch.nan_to_num(loss, nan=0.0)


def tie_order(n: int, seed: int) -> torch.Tensor:
    """(n,) int64 fixed permutation of range(n) seeded with `seed` (an SAE's `SAEConfig.seed`)
    that breaks ties in density rank: a latent earlier in it ranks first [ours]. The initial
    dictionary is exchangeable, so any order of tied latents is arbitrary; the latent index
    would give the same latents the top ranks in every seed, and a fresh order each step would
    reshuffle still-tied latents between steps."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def density_ranks(density_N: torch.Tensor, tie_order_N: torch.Tensor | None = None) -> torch.Tensor:
    """(n,) int64 rank of each latent, 0 = densest; ties by position in `tie_order_N` (a
    permutation of range(n), `tie_order`; None: by latent index)."""
    n = density_N.numel()
    if tie_order_N is None:
        order_N = torch.argsort(density_N, descending=True, stable=True)
    else:  # latents in tie priority, then a stable sort by density keeps that priority among equals
        tie_order_N = tie_order_N.to(density_N.device)
        order_N = tie_order_N[torch.argsort(density_N[tie_order_N], descending=True, stable=True)]
    rank_N = torch.empty_like(order_N)
    rank_N[order_N] = torch.arange(n, device=density_N.device)
    return rank_N


def zipf_weights(density_N: torch.Tensor, alpha: float, beta: float,
                 tie_order_N: torch.Tensor | None = None) -> torch.Tensor:
    """(n,) float64 weights (rank_i + beta)^-alpha, rank 0 = densest latent (ties by position in
    `tie_order_N`, see `density_ranks`), summing to 1."""
    w = (density_ranks(density_N, tie_order_N).double() + beta).pow(-alpha)
    return w / w.sum()


def zipf_expected_density(density_N: torch.Tensor, alpha: float, beta: float,
                          tie_order_N: torch.Tensor | None = None) -> torch.Tensor:
    """(n,) rho_hat: (rank + beta)^-alpha by density rank, scaled to the same total as density."""
    return (zipf_weights(density_N, alpha, beta, tie_order_N) * density_N.double().sum()).to(density_N.dtype)


def under_utilised(density_N: torch.Tensor, dead_N: torch.Tensor, alpha: float, beta: float,
                   c: float, tie_order_N: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask (n,) bool, weights (n,) float) of aux_zipf: U = dead | rho < c rho_hat, w = deficit
    (ranks tied in density ordered by `tie_order_N`, see `density_ranks`)."""
    expected_N = c * zipf_expected_density(density_N, alpha, beta, tie_order_N)
    low_N = density_N < expected_N
    deficit_N = (1 - density_N / expected_N.clamp(min=1e-30)).clamp(0, 1)
    return dead_N | low_N, torch.where(dead_N, torch.ones_like(deficit_N), torch.where(low_N, deficit_N, 0))
