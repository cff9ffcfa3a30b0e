"""Feature Choice (Ayonrinde 2024): each latent i keeps its top m_i tokens of the batch.

Capacities: `uniform` m = max(1, floor(k*B/n)) keeps the budget of TopK [ours: the floor and
the floor of 1]; `zipf` [paper: Zipf-distributed, exact form unavailable; ours]:
m_i proportional to (rank_i + beta)^-alpha, ranks from the running densities (densest first),
normalised to sum to k*B by largest remainders, each at most B.

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


def capacities(kind: str, n: int, batch_size: int, k: int, density_N: torch.Tensor,
               alpha: float = 1.0, beta: float = 1.0) -> torch.Tensor:
    """(n,) int64 tokens each latent may keep in a batch of `batch_size`."""
    budget = k * batch_size
    if kind == "uniform":
        return torch.full((n,), max(1, budget // n), dtype=torch.int64, device=density_N.device)
    share = zipf_weights(density_N, alpha, beta) * budget
    cap = share.floor()
    remainder = int(budget - cap.sum().item())
    if remainder > 0:
        cap[torch.argsort(share - cap, descending=True, stable=True)[:remainder]] += 1
    return cap.clamp(max=batch_size).long()


class FeatureChoice(Variant):
    sae_lens_architecture = "jumprelu"

    def capacity(self, batch_size: int, stats) -> torch.Tensor:
        c = self.cfg
        return capacities(self.params.capacity, c.n_latents, batch_size, c.k, stats.density, c.zipf_alpha, c.zipf_beta)

    def encode_train(self, sae, x_BD, grads_BD, aux_mask_N, stats):
        cap = self.capacity(x_BD.shape[0], stats).to(x_BD.device)
        return sae_kernels.feature_choice_encode(x_BD, sae.W_enc, sae.b_enc, sae.b_dec, cap, backend=sae.backend)

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
