"""Feature Choice (Ayonrinde 2024): each latent i keeps its top m_i tokens of the batch.

Capacities: `uniform` m = max(1, floor(k*B/n)) keeps the budget of TopK [ours: the floor and
the floor of 1]; `zipf` [paper: Zipf-distributed, exact form unavailable; ours]:
m_i proportional to (rank_i + beta)^-alpha, ranks from the running densities (densest first),
each at most B, summing to exactly k*B: the shares a latent would get above B go to the others
in proportion to their weights (water-filling), then largest-remainder rounding.

Ties in rank (every latent at step 0, when no density has been observed, and latents that have
never fired later) are broken by a fixed permutation seeded with `SAEConfig.seed`
(`interp.sae.losses.tie_order`) [ours].

Single-token inference [ours]: per-latent thresholds theta_i, exported as JumpReLU. During
training theta_i is a running mean (EMA) of latent i's m_i-th largest activation in the batch
(0 when it had fewer positives). Once training ends `calibrate` replaces them [ours]: on a
sample of T tokens, latent i gets c_i tokens, c_i = its training share of the budget k*T
(uniform: equal shares; zipf: its Zipf weight by final density rank, ties as in training),
capped at the sample tokens where its pre-activation is positive, the excess redistributed to
the others in proportion to their shares (water-filling, as the capacities), then rounded by
largest remainder so that sum c_i = k*T exactly (when the sample has that many positive
pre-activations); theta_i = latent i's (c_i + 1)-th largest pre-activation on the sample (0
when c_i is all its positives). The sample's mean inference L0 is then k. (Uniform training
capacities floor k*B/n and so keep n*floor(k*B/n) <= k*B; calibration keeps k*T.) Evaluation
also reports the training rule itself on each eval batch (mode `batch`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

import sae_kernels
from interp.sae.losses import tie_order, zipf_weights
from interp.sae.variants.base import BATCH, PLAIN, Variant
from interp.sae.variants.mutual_choice import ThresholdConfig, pre_activation_blocks


@dataclass(frozen=True)
class FeatureChoiceConfig(ThresholdConfig):
    """Feature Choice's own hyper-parameters (the Zipf exponent and offset are the SAE's
    shared `zipf_alpha` / `zipf_beta`, which aux_zipf uses too)."""

    capacity: Literal["uniform", "zipf"] = "uniform"
    """Capacities: uniform (m = floor(k B / n)) or zipf (ours, see feature_choice.py)."""


def capped_shares(weights_N: torch.Tensor, budget: int, cap: int | torch.Tensor) -> torch.Tensor:
    """(n,) float64 shares proportional to `weights` (>= 0) summing to `budget` <= sum of the
    caps, none above its cap (`cap`: one for all, or (n,) per latent): latents whose share would
    pass their cap get the cap and the rest of the budget is shared among the others in
    proportion to their weights, until none passes (at most n rounds)."""
    w = weights_N.double()
    cap_N = torch.as_tensor(cap, dtype=torch.float64, device=w.device).expand_as(w)
    full_N = torch.zeros_like(w, dtype=torch.bool)
    while True:
        free = w.masked_fill(full_N, 0)
        share = free * ((budget - float(cap_N[full_N].sum())) / free.sum())
        over_N = ~full_N & (share >= cap_N)
        if not bool(over_N.any()):
            return torch.where(full_N, cap_N, share)
        full_N |= over_N


def round_shares(share_N: torch.Tensor, budget: int) -> torch.Tensor:
    """(n,) int64 largest-remainder rounding of shares (float, summing to `budget`) to integers
    summing to `budget`: floors, then one more for the largest fractional parts (ties by index)
    [a share below its integer cap has floor + 1 <= cap, and capped shares have remainder 0]."""
    cap_N = share_N.floor()
    remainder = int(round(budget - float(cap_N.sum())))
    if remainder > 0:
        cap_N[torch.argsort(share_N - cap_N, descending=True, stable=True)[:remainder]] += 1
    return cap_N.long()


def capacities(kind: str, n: int, batch_size: int, k: int, density_N: torch.Tensor,
               alpha: float = 1.0, beta: float = 1.0, tie_order_N: torch.Tensor | None = None) -> torch.Tensor:
    """(n,) int64 tokens each latent may keep in a batch of `batch_size` (each at most it).
    zipf: they sum to exactly k * batch_size; ranks from `density_N` (n,), densest first, ties
    broken by `tie_order_N` (a permutation of range(n); None: by latent index)."""
    budget = k * batch_size
    if kind == "uniform":
        return torch.full((n,), max(1, budget // n), dtype=torch.int64, device=density_N.device)
    w_N = zipf_weights(density_N, alpha, beta, tie_order_N)
    return round_shares(capped_shares(w_N, budget, batch_size), budget)


class FeatureChoice(Variant):
    sae_lens_architecture = "jumprelu"
    inference_modes = (PLAIN, BATCH)

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

    def encode_mode(self, sae, x_BD, grads_BD, mode):
        if mode != BATCH:
            return self.encode(sae, x_BD, grads_BD)
        # the training rule on this batch; zipf ranks need densities, which a trained SAE does not
        # carry: the threshold code's firing counts on the batch stand in for them [ours]
        # (calibration gave each latent its share by density rank, so they rank alike)
        n = self.cfg.n_latents
        cols = sae.threshold_encode(x_BD).cols
        fired_N = torch.zeros(n, dtype=torch.float32, device=cols.device).index_add_(
            0, cols, torch.ones_like(cols, dtype=torch.float32))
        cap = capacities(self.params.capacity, n, x_BD.shape[0], self.cfg.k, fired_N, self.cfg.zipf_alpha,
                         self.cfg.zipf_beta, self.tie_order_N)
        return sae_kernels.feature_choice_encode(x_BD, sae.W_enc, sae.b_enc, sae.pre_bias, cap.to(x_BD.device),
                                                 backend=sae.backend)

    def calibration_weights(self, stats) -> torch.Tensor:
        """(n,) float64 each latent's share of the budget in training: equal (uniform) or its Zipf
        weight by density rank (zipf), ties as in training."""
        c = self.cfg
        if self.params.capacity == "uniform":
            return torch.ones(c.n_latents, dtype=torch.float64)
        return zipf_weights(stats.density.cpu(), c.zipf_alpha, c.zipf_beta, self.tie_order_N)

    @torch.no_grad()
    def calibrate(self, sae, x_TD, stats):
        n = self.cfg.n_latents
        positives_N = torch.zeros(n, dtype=torch.int64)
        for idx_B, pre_TB in pre_activation_blocks(sae, x_TD):
            positives_N[idx_B.cpu()] = (pre_TB > 0).sum(0).cpu()
        budget = min(self.cfg.k * x_TD.shape[0], int(positives_N.sum()))
        count_N = torch.minimum(round_shares(capped_shares(self.calibration_weights(stats), budget, positives_N),
                                             budget), positives_N)  # (exact already; guards float rounding)
        theta_N = torch.zeros(n, dtype=torch.float32)
        # latents in blocks of similar count, so each block's top-(c + 1) is no wider than it needs
        for idx_B, pre_TB in pre_activation_blocks(sae, x_TD, torch.argsort(count_N, descending=True)):
            c_B, pos_B = count_N[idx_B.cpu()], positives_N[idx_B.cpu()]
            top_TB = pre_TB.topk(min(int(c_B.max()) + 1, pre_TB.shape[0]), dim=0).values
            kth_B = top_TB.gather(0, c_B.clamp(max=top_TB.shape[0] - 1).to(top_TB.device).unsqueeze(0))[0].cpu()
            # the (c_i + 1)-th largest of latent i; 0 when c_i is all its positives (it keeps them all)
            theta_N[idx_B.cpu()] = torch.where(c_B < pos_B, kth_B.float().clamp(min=0), torch.zeros_like(kth_B.float()))
        sae.threshold.copy_(theta_N.to(sae.threshold.device))

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
