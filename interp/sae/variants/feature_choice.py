"""Feature Choice (Ayonrinde 2024): each latent i keeps its top m_i tokens of the batch.

Capacities: `uniform` m = max(1, floor(k*B/n)) keeps the budget of TopK [ours: the floor and
the floor of 1]; `zipf` [paper: Zipf-distributed, exact form unavailable; ours]:
m_i proportional to (rank_i + beta)^-alpha, ranks from the running densities (densest first),
each at most B, summing to exactly k*B: the shares a latent would get above B go to the others
in proportion to their weights (water-filling), then largest-remainder rounding.

Ties in rank (every latent at step 0, when no density has been observed, and latents that have
never fired later) are broken by a fixed permutation seeded with `SAEConfig.seed` [ours]: the
initial dictionary is exchangeable, so any order is arbitrary, but ordering by latent index would
give the same latents the largest capacities in every seed; a fixed permutation (not a fresh one
each step) keeps the ranks of still-tied latents from reshuffling between steps.

Single-token inference [ours]: per-latent threshold theta_i = running mean (EMA) of latent i's
m_i-th largest activation in the batch (0 when it had fewer positives); exported as JumpReLU."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

import sae_kernels
from interp.sae.losses import zipf_weights
from interp.sae.variants.base import Variant
from interp.sae.variants.mutual_choice import ThresholdConfig


@dataclass(frozen=True)
class FeatureChoiceConfig(ThresholdConfig):
    """Feature Choice's own hyper-parameters (the Zipf exponent and offset are the SAE's
    shared `zipf_alpha` / `zipf_beta`, which aux_zipf uses too)."""

    capacity: Literal["uniform", "zipf"] = "uniform"
    """Capacities: uniform (m = floor(k B / n)) or zipf (ours, see feature_choice.py)."""


def tie_order(n: int, seed: int) -> torch.Tensor:
    """(n,) int64 fixed permutation that breaks ties in density rank (position in it = priority)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def capped_shares(weights_N: torch.Tensor, budget: int, cap: int) -> torch.Tensor:
    """(n,) float64 shares proportional to `weights` (> 0) summing to `budget` <= n * cap, none
    above `cap`: latents whose share would pass `cap` get `cap` and the rest of the budget is
    shared among the others in proportion to their weights, until none passes (at most n rounds)."""
    w = weights_N.double()
    full_N = torch.zeros_like(w, dtype=torch.bool)
    while True:
        free = w.masked_fill(full_N, 0)
        share = free * ((budget - cap * int(full_N.sum())) / free.sum())
        over_N = ~full_N & (share >= cap)
        if not bool(over_N.any()):
            return torch.where(full_N, torch.full_like(w, cap), share)
        full_N |= over_N


def capacities(kind: str, n: int, batch_size: int, k: int, density_N: torch.Tensor,
               alpha: float = 1.0, beta: float = 1.0, tie_order_N: torch.Tensor | None = None) -> torch.Tensor:
    """(n,) int64 tokens each latent may keep in a batch of `batch_size` (each at most it).
    zipf: they sum to exactly k * batch_size; ranks from `density_N` (n,), densest first, ties
    broken by `tie_order_N` (a permutation of range(n); None: by latent index)."""
    budget = k * batch_size
    if kind == "uniform":
        return torch.full((n,), max(1, budget // n), dtype=torch.int64, device=density_N.device)
    order_N = tie_order_N.to(density_N.device) if tie_order_N is not None else None
    if order_N is None:
        w_N = zipf_weights(density_N, alpha, beta)
    else:  # rank the permuted densities (ties by position in the permutation), then undo the permutation
        w_N = torch.empty(n, dtype=torch.float64, device=density_N.device)
        w_N[order_N] = zipf_weights(density_N[order_N], alpha, beta)
    share_N = capped_shares(w_N, budget, batch_size)
    cap_N = share_N.floor()
    remainder = int(round(budget - float(cap_N.sum())))
    if remainder > 0:  # a share below B has floor + 1 <= B, and capped shares have remainder 0
        cap_N[torch.argsort(share_N - cap_N, descending=True, stable=True)[:remainder]] += 1
    return cap_N.long()


class FeatureChoice(Variant):
    sae_lens_architecture = "jumprelu"

    def __init__(self, cfg):
        super().__init__(cfg)
        self.tie_order_N = tie_order(cfg.n_latents, cfg.seed)

    def capacity(self, batch_size: int, stats) -> torch.Tensor:
        c = self.cfg
        return capacities(self.params.capacity, c.n_latents, batch_size, c.k, stats.density, c.zipf_alpha,
                          c.zipf_beta, self.tie_order_N)

    def encode_train(self, sae, x_BD, grads_BD, aux_mask_N, stats):
        cap = self.capacity(x_BD.shape[0], stats).to(x_BD.device)
        return sae_kernels.feature_choice_encode(x_BD, sae.W_enc, sae.b_enc, sae.pre_bias, cap, backend=sae.backend)

    def encode(self, sae, x_BD, grads_BD):
        return sae.threshold_encode(x_BD)

    @torch.no_grad()
    def after_step(self, sae, code, stats):
        n = self.cfg.n_latents
        cap = self.capacity(code.batch_size, stats).to(code.cols.device)
        counts = torch.zeros(n, dtype=torch.int64, device=code.cols.device).index_add_(
            0, code.cols, torch.ones_like(code.cols))
        col_min = torch.full((n,), float("inf"), device=code.values.device).scatter_reduce(
            0, code.cols, code.values.detach().float(), reduce="amin")
        # the m_i-th largest activation when the latent filled its capacity, else 0 (it kept every positive)
        self.ema_threshold(sae, torch.where((counts >= cap) & (counts > 0), col_min, torch.zeros_like(col_min)))
